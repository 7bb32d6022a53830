"""Neuronpedia links for features of SAEs that are known SAELens releases.

The extraction stage stores the release's Neuronpedia id (SAELens's pretrained directory,
e.g. ``gpt2-small/6-res-jb``) in each activation shard's metadata, or null for SAEs that are not a
known release (local SAEs, the offline demo): those features get no link.
"""

from __future__ import annotations

import polars as pl

BASE = "https://www.neuronpedia.org"


def feature_url(neuronpedia_id: str | None, feature: int | None) -> str | None:
    if not neuronpedia_id or feature is None:
        return None
    return f"{BASE}/{neuronpedia_id}/{int(feature)}"


def add_url_column(
    df: pl.DataFrame, ids: dict[tuple[str, int], str | None], column: str = "neuronpedia_url"
) -> pl.DataFrame:
    """Append ``column`` (String, null when there is no link) from sae, layer, feature columns."""
    lookup = pl.DataFrame(
        {
            "sae": [k[0] for k in ids],
            "layer": [int(k[1]) for k in ids],
            "_np_id": [v for v in ids.values()],
        },
        schema={"sae": pl.String, "layer": pl.Int64, "_np_id": pl.String},
    )
    out = df.join(lookup, on=["sae", "layer"], how="left")
    url = (
        pl.when(pl.col("_np_id").is_not_null() & pl.col("feature").is_not_null())
        .then(
            pl.lit(BASE + "/") + pl.col("_np_id") + pl.lit("/") + pl.col("feature").cast(pl.String)
        )
        .otherwise(pl.lit(None, dtype=pl.String))
    )
    return out.with_columns(url.alias(column)).drop("_np_id")

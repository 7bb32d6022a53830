"""Per-text values: the sparse (text, feature) table every analysis is built on.

Per-text value of a feature on a text = aggregate, over the text's *counted positions*, of the
feature's per-token activation:
  - ``mean``: sum over counted positions / number of counted positions (zeros included, i.e.
    positions where the feature is inactive count as 0);
  - ``max``: maximum over counted positions.
Counted positions are every stored position except BOS (unless ``include_bos``). Padding is never
stored, so never counted. The table is sparse: only (text, feature) pairs with value > 0.
``max`` is the feature's largest per-token activation on the text's counted positions.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import polars as pl

from ..shards import ACTIVATIONS_SCHEMA, check_schema
from .shards import (
    counted_positions,
    merge_activation_metadata,
    scan_tokens,
    texts_table,
    write_parquet,
)

AGGREGATIONS = ("mean", "max")
PER_TEXT_SCHEMA = {
    "text_id": pl.String,
    "category": pl.String,
    "feature": pl.Int32,
    "value": pl.Float64,
    "max": pl.Float64,
}


def scan_activations(paths: Iterable[str | os.PathLike]) -> pl.LazyFrame:
    paths = [str(p) for p in paths]
    if not paths:
        raise ValueError("no activation shards given")
    for path in paths:  # a corrupt or foreign shard is reported, never analysed
        check_schema(path, ACTIVATIONS_SCHEMA)
    return pl.scan_parquet(paths).select(
        pl.col("text_id").cast(pl.String),
        pl.col("token_pos").cast(pl.Int32),
        pl.col("feature").cast(pl.Int32),
        pl.col("activation").cast(pl.Float64),
    )


def per_text_values(
    token_paths: Sequence[str | os.PathLike],
    activation_paths: Sequence[str | os.PathLike],
    aggregation: str = "mean",
    include_bos: bool = False,
) -> pl.DataFrame:
    """Sparse per-text table (text_id, category, feature, value, max) with value > 0.

    ``token_paths`` must cover every text whose activations are given (the text list and the
    number of counted positions come from the tokens shards, never from activations, so a text
    with no active feature still counts). Rows are sorted by text order, then feature.
    """
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
    texts = texts_table(token_paths, include_bos).lazy()
    acts = scan_activations(activation_paths)

    stray = (
        acts.join(
            scan_tokens(token_paths).select("text_id", "token_pos"),
            on=["text_id", "token_pos"],
            how="anti",
        )
        .select(pl.len())
        .collect()
        .item()
    )
    if stray:
        raise ValueError(
            f"{stray} activation rows have no matching (text_id, token_pos) in the tokens shards"
        )

    counted = acts.join(
        counted_positions(token_paths, include_bos), on=["text_id", "token_pos"], how="semi"
    )
    grouped = counted.group_by("text_id", "feature").agg(
        pl.col("activation").sum().alias("sum"),
        pl.col("activation").max().alias("max"),
    )
    value = pl.col("sum") / pl.col("n_counted") if aggregation == "mean" else pl.col("max")
    return (
        grouped.join(texts, on="text_id", how="inner")
        .with_columns(value.alias("value"))
        .filter(pl.col("value") > 0)
        .sort("text_order", "feature")
        .select([pl.col(c).cast(t) for c, t in PER_TEXT_SCHEMA.items()])
        .collect()
    )


def build_per_text(
    token_paths: Sequence[str | os.PathLike],
    activation_paths: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    family: str,
    layer: int,
    aggregation: str = "mean",
    include_bos: bool = False,
) -> pl.DataFrame:
    """Compute the per-text table of one (family, layer) and write it with its metadata."""
    df = per_text_values(token_paths, activation_paths, aggregation, include_bos)
    meta = merge_activation_metadata(activation_paths)
    meta.update(
        sae=family,
        layer=int(layer),
        aggregation=aggregation,
        include_bos=bool(include_bos),
        neuronpedia_id=meta.get("neuronpedia_id"),
    )
    write_parquet(df, output, meta)
    return df


def build_texts(
    token_paths: Sequence[str | os.PathLike], output: str | os.PathLike, include_bos: bool
) -> pl.DataFrame:
    """Write the text list (text_id, category, text_order, n_positions, n_counted)."""
    df = texts_table(token_paths, include_bos)
    write_parquet(df, output, {"include_bos": bool(include_bos)})
    return df

"""The specialist rule written a second, independent way (polars group-bys over the sparse
per-text rows): a test oracle only. The workflow's one implementation is
``sae_specialists.analysis.selection`` (used by ``analysis.tables.candidates``/``specialists``,
the bootstrap, the sweep and all-feature scoring); the tests check it against this."""

from __future__ import annotations

import polars as pl

from sae_specialists.analysis.tables import KEY, _grid, _rank, collect


def candidates(pt: pl.DataFrame, texts: pl.DataFrame, threshold: float, k: int = 5) -> pl.DataFrame:
    """Every specialist candidate: the k features with the highest in-category peak (ties: lower
    id; only features active in the category), with n_in, n_out, score = n_in - n_out."""
    pt = pt.lazy()
    cat_sizes = texts.lazy().group_by("category").agg(pl.len().cast(pl.Int64).alias("n_category"))
    in_peak = pt.group_by(KEY + ["category", "feature"]).agg(pl.col("value").max().alias("peak"))
    cands = (
        _rank(in_peak, ["peak"], [True], KEY + ["category"])
        .filter(pl.col("rank") <= k)
        .rename({"rank": "candidate_rank"})
    )
    above = pt.filter(pl.col("value") > threshold)
    per_cat = above.group_by(KEY + ["category", "feature"]).agg(
        pl.len().cast(pl.Int64).alias("n_in")
    )
    total = above.group_by(KEY + ["feature"]).agg(pl.len().cast(pl.Int64).alias("n_total"))
    out = (
        cands.join(per_cat, on=KEY + ["category", "feature"], how="left")
        .join(total, on=KEY + ["feature"], how="left")
        .join(cat_sizes, on="category", how="left")
        .with_columns(pl.col("n_in").fill_null(0), pl.col("n_total").fill_null(0))
        .with_columns((pl.col("n_total") - pl.col("n_in")).alias("n_out"))
        .with_columns(
            (pl.col("n_in") - pl.col("n_out")).alias("score"),
            pl.lit(float(threshold)).alias("threshold"),
        )
    )
    return collect(
        out.sort(KEY + ["category", "candidate_rank"]).select(
            "sae",
            "layer",
            "category",
            "candidate_rank",
            "feature",
            "peak",
            "n_in",
            "n_out",
            "score",
            "n_category",
            "threshold",
        )
    )


def specialists(
    cands: pl.DataFrame, texts: pl.DataFrame, keys: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Best candidate per (sae, layer, category): highest score, then higher in-category peak,
    then lower feature id. One row per category; has_specialist = score > 0. A category with no
    active feature at all has a null feature and has_specialist false."""
    group = KEY + ["category"]
    best = (
        cands.sort(
            group + ["score", "peak", "feature"],
            descending=[False] * len(group) + [True, True, False],
        )
        .group_by(group, maintain_order=True)
        .first()
    )
    if keys is None:
        keys = cands.select(KEY).unique()
    cat_sizes = texts.group_by("category").agg(pl.len().cast(pl.Int64).alias("n_category"))
    grid = _grid(cands, texts, keys)
    return (
        grid.join(best.drop("n_category"), on=group, how="left")
        .join(cat_sizes, on="category", how="left")
        .with_columns((pl.col("score").fill_null(0) > 0).alias("has_specialist"))
        .sort(group)
        .select(
            "sae",
            "layer",
            "category",
            "feature",
            "score",
            "n_in",
            "n_out",
            "peak",
            "has_specialist",
            "n_category",
            "candidate_rank",
            "threshold",
        )
    )

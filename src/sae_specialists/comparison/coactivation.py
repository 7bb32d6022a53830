"""Co-activation: Pearson correlation of two features' per-token activations, from the sparse
activation tables, without building a dense positions x features matrix.

The correlation is taken over every counted position of the study texts (every stored
position except BOS, unless analysis.include_bos; docs/analyses.md), with activation 0 wherever
a feature is not active. With N counted positions, s_a = sum of a's activations, s_aa = sum of
squares and s_ab = sum over positions of a * b (only positions where both are active add to
it):

    r = (N s_ab - s_a s_b) / sqrt((N s_aa - s_a^2) (N s_bb - s_b^2))

A feature that never fires (zero variance) has no correlation (null).

Frames: ``acts`` holds the activations of the features of interest, one row per (unit,
position) with activation > 0, restricted to counted positions: columns ``sae``, ``layer``,
``feature``, ``text_id``, ``token_pos``, ``activation``. A unit is one (sae, layer, feature).
"""

from __future__ import annotations

import polars as pl

UNIT = ["sae", "layer", "feature"]
POSITION = ["text_id", "token_pos"]


def _suffixed(columns: list[str], suffix: str) -> list[str]:
    return [f"{c}{suffix}" for c in columns]


def unit_moments(acts: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
    """Per unit: s1 = sum of activations, s2 = sum of squares, n_active = active positions."""
    return (
        acts.lazy()
        .group_by(UNIT)
        .agg(
            pl.col("activation").cast(pl.Float64).sum().alias("s1"),
            (pl.col("activation").cast(pl.Float64) ** 2).sum().alias("s2"),
            pl.len().cast(pl.Int64).alias("n_active"),
        )
        .collect()
    )


def pair_correlations(
    acts: pl.LazyFrame | pl.DataFrame, pairs: pl.DataFrame, n_positions: int
) -> pl.DataFrame:
    """``pairs`` (columns sae_a, layer_a, feature_a, sae_b, layer_b, feature_b, plus any others)
    with a ``correlation`` column (null where a unit never fires)."""
    if n_positions < 2:
        raise ValueError(f"need at least 2 counted positions for a correlation, got {n_positions}")
    a_keys, b_keys = _suffixed(UNIT, "_a"), _suffixed(UNIT, "_b")
    keys = pairs.select(
        pl.col("sae_a").cast(pl.String),
        pl.col("layer_a").cast(pl.Int64),
        pl.col("feature_a").cast(pl.Int64),
        pl.col("sae_b").cast(pl.String),
        pl.col("layer_b").cast(pl.Int64),
        pl.col("feature_b").cast(pl.Int64),
    ).unique()
    acts = acts.lazy().select(
        pl.col("sae").cast(pl.String),
        pl.col("layer").cast(pl.Int64),
        pl.col("feature").cast(pl.Int64),
        pl.col("text_id").cast(pl.String),
        pl.col("token_pos").cast(pl.Int64),
        pl.col("activation").cast(pl.Float64),
    )
    side_a = acts.rename({**dict(zip(UNIT, a_keys, strict=True)), "activation": "x_a"})
    side_b = acts.rename({**dict(zip(UNIT, b_keys, strict=True)), "activation": "x_b"})
    cross = (
        keys.lazy()
        .join(side_a, on=a_keys, how="inner")
        .join(side_b, on=b_keys + POSITION, how="inner")
        .group_by(a_keys + b_keys)
        .agg((pl.col("x_a") * pl.col("x_b")).sum().alias("s_ab"))
        .collect()
    )
    moments = unit_moments(acts)
    m_a = moments.rename({**dict(zip(UNIT, a_keys, strict=True)), "s1": "s_a", "s2": "s_aa"})
    m_b = moments.rename({**dict(zip(UNIT, b_keys, strict=True)), "s1": "s_b", "s2": "s_bb"})
    n = float(n_positions)
    var_a = n * pl.col("s_aa") - pl.col("s_a") ** 2
    var_b = n * pl.col("s_bb") - pl.col("s_b") ** 2
    corr = (
        keys.join(cross, on=a_keys + b_keys, how="left")
        .join(m_a.drop("n_active"), on=a_keys, how="left")
        .join(m_b.drop("n_active"), on=b_keys, how="left")
        .with_columns(pl.col("s_ab", "s_a", "s_aa", "s_b", "s_bb").fill_null(0.0))
        .with_columns(
            pl.when((var_a > 0) & (var_b > 0))
            .then((n * pl.col("s_ab") - pl.col("s_a") * pl.col("s_b")) / (var_a * var_b).sqrt())
            .otherwise(None)
            .clip(-1.0, 1.0)
            .alias("correlation")
        )
        .select(*a_keys, *b_keys, "correlation")
    )
    typed = pairs.with_columns(
        pl.col("sae_a", "sae_b").cast(pl.String),
        pl.col("layer_a", "feature_a", "layer_b", "feature_b").cast(pl.Int64),
    )
    if "correlation" in typed.columns:
        typed = typed.drop("correlation")
    return typed.join(corr, on=a_keys + b_keys, how="left", maintain_order="left")

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
``feature``, ``text_id``, ``token_pos``, ``activation``, as one frame or as chunks of disjoint
positions (the sums add up over chunks). A unit is one (sae, layer, feature).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

UNIT = ["sae", "layer", "feature"]
POSITION = ["text_id", "token_pos"]


def _suffixed(columns: list[str], suffix: str) -> list[str]:
    return [f"{c}{suffix}" for c in columns]


def _collected(acts: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
    return (
        acts.lazy()
        .select(
            pl.col("sae").cast(pl.String),
            pl.col("layer").cast(pl.Int64),
            pl.col("feature").cast(pl.Int64),
            pl.col("text_id").cast(pl.String),
            pl.col("token_pos").cast(pl.Int64),
            pl.col("activation").cast(pl.Float64),
        )
        .collect()
    )


def _sparse_chunk(acts: pl.DataFrame, units: pl.DataFrame):
    """CSC matrix positions x ``units`` (their column ``u``) of one chunk's activations; only
    positions where some unit is active get a row: the others add nothing to any sum."""
    from scipy import sparse

    # sorted: the same row order, hence the same float sums, in every process
    positions = acts.select(POSITION).unique().sort(POSITION).with_row_index("p")
    indexed = acts.join(units, on=UNIT).join(positions, on=POSITION)
    return sparse.csc_matrix(
        (
            indexed["activation"].to_numpy(),
            (indexed["p"].to_numpy().astype(np.int64), indexed["u"].to_numpy().astype(np.int64)),
        ),
        shape=(positions.height, units.height),
    )


def pair_correlations(
    acts: pl.LazyFrame | pl.DataFrame | Sequence[pl.LazyFrame | pl.DataFrame],
    pairs: pl.DataFrame,
    n_positions: int,
) -> pl.DataFrame:
    """``pairs`` (columns sae_a, layer_a, feature_a, sae_b, layer_b, feature_b, plus any others)
    with a ``correlation`` column (null where a unit never fires).

    ``acts``: one frame, or chunks of it whose positions are disjoint (study.unit_activations:
    one per extraction shard of texts), read one at a time: the sums s_a, s_aa and s_ab add up
    over chunks, so memory stays at one chunk's sparse positions x units matrix plus one unit's
    partners (each pair's s_ab is the dot product of two sparse columns, one unit a at a time).
    """
    if n_positions < 2:
        raise ValueError(f"need at least 2 counted positions for a correlation, got {n_positions}")
    a_keys, b_keys = _suffixed(UNIT, "_a"), _suffixed(UNIT, "_b")
    typed = pairs.with_columns(
        pl.col("sae_a", "sae_b").cast(pl.String),
        pl.col("layer_a", "feature_a", "layer_b", "feature_b").cast(pl.Int64),
    )
    if "correlation" in typed.columns:
        typed = typed.drop("correlation")
    keys = typed.select(*a_keys, *b_keys).unique()
    units = (
        pl.concat(
            [
                keys.select(pl.col(a_keys).name.map(lambda c: c[:-2])),
                keys.select(pl.col(b_keys).name.map(lambda c: c[:-2])),
            ]
        )
        .drop_nulls()
        .unique()
        .sort(UNIT)
        .with_row_index("u")
        .with_columns(pl.col("u").cast(pl.Int64))
    )
    ua = units.rename({**dict(zip(UNIT, a_keys, strict=True)), "u": "ua"})
    ub = units.rename({**dict(zip(UNIT, b_keys, strict=True)), "u": "ub"})
    indexed = keys.join(ua, on=a_keys, how="left").join(ub, on=b_keys, how="left")
    # -1: a row without its other unit (related features: "none above the floor")
    a_idx = indexed["ua"].fill_null(-1).to_numpy().astype(np.int64)
    b_idx = indexed["ub"].fill_null(-1).to_numpy().astype(np.int64)
    both = (a_idx >= 0) & (b_idx >= 0)
    by_a = {int(a): np.flatnonzero(both & (a_idx == a)) for a in np.unique(a_idx[both])}
    s1 = np.zeros(units.height)
    s2 = np.zeros(units.height)
    s_ab = np.zeros(indexed.height)
    chunks = [acts] if isinstance(acts, (pl.DataFrame, pl.LazyFrame)) else list(acts)
    for chunk in chunks:
        matrix = _sparse_chunk(_collected(chunk), units)
        if matrix.shape[0] == 0:
            continue
        s1 += np.asarray(matrix.sum(axis=0)).ravel()
        s2 += np.asarray(matrix.multiply(matrix).sum(axis=0)).ravel()
        active = np.diff(matrix.indptr) > 0  # units with a value in this chunk
        for a, rows in by_a.items():
            if not active[a]:
                continue
            column = matrix[:, [a]]
            s_ab[rows] += np.asarray((matrix[:, b_idx[rows]].T @ column).todense()).ravel()
    n = float(n_positions)
    sa, sb = (np.where(i >= 0, s1[np.maximum(i, 0)], 0.0) for i in (a_idx, b_idx))
    saa, sbb = (np.where(i >= 0, s2[np.maximum(i, 0)], 0.0) for i in (a_idx, b_idx))
    var_a = n * saa - sa**2
    var_b = n * sbb - sb**2
    ok = (var_a > 0) & (var_b > 0)
    corr = np.full(indexed.height, np.nan)
    corr[ok] = (n * s_ab[ok] - sa[ok] * sb[ok]) / np.sqrt(var_a[ok] * var_b[ok])
    corr = np.clip(corr, -1.0, 1.0)
    result = indexed.select(*a_keys, *b_keys).with_columns(
        pl.Series("correlation", corr, dtype=pl.Float64).fill_nan(None)
    )
    return typed.join(result, on=a_keys + b_keys, how="left", maintain_order="left")

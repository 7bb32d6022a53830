"""Pieces the comparison's table builders share: the column types of their inputs, and the
co-activation of each row's pair of units (coactivation.pair_correlations)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from .coactivation import pair_correlations

Frame = (
    pl.LazyFrame | pl.DataFrame | Sequence[pl.LazyFrame | pl.DataFrame]
)  # chunks: unit_activations
# unit decoder row of each (sae, layer, feature) (neighbours.sweep_decoders)
Directions = Mapping[tuple[str, int, int], np.ndarray]

# the type every input column is read as (the tables may come with narrower integer types)
TYPES = {
    "category": pl.String,
    "sae": pl.String,
    "layer": pl.Int64,
    "feature": pl.Int64,
    "text_id": pl.String,
    "value": pl.Float64,
    "score": pl.Int64,
    "n_in": pl.Int64,
    "n_out": pl.Int64,
    "has_specialist": pl.Boolean,
}


def typed(*columns: str) -> list[pl.Expr]:
    """``columns`` cast to their type (TYPES), for a ``select``."""
    return [pl.col(c).cast(TYPES[c]) for c in columns]


def with_correlation(
    frame: pl.DataFrame,
    units: Mapping[str, str],
    acts: Frame,
    n_positions: int,
) -> pl.DataFrame:
    """``frame`` plus the ``correlation`` of the two units of each row; ``units`` names the
    frame's column for each of sae_a, layer_a, feature_a, sae_b, layer_b, feature_b."""
    if frame.height == 0:
        return frame.with_columns(pl.lit(None, dtype=pl.Float64).alias("correlation"))
    with_keys = frame.with_columns(pl.col(v).alias(k) for k, v in units.items())
    return pair_correlations(acts, with_keys, n_positions).drop(*units)

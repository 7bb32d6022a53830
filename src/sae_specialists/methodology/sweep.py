"""Threshold sensitivity: specialists found and each category's best score over a threshold grid.

For each SAE family and layer, every threshold of the grid is one row of a batch of the
vectorised selection (``scoring.select``), for two selection rules: ``top_k`` (the study's:
the ``candidates`` features with the highest in-category peak compete) and ``all_features``
(every feature active in the category competes).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import polars as pl

from ..analysis.dense import LayerData
from ..analysis.selection import WINNER_VALUES, Selection, select

RULES = ("top_k", "all_features")

SELECTION_SCHEMA = {
    "category": pl.String,
    "feature": pl.Int64,
    "score": pl.Int64,
    "n_in": pl.Int64,
    "n_out": pl.Int64,
    "peak": pl.Float64,
    "has_specialist": pl.Boolean,
}


def selection_frame(data: LayerData, c: int, sel: Selection) -> pl.DataFrame:
    """One row per batch row; feature/score/n_in/n_out/peak null where no feature is active."""
    none = sel.feature < 0
    return pl.DataFrame(
        {
            "category": [data.categories[c]] * len(sel.feature),
            "feature": [None if n else int(s) for s, n in zip(sel.feature, none, strict=True)],
            "score": [None if n else int(s) for s, n in zip(sel.score, none, strict=True)],
            "n_in": [None if n else int(s) for s, n in zip(sel.n_in, none, strict=True)],
            "n_out": [None if n else int(s) for s, n in zip(sel.n_out, none, strict=True)],
            "peak": [None if n else float(s) for s, n in zip(sel.peak, none, strict=True)],
            "has_specialist": sel.has_specialist.tolist(),
        },
        schema=SELECTION_SCHEMA,
    )


def rule_k(rule: str, candidates: int) -> int | None:
    return candidates if rule == "top_k" else None


def sweep_layer(
    data: LayerData, thresholds: Sequence[float], candidates: int, rules: Iterable[str] = RULES
) -> pl.DataFrame:
    """Tidy sweep of one (sae, layer): rule, threshold, category, winner columns."""
    thr = np.asarray(sorted(float(t) for t in thresholds), dtype=np.float64)
    ones = np.ones((len(thr), data.n_texts), dtype=np.int64)
    frames = []
    for rule in rules:
        for c in range(len(data.categories)):
            sel = select(data, c, ones, thr, rule_k(rule, candidates))
            frames.append(
                selection_frame(data, c, sel).with_columns(
                    pl.Series("threshold", thr), pl.lit(rule).alias("rule")
                )
            )
    df = pl.concat(frames, how="vertical").with_columns(
        pl.lit(data.sae).alias("sae"), pl.lit(data.layer, dtype=pl.Int64).alias("layer")
    )
    return df


def threshold_sweep(
    layers: Iterable[LayerData], thresholds: Sequence[float], candidates: int
) -> pl.DataFrame:
    """Every (rule, sae, layer, threshold, category), with specialists_found per (rule, sae,
    layer, threshold) and n_categories."""
    df = pl.concat([sweep_layer(d, thresholds, candidates) for d in layers], how="vertical")
    group = ["rule", "sae", "layer", "threshold"]
    return (
        df.with_columns(
            pl.col("has_specialist").sum().over(group).cast(pl.Int64).alias("specialists_found"),
            pl.len().over(group).cast(pl.Int64).alias("n_categories"),
        )
        .sort("rule", "sae", "layer", "threshold", "category", descending=[True] + [False] * 4)
        .select(
            "rule",
            "sae",
            "layer",
            "threshold",
            "category",
            *WINNER_VALUES,
            "specialists_found",
            "n_categories",
        )
    )


def sweep_thresholds(grid: Sequence[float], analysis_threshold: float) -> list[float]:
    """The sweep grid, sorted and de-duplicated, always including the analysis threshold."""
    return sorted({float(t) for t in grid} | {float(analysis_threshold)})

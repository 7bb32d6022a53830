"""Chance floor: held-out AUROC of random active features of similar density.

In every fold of a cell, the feature chosen on the training texts has a *density*: the share
of training texts on which it is active (per-text value > 0). ``draws`` features are drawn
(with replacement, numpy ``default_rng`` seeded from the seed, family, layer, category and fold)
among the other features whose training density is within ``tolerance`` of it (at least
``min_pool`` features: when fewer lie within the tolerance, the ``min_pool`` nearest in density,
ties by lower id) and scored on the fold's held-out texts like the specialist. The floor of the
cell is the median of those held-out AUROCs over all draws of all folds: what a feature that
fires as often as the specialist, but was not selected for the category, reaches.
"""

from __future__ import annotations

import zlib

import numpy as np

from ..analysis.dense import LayerData
from .heldout import HeldOut
from .metrics import rank_auroc


def density_pool(density: np.ndarray, own: int, tolerance: float, min_pool: int) -> np.ndarray:
    """Columns of active features (density > 0, not ``own``) within ``tolerance`` of the
    density of column ``own`` (at least ``min_pool`` of them: the nearest, ties by lower
    column)."""
    target = density[own]
    cols = np.flatnonzero(density > 0)
    cols = cols[cols != own]
    gap = np.abs(density[cols] - target)
    near = cols[gap <= tolerance + 1e-12]
    if len(near) >= min_pool or len(cols) <= len(near):
        return near
    order = np.lexsort((cols, gap))  # nearest first, then lower column
    return np.sort(cols[order[:min_pool]])


def fold_seed(seed: int, sae: str, layer: int, c: int, fold: int) -> list[int]:
    return [int(seed), zlib.crc32(sae.encode()), int(layer), int(c), int(fold)]


def random_floor(
    data: LayerData,
    held: HeldOut,
    draws: int,
    seed: int,
    tolerance: float = 0.05,
    min_pool: int = 10,
) -> dict:
    """floor_auroc (median held-out AUROC over every draw of every fold), floor_auroc_p95 and
    floor_draws (number of draws scored); None values when no fold chose a feature."""
    aucs = []
    active = data.values > 0
    for k in range(held.n_folds):
        feature = int(held.feature[k])
        if feature < 0 or draws <= 0:
            continue
        own = int(np.searchsorted(data.features, feature))
        train = held.folds != k
        test = np.flatnonzero(~train)
        density = active[train].mean(axis=0)
        pool = density_pool(density, own, tolerance, min_pool)
        if not len(pool):
            continue
        rng = np.random.default_rng(fold_seed(seed, data.sae, data.layer, held.c, k))
        drawn = rng.choice(pool, size=draws, replace=True)
        y = held.labels[test]
        if y.all() or not y.any():
            continue
        aucs.append(rank_auroc(data.values[np.ix_(test, drawn)], y))
    if not aucs:
        return {"floor_auroc": None, "floor_auroc_p95": None, "floor_draws": 0}
    allv = np.concatenate(aucs)
    return {
        "floor_auroc": float(np.median(allv)),
        "floor_auroc_p95": float(np.quantile(allv, 0.95, method="inverted_cdf")),
        "floor_draws": int(len(allv)),
    }

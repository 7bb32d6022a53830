"""Threshold-free separation: AUROC of per-text values, inside vs outside a category.

AUROC of feature f for category c = P(value on a random text of c > value on a random text
outside c) + 1/2 P(equal) (the Mann-Whitney U statistic / (n_in n_out)), computed from average
ranks over all texts, vectorised over features. 1.0: every text of the category has a higher
value than every other text; 0.5: no separation.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import polars as pl

from ..analysis.dense import LayerData
from ..analysis.selection import WINNER_SCHEMA, select, winner_row

COLUMN_BLOCK = 8192


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks along axis 0, ties sharing their average rank (like scipy's rankdata)."""
    n = values.shape[0]
    order = np.argsort(values, axis=0, kind="stable")
    s = np.take_along_axis(values, order, axis=0)
    idx = np.broadcast_to(np.arange(n)[:, None], s.shape)
    first = np.ones(s.shape, dtype=bool)
    first[1:] = s[1:] != s[:-1]
    last = np.ones(s.shape, dtype=bool)
    last[:-1] = first[1:]
    start = np.maximum.accumulate(np.where(first, idx, 0), axis=0)
    end = np.minimum.accumulate(np.where(last, idx, n - 1)[::-1], axis=0)[::-1]
    ranks = np.empty(s.shape, dtype=np.float64)
    np.put_along_axis(ranks, order, (start + end) / 2.0 + 1.0, axis=0)
    return ranks


def auroc_matrix(data: LayerData) -> np.ndarray:
    """[n_categories, n_features] AUROC of every active feature for every category (NaN when a
    category has no text outside it)."""
    n = data.n_texts
    sizes = data.category_sizes()
    out = np.full((len(data.categories), data.values.shape[1]), np.nan)
    onehot = (data.cat_index[None, :] == np.arange(len(data.categories))[:, None]).astype(float)
    for lo in range(0, data.values.shape[1], COLUMN_BLOCK):
        ranks = average_ranks(data.values[:, lo : lo + COLUMN_BLOCK])
        rank_sums = onehot @ ranks  # [n_cat, block]
        n_in = sizes[:, None].astype(float)
        n_out = n - n_in
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, lo : lo + COLUMN_BLOCK] = (rank_sums - n_in * (n_in + 1) / 2) / (n_in * n_out)
    return out


def auroc_table(layers: Iterable[LayerData], threshold: float, candidates: int) -> pl.DataFrame:
    """Per (sae, layer, category): the specialist (top-k rule at ``threshold``) with its AUROC
    and mean per-text value inside / outside the category, and the feature of highest AUROC
    among all features (ties: lower id)."""
    rows = []
    for data in layers:
        auc = auroc_matrix(data)
        for c in range(len(data.categories)):
            sel = select(data, c, None, threshold, candidates)
            feature = int(sel.feature[0])
            inside = data.cat_index == c
            row = {
                **winner_row(data, c, sel),
                "auroc": None,
                "mean_in": None,
                "mean_out": None,
                "best_auroc_feature": None,
                "best_auroc": None,
            }
            if feature >= 0:
                col = int(np.searchsorted(data.features, feature))
                row.update(
                    auroc=_num(auc[c, col]),
                    mean_in=float(data.values[inside, col].mean()),
                    mean_out=_num(data.values[~inside, col].mean()) if (~inside).any() else None,
                )
            if auc.shape[1] and not np.all(np.isnan(auc[c])):
                best = int(np.nanargmax(auc[c]))  # first maximum: lower feature id
                row.update(
                    best_auroc_feature=int(data.features[best]), best_auroc=_num(auc[c, best])
                )
            rows.append(row)
    return pl.DataFrame(rows, schema=AUROC_SCHEMA) if rows else pl.DataFrame(schema=AUROC_SCHEMA)


def _num(x) -> float | None:
    x = float(x)
    return None if np.isnan(x) else x


AUROC_SCHEMA = {
    **WINNER_SCHEMA,
    "auroc": pl.Float64,
    "mean_in": pl.Float64,
    "mean_out": pl.Float64,
    "best_auroc_feature": pl.Int64,
    "best_auroc": pl.Float64,
}

"""Separation metrics of per-text scores, inside (y = 1) vs outside (y = 0) a category.

AUROC = P(score of a random text of the category > score of a random other text) + 1/2
P(equal): scikit-learn's ``roc_auc_score`` for single evaluations, and ``rank_auroc`` (the
Mann-Whitney U statistic from average ranks, the same number) for many columns at once. At the
threshold, a text is *predicted* in the category when its per-text value > threshold (the
study's "fires"): precision, recall, F1 and balanced accuracy from scikit-learn
(``zero_division=0``: no predicted positive -> precision 0).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import (
    balanced_accuracy_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)


def auroc(y: np.ndarray, score: np.ndarray) -> float:
    """AUROC of ``score`` for labels ``y`` (NaN when y holds a single class)."""
    y = np.asarray(y, dtype=bool)
    if y.all() or not y.any():
        return math.nan
    return float(roc_auc_score(y, np.asarray(score, dtype=np.float64)))


def threshold_metrics(y: np.ndarray, values: np.ndarray, threshold: float) -> dict[str, float]:
    """precision, recall, f1, balanced_accuracy of the prediction ``values > threshold``."""
    y = np.asarray(y, dtype=bool)
    pred = np.asarray(values, dtype=np.float64) > threshold
    return {
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "balanced_accuracy": balanced_accuracy(y, pred),
    }


def balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean of the recalls of both classes (NaN when y holds a single class)."""
    y = np.asarray(y, dtype=bool)
    if y.all() or not y.any():
        return math.nan
    return float(balanced_accuracy_score(y, np.asarray(pred, dtype=bool)))


def rank_auroc(values: np.ndarray, y: np.ndarray) -> np.ndarray:
    """float64 [m]: AUROC of every column of ``values`` [n, m] for labels ``y`` [n] (NaN when
    y holds a single class)."""
    y = np.asarray(y, dtype=bool)
    n_in = int(y.sum())
    n_out = len(y) - n_in
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if n_in == 0 or n_out == 0:
        return np.full(values.shape[1], np.nan)
    ranks = rankdata(values, axis=0)
    return (ranks[y].sum(axis=0) - n_in * (n_in + 1) / 2.0) / (n_in * n_out)


def auroc_from_rank_sums(rank_sums: np.ndarray, n_in: int, n_total: int) -> np.ndarray:
    """AUROC from the sum of the in-category texts' average ranks (Mann-Whitney)."""
    n_out = n_total - n_in
    return (np.asarray(rank_sums, dtype=np.float64) - n_in * (n_in + 1) / 2.0) / (n_in * n_out)

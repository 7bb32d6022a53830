"""Separation metrics of per-text scores, inside (y = 1) vs outside (y = 0) a category.

AUROC = P(score of a random text of the category > score of a random other text) + 1/2
P(equal): the Mann-Whitney U statistic from average ranks, ``rank_auroc`` for many columns at
once. At the threshold, a text is *predicted* in the category when its per-text value >
threshold (the study's "fires"): precision = TP / (TP + FP) (0 when nothing is predicted),
recall = TP / (TP + FN), F1 = their harmonic mean (0 when both are 0), balanced accuracy = the
mean of the two classes' recalls.

These are the definitions of scikit-learn's ``roc_auc_score``, ``precision_score`` /
``recall_score`` / ``f1_score`` (``zero_division=0``) and ``balanced_accuracy_score``, and the
tests check them against those functions and a plain pair count; they are computed here from
ranks and counts because the stage evaluates a few thousand tiny held-out folds, where
scikit-learn's per-call input validation (~5-10 ms) would cost more than everything else.
"""

from __future__ import annotations

import math

import numpy as np


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks along axis 0, tied values sharing their average rank (scipy's
    ``rankdata(method="average", axis=0)``; numpy only: importing scipy.stats costs seconds)."""
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[0]
    order = np.argsort(values, axis=0, kind="stable")
    s = np.take_along_axis(values, order, axis=0)
    idx = np.broadcast_to(np.arange(n).reshape((n,) + (1,) * (values.ndim - 1)), s.shape)
    first = np.ones(s.shape, dtype=bool)
    first[1:] = s[1:] != s[:-1]
    last = np.ones(s.shape, dtype=bool)
    last[:-1] = first[1:]
    start = np.maximum.accumulate(np.where(first, idx, 0), axis=0)
    end = np.flip(np.minimum.accumulate(np.flip(np.where(last, idx, n - 1), 0), axis=0), 0)
    ranks = np.empty(s.shape, dtype=np.float64)
    np.put_along_axis(ranks, order, (start + end) / 2.0 + 1.0, axis=0)
    return ranks


def _classes(y) -> tuple[np.ndarray, int, int]:
    y = np.asarray(y, dtype=bool)
    n_in = int(y.sum())
    return y, n_in, len(y) - n_in


def rank_auroc(values: np.ndarray, y: np.ndarray) -> np.ndarray:
    """float64 [m]: AUROC of every column of ``values`` [n, m] (or [n]) for labels ``y`` [n]
    (NaN when y holds a single class)."""
    y, n_in, n_out = _classes(y)
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if n_in == 0 or n_out == 0:
        return np.full(values.shape[1], np.nan)
    ranks = average_ranks(values)
    return auroc_from_rank_sums(ranks[y].sum(axis=0), n_in, len(y))


def auroc_from_rank_sums(rank_sums: np.ndarray, n_in: int, n_total: int) -> np.ndarray:
    """AUROC from the sum of the in-category texts' average ranks (Mann-Whitney)."""
    n_out = n_total - n_in
    return (np.asarray(rank_sums, dtype=np.float64) - n_in * (n_in + 1) / 2.0) / (n_in * n_out)


def auroc(y: np.ndarray, score: np.ndarray) -> float:
    """AUROC of one score vector (NaN when y holds a single class)."""
    return float(rank_auroc(np.asarray(score, dtype=np.float64), y)[0])


def balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean of the recalls of both classes (NaN when y holds a single class)."""
    y, n_in, n_out = _classes(y)
    if n_in == 0 or n_out == 0:
        return math.nan
    pred = np.asarray(pred, dtype=bool)
    return float(((pred & y).sum() / n_in + (~pred & ~y).sum() / n_out) / 2.0)


def threshold_metrics(y: np.ndarray, values: np.ndarray, threshold: float) -> dict[str, float]:
    """precision, recall, f1, balanced_accuracy of the prediction ``values > threshold``."""
    y, n_in, _ = _classes(y)
    pred = np.asarray(values, dtype=np.float64) > threshold
    tp = int((pred & y).sum())
    n_pred = int(pred.sum())
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_in if n_in else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "balanced_accuracy": balanced_accuracy(y, pred),
    }

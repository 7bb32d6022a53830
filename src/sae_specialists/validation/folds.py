"""Stratified K-fold assignment of texts within categories.

Every category's texts are shuffled (numpy ``default_rng(seed)``, categories in index order)
and dealt round-robin into the folds, so each fold holds ~1/K of every category. The held-out
evaluation of category c uses K folds when c has at least K texts, and otherwise one fold per
text of c (leave-one-text-out for c; the other categories are dealt into as many folds). The
assignment depends only on the category labels, the fold count and the seed, so every SAE
family and layer sees the same folds (paired comparisons) and baselines share them too.
"""

from __future__ import annotations

import numpy as np


def assign_folds(cat_index: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """int64 [n_texts]: the fold (0 .. n_folds-1) of every text."""
    if n_folds < 1:
        raise ValueError(f"n_folds must be >= 1, got {n_folds}")
    cat_index = np.asarray(cat_index)
    rng = np.random.default_rng(seed)
    folds = np.empty(len(cat_index), dtype=np.int64)
    for c in np.unique(cat_index):
        rows = rng.permutation(np.flatnonzero(cat_index == c))
        folds[rows] = np.arange(len(rows)) % n_folds
    return folds


def category_folds(cat_index: np.ndarray, c: int, n_folds: int, seed: int) -> np.ndarray | None:
    """Folds used to validate category ``c``: ``assign_folds`` with min(n_folds, n_c) folds
    (n_c = texts of c), so every fold holds out at least one text of c. None when c has fewer
    than two texts (no fold could both train on and test c)."""
    n_c = int(np.sum(np.asarray(cat_index) == c))
    if n_c < 2:
        return None
    return assign_folds(cat_index, min(n_folds, n_c), seed)


def train_weights(folds: np.ndarray) -> np.ndarray:
    """int64 [K, n_texts]: row k weights 1 on the texts outside fold k (the training texts of
    fold k) and 0 on fold k (absent: counts nowhere, contributes to no peak)."""
    k = int(folds.max()) + 1 if len(folds) else 0
    return (folds[None, :] != np.arange(k)[:, None]).astype(np.int64)

"""Shuffled-label null: how good does the best specialist look when categories mean nothing?

A permutation p shuffles the category labels across all texts (category sizes are kept) and
reruns the study's selection for every category on the shuffled labels; its winner's score
n_in - n_out and in-sample AUROC form the null distribution of the cell (SAE family, layer,
category). The permutations depend only on the number of texts and the seed (numpy
``default_rng(seed).permuted``), so every family and layer sees the same ones.

Per cell: ``p_value`` = (1 + #{p: null score >= real score}) / (1 + N) (the real specialist's
score against the null's best scores; ``p_value_auroc`` the same with the in-sample AUROC) and
the null's 95th percentiles.

Vectorised with sparsity (no loop over permutations or features): the candidates of a category
are the k features of highest in-category peak, and a feature can only be among them if it is
among the k largest values (ties included) of the text where it peaks -- otherwise k features
beat it on that very text, hence on peak. So the union U of every text's top-k features (a few
hundred of the tens of thousands) holds every candidate of every labelling, and a feature's
peak restricted to the texts whose top-k list holds it equals its true peak whenever it is a
candidate (and never exceeds it otherwise), so the top-k by restricted peak is the top-k.
Scores need only U's columns of "value > threshold" (one [P, n] x [n, |U|] product per
category), and the tie-breaks are ``analysis.selection``'s own ``topk_mask`` and ``pick``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from ..analysis.dense import LayerData
from ..analysis.selection import pick, topk_mask
from .metrics import auroc_from_rank_sums, average_ranks

BLOCK_ELEMENTS = 4_000_000  # permutations x |U| per block (float64: ~32 MB per array)


def permutations(n_texts: int, n_permutations: int, seed: int) -> np.ndarray:
    """int64 [N, n_texts]: row p is a permutation of the texts; text i takes the label of
    text ``perm[p, i]``."""
    rng = np.random.default_rng(seed)
    base = np.broadcast_to(np.arange(n_texts, dtype=np.int64), (n_permutations, n_texts))
    return rng.permuted(base, axis=1)


@dataclass
class NullLayer:
    """The columns of one (SAE, layer) the null needs: U and each text's top-k entries."""

    features: np.ndarray  # int64 [u]: U, ascending
    entry_text: np.ndarray  # int64 [m]: text of each (text, feature) entry of a top-k list
    entry_col: np.ndarray  # int64 [m]: its column in U (entries sorted by column)
    entry_val: np.ndarray  # float64 [m]
    starts: np.ndarray  # int64 [u]: first entry of each column
    above: np.ndarray  # float32 [n, u]: per-text value > threshold
    n_total: np.ndarray  # int64 [u]: texts above the threshold
    ranks: np.ndarray  # float64 [n, u]: average ranks of each column over all texts


def top_entries(values: np.ndarray, k: int | None) -> np.ndarray:
    """bool [n, F]: each row's k largest positive values, every tie of the k-th included
    (``k=None``: every positive value)."""
    positive = values > 0
    if k is None or k >= values.shape[1]:
        return positive
    # row by row over its positive values only: a partition of whole rows, mostly zeros (ties),
    # took ~50 x longer; with fewer than k positives every positive value is kept, as before
    out = np.zeros_like(positive)
    for i, row_positive in enumerate(positive):
        cols = np.flatnonzero(row_positive)
        if len(cols) <= k:
            out[i, cols] = True
            continue
        row = values[i, cols]
        kth = np.partition(row, len(row) - k)[len(row) - k]
        out[i, cols[row >= kth]] = True
    return out


def null_layer(
    data: LayerData, threshold: float, k: int | None, mask: np.ndarray | None = None
) -> NullLayer:
    """``mask``: ``top_entries(data.values, k)`` when the caller has it (a text's top-k
    entries do not depend on the other texts: the learning curve takes its subsamples' rows
    of the full layer's mask)."""
    mask = top_entries(data.values, k) if mask is None else mask
    cols = np.flatnonzero(mask.any(axis=0))
    sub = data.values[:, cols]
    e_text, e_col = np.nonzero(mask[:, cols])
    order = np.argsort(e_col, kind="stable")
    e_text, e_col = e_text[order], e_col[order]
    starts = np.flatnonzero(np.r_[True, e_col[1:] != e_col[:-1]]) if len(e_col) else e_col
    above = sub > threshold
    return NullLayer(
        features=data.features[cols],
        entry_text=e_text,
        entry_col=e_col,
        entry_val=sub[e_text, e_col],
        starts=starts,
        above=above.astype(np.float32),
        n_total=above.sum(axis=0).astype(np.int64),
        ranks=average_ranks(sub) if len(cols) else np.zeros((data.n_texts, 0)),
    )


@dataclass
class NullCategory:
    """Winner of every permutation for one category (feature -1: nothing active)."""

    feature: np.ndarray  # int64 [N]
    score: np.ndarray  # int64 [N]
    auroc: np.ndarray  # float64 [N] in-sample AUROC of the winner on the shuffled labels


def null_category(nl: NullLayer, labels: np.ndarray, c: int, k: int | None) -> NullCategory:
    """``labels``: int64 [N, n] shuffled category index of every text in every permutation."""
    n_perm, n = labels.shape
    out = NullCategory(
        np.full(n_perm, -1, dtype=np.int64), np.zeros(n_perm, dtype=np.int64), np.full(n_perm, 0.5)
    )
    u = len(nl.features)
    n_c = int((labels[0] == c).sum()) if n_perm else 0
    if u == 0 or n_c == 0 or n_c == n:
        return out
    block = max(1, BLOCK_ELEMENTS // max(u, len(nl.entry_text)))
    for lo in range(0, n_perm, block):
        member = labels[lo : lo + block] == c  # [b, n]
        # restricted in-category peaks: max over the category's entries of each column
        peaks = np.maximum.reduceat(member[:, nl.entry_text] * nl.entry_val, nl.starts, axis=1)
        cand = topk_mask(peaks, k)
        n_in = (member.astype(np.float32) @ nl.above).astype(np.int64)
        score = 2 * n_in - nl.n_total[None, :]
        win = pick(score, peaks, cand)
        ok = np.flatnonzero(win >= 0)
        rows = lo + ok
        w = win[ok]
        out.feature[rows] = nl.features[w]
        out.score[rows] = score[ok, w]
        rank_sums = np.einsum("bn,nb->b", member[ok].astype(np.float64), nl.ranks[:, w])
        out.auroc[rows] = auroc_from_rank_sums(rank_sums, n_c, n)
    return out


def p_value(null: np.ndarray, real: float) -> float:
    """(1 + #{null >= real}) / (1 + N)."""
    null = np.asarray(null, dtype=np.float64)
    return float((1 + np.sum(null >= real)) / (1 + len(null)))


def percentile95(null: np.ndarray) -> float:
    """95th percentile of the null (an observed value: inverted CDF)."""
    return float(np.quantile(np.asarray(null, dtype=np.float64), 0.95, method="inverted_cdf"))


NULL_SCHEMA = {
    "sae": pl.String,
    "layer": pl.Int64,
    "category": pl.String,
    "permutation": pl.Int64,
    "feature": pl.Int64,
    "score": pl.Int64,
    "auroc": pl.Float64,
}


def null_frame(data: LayerData, category: str, res: NullCategory) -> pl.DataFrame:
    n = len(res.score)
    return pl.DataFrame(
        {
            "sae": [data.sae] * n,
            "layer": np.full(n, data.layer, dtype=np.int64),
            "category": [category] * n,
            "permutation": np.arange(n, dtype=np.int64),
            "feature": res.feature,
            "score": res.score,
            "auroc": res.auroc,
        },
        schema=NULL_SCHEMA,
    ).with_columns(pl.when(pl.col("feature") >= 0).then(pl.col("feature")).alias("feature"))

"""Vectorised specialist selection: the analysis definition applied to many weightings at once.

The definition (docs/analyses.md, ``analysis.tables``), per SAE family, layer and category c:
candidates are the k features with the highest in-category peak (max per-text value over the
category's texts; only features active in the category; ties: lower feature id); a feature's
score is n_in - n_out, the numbers of texts inside / outside c with per-text value > threshold;
the specialist is the candidate with the highest score, then the higher in-category peak, then
the lower feature id; the category *has* a specialist when that score is > 0.

Here a *row* b of a batch is one weighting of the texts (``weights[b, i]`` = how many times text
i is counted: 1 for the data as they are, bootstrap counts for a resample; a text with weight 0
is absent, so it neither counts nor contributes to a peak) together with one threshold. A batch
of B rows is computed with matrix products and row-wise reductions over a [B, n_features]
block, never a Python loop over rows or features: the point estimate is B = 1, a threshold
sweep is B = number of thresholds, a bootstrap is B = number of resamples. ``k=None`` scores
every feature active in the category (no candidate restriction).

This module is the one implementation of the rule: the candidates and specialists tables
(``analysis.tables``, via ``candidates_of`` and ``pick``), the bootstrap, the threshold sweep and
all-feature scoring all use it. The tests check it against an independent polars version
(tests/specialist_oracle.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import polars as pl

from .dense import LayerData, default_prefix

log = logging.getLogger("sae_specialists.methodology")

BLOCK_ELEMENTS = 4_000_000  # rows x features per block (float64: ~32 MB per array)
PREFIX_ENTRIES = None  # fast path: entries looked at (None: max(64, 4 k n_category))


@dataclass
class Selection:
    """Winner of one category for each row of a batch (feature -1: no candidate at all)."""

    feature: np.ndarray  # int64 [B] feature id, -1 when no feature is active in the category
    score: np.ndarray  # int64 [B] (0 when feature is -1)
    n_in: np.ndarray  # int64 [B]
    n_out: np.ndarray  # int64 [B]
    peak: np.ndarray  # float64 [B] in-category peak of the winner (0 when none)

    @property
    def has_specialist(self) -> np.ndarray:
        return (self.feature >= 0) & (self.score > 0)


# The columns that describe a category's winner (feature null when none is active), in the order
# every table shows them.
WINNER_VALUES = ["feature", "score", "n_in", "n_out", "peak", "has_specialist"]

# The key and winner columns of a table with one row per (sae, layer, category) winner.
WINNER_SCHEMA = {
    "sae": pl.String,
    "layer": pl.Int64,
    "category": pl.String,
    "feature": pl.Int64,
    "score": pl.Int64,
    "has_specialist": pl.Boolean,
}


def winner_row(data: LayerData, c: int, sel: Selection, b: int = 0) -> dict:
    """WINNER_SCHEMA's columns for row ``b`` of a selection of category ``c`` (feature and score
    None when no feature is active in the category)."""
    feature = int(sel.feature[b])
    return {
        "sae": data.sae,
        "layer": data.layer,
        "category": data.categories[c],
        "feature": feature if feature >= 0 else None,
        "score": int(sel.score[b]) if feature >= 0 else None,
        "has_specialist": bool(sel.has_specialist[b]),
    }


def in_category_peaks(values_c: np.ndarray, weights_c: np.ndarray) -> np.ndarray:
    """[B, F]: max over the category's texts present in row b (weight > 0) of values_c[i, f].

    values_c: [n_c, F] (>= 0), weights_c: [B, n_c]. One pass per text of the category (n_c is
    small: texts of one category), each a [B, F] vector operation.
    """
    peaks = np.zeros((weights_c.shape[0], values_c.shape[1]), dtype=np.float64)
    present = weights_c > 0
    for i in range(values_c.shape[0]):
        np.maximum(peaks, values_c[i][None, :] * present[:, i : i + 1], out=peaks)
    return peaks


def topk_mask(peaks: np.ndarray, k: int | None) -> np.ndarray:
    """Candidates per row: the k largest positive peaks, ties broken by lower column (columns
    are in ascending feature order). ``k=None``: every positive peak."""
    active = peaks > 0
    n_feat = peaks.shape[1]
    if k is None or k >= n_feat:
        return active
    if k <= 0:
        return np.zeros_like(active)
    kth = np.partition(peaks, n_feat - k, axis=1)[:, n_feat - k]  # k-th largest per row
    above = peaks > kth[:, None]
    tied = peaks == kth[:, None]
    need = k - above.sum(axis=1)
    take = tied & (np.cumsum(tied, axis=1) <= need[:, None])
    return (above | take) & active


def pick(score: np.ndarray, peaks: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """Column of the best candidate per row: highest score, then higher peak, then lower
    column; -1 for a row without candidates."""
    s = np.where(cand, score, np.iinfo(np.int64).min)
    best = s.max(axis=1)
    tie = cand & (score == best[:, None])
    p = np.where(tie, peaks, -np.inf)
    tie &= peaks == p.max(axis=1)[:, None]
    win = tie.argmax(axis=1)
    win[~cand.any(axis=1)] = -1
    return win


@dataclass
class Candidates:
    """The candidates of one category on the data as they are, in candidate order (in-category
    peak descending, then feature id ascending)."""

    feature: np.ndarray  # int64 [n <= k]
    peak: np.ndarray  # float64 [n]
    n_in: np.ndarray  # int64 [n]
    n_out: np.ndarray  # int64 [n]


def candidates_of(data: LayerData, c: int, threshold: float, k: int) -> Candidates:
    """The k candidates of category ``c`` (every text counted once) with their n_in / n_out."""
    rows_c = data.rows(c)
    peaks = in_category_peaks(data.values[rows_c], np.ones((1, len(rows_c)), dtype=np.int64))
    cols = np.flatnonzero(topk_mask(peaks, k)[0])
    cols = cols[np.lexsort((cols, -peaks[0, cols]))]
    ones = np.ones((1, data.n_texts), dtype=np.int64)
    n_in, n_tot = counts_above(data, c, cols, ones, np.array([float(threshold)]))
    return Candidates(data.features[cols], peaks[0, cols], n_in[0], (n_tot - n_in)[0])


def _thresholds(threshold, n_rows: int) -> np.ndarray:
    t = np.asarray(threshold, dtype=np.float64)
    return np.full(n_rows, float(t)) if t.ndim == 0 else t


def counts_above(
    data: LayerData, c: int, cols: np.ndarray, weights: np.ndarray, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(n_in, n_total) [B, len(cols)]: weighted counts of texts with value > threshold (row b
    uses thresholds[b]), inside category c and overall. One matrix product per distinct
    threshold (counts below 2**24 are exact in float32)."""
    rows_c = data.rows(c)
    n_in = np.empty((weights.shape[0], len(cols)), dtype=np.float64)
    n_tot = np.empty_like(n_in)
    sub = data.values[:, cols]
    w = weights.astype(np.float32, copy=False)  # small integer counts: exact in float32
    for t in np.unique(thresholds):
        sel = np.flatnonzero(thresholds == t)
        above = (sub > t).astype(np.float32)
        n_tot[sel] = w[sel] @ above
        n_in[sel] = w[sel][:, rows_c] @ above[rows_c]
    return n_in.astype(np.int64), n_tot.astype(np.int64)


def _empty(n_rows: int) -> Selection:
    return Selection(
        feature=np.full(n_rows, -1, dtype=np.int64),
        score=np.zeros(n_rows, dtype=np.int64),
        n_in=np.zeros(n_rows, dtype=np.int64),
        n_out=np.zeros(n_rows, dtype=np.int64),
        peak=np.zeros(n_rows, dtype=np.float64),
    )


def select(
    data: LayerData,
    c: int,
    weights: np.ndarray | None = None,
    threshold=5.0,
    k: int | None = 5,
    method: str = "auto",
    prefix: int | None = PREFIX_ENTRIES,
) -> Selection:
    """Specialist of category ``c`` for every row of the batch (see the module docstring).

    weights: [B, n_texts] non-negative integers (None: one row of ones); threshold: a float or
    one per row; k: number of candidates (None: every active feature).

    method ``dense`` works on [rows, active features] blocks (peaks, top-k mask, counts, pick);
    ``prefix`` (the default for k not None) only looks at the ``prefix`` largest (text, feature)
    values of the category: in a row, the candidates are the first k distinct features met
    walking down that list among the texts present, so only a few hundred entries and their
    features need counting; rows whose candidates are not all inside the prefix fall back to
    ``dense``. Both give identical results (tested).
    """
    if weights is None:
        weights = np.ones((1, data.n_texts), dtype=np.int64)
    weights = np.asarray(weights)
    thresholds = _thresholds(threshold, weights.shape[0])
    rows_c = data.rows(c)
    values_c = data.values[rows_c]
    cols = np.flatnonzero(values_c.max(axis=0, initial=0.0) > 0)  # active in the category
    out = _empty(weights.shape[0])
    if len(cols) == 0:
        return out
    todo = np.arange(weights.shape[0])
    if k is not None and method in ("auto", "prefix"):
        todo = _select_prefix(data, c, cols, weights, thresholds, k, prefix, out)
    if len(todo):
        if data.category_entries is not None:
            log.warning(
                "%s layer %s, %s: %d of %d weightings had fewer than %s distinct features among "
                "the category's largest entries; selected among the kept features only",
                data.sae,
                data.layer,
                data.categories[c],
                len(todo),
                weights.shape[0],
                k,
            )
        _select_dense(data, c, cols, weights, thresholds, k, out, todo)
    return out


def _store(out: Selection, where: np.ndarray, feature, score, n_in, n_out, peak) -> None:
    out.feature[where] = feature
    out.score[where] = score
    out.n_in[where] = n_in
    out.n_out[where] = n_out
    out.peak[where] = peak


def _select_dense(data, c, cols, weights, thresholds, k, out, todo) -> None:
    rows_c = data.rows(c)
    vc = data.values[rows_c][:, cols]
    block = max(1, BLOCK_ELEMENTS // len(cols))
    for lo in range(0, len(todo), block):
        sel = todo[lo : lo + block]
        w = weights[sel]
        peaks = in_category_peaks(vc, w[:, rows_c])
        cand = topk_mask(peaks, k)
        n_in, n_tot = counts_above(data, c, cols, w, thresholds[sel])
        score = 2 * n_in - n_tot  # n_in - (n_tot - n_in)
        win = pick(score, peaks, cand)
        ok = np.flatnonzero(win >= 0)
        wc = win[ok]
        _store(
            out,
            sel[ok],
            data.features[cols[wc]],
            score[ok, wc],
            n_in[ok, wc],
            (n_tot - n_in)[ok, wc],
            peaks[ok, wc],
        )


def _select_prefix(data, c, cols, weights, thresholds, k, prefix, out) -> np.ndarray:
    """Fast top-k path; fills ``out`` for the rows it resolves, returns the other rows."""
    rows_c = data.rows(c)
    vc = data.values[rows_c][:, cols]
    text_i, col_j = np.nonzero(vc > 0)
    val = vc[text_i, col_j]
    order = np.lexsort((text_i, col_j, -val))  # value desc, then feature asc
    if prefix is None:  # enough for k features present in every text of the category
        prefix = default_prefix(k, len(rows_c))
    # the prefix holds every entry of the category (counted before any column restriction)
    n_entries = len(order) if data.category_entries is None else int(data.category_entries[c])
    complete = n_entries <= prefix
    order = order[:prefix]
    e_text, e_col, e_val = text_i[order], col_j[order], val[order]
    m = len(order)
    # Entries regrouped by feature (stable: by list position inside a group), so that "an entry
    # of the same feature earlier in the list is present" is a segmented cumulative sum.
    group = np.argsort(e_col, kind="stable")
    g_col = e_col[group]
    starts = np.flatnonzero(np.r_[True, g_col[1:] != g_col[:-1]]) if m else np.zeros(0, int)
    start_of = np.repeat(starts, np.diff(np.r_[starts, m]))  # group start of each position
    uniq, e_u = np.unique(e_col, return_inverse=True)
    present = weights[:, rows_c] > 0
    todo = []
    block = max(1, BLOCK_ELEMENTS // max(m, 1))
    for lo in range(0, weights.shape[0], block):
        sel = np.arange(lo, min(lo + block, weights.shape[0]))
        inc = present[sel][:, e_text]  # [b, m]: entry's text is in the row
        inc_g = inc[:, group]
        # cumulative sums straight from the boolean arrays into int32: several times faster
        # than a cumsum of an int32 (or the default int64) array along rows
        cs = np.cumsum(inc_g, axis=1, dtype=np.int32)
        before_g = cs - inc_g - np.where(start_of > 0, cs[:, np.maximum(start_of - 1, 0)], 0)
        earlier = np.empty_like(inc)
        earlier[:, group] = before_g > 0
        first = inc & ~earlier  # the row's peak entry of its feature
        rank = np.cumsum(first, axis=1, dtype=np.int32)
        n_found = rank[:, -1] if m else np.zeros(len(sel), dtype=np.int64)
        ok = (n_found >= k) | complete
        todo.append(sel[~ok])
        sel_ok = sel[ok]
        if not len(sel_ok):
            continue
        first, rank = first[ok], rank[ok]
        slot_r, slot_e = np.nonzero(first & (rank <= k))
        cand = np.full((len(sel_ok), k), -1, dtype=np.int64)
        cand[slot_r, rank[slot_r, slot_e] - 1] = slot_e  # slots in (peak desc, id asc) order
        n_in, n_tot = counts_above(data, c, cols[uniq], weights[sel_ok], thresholds[sel_ok])
        valid = cand >= 0
        cu = e_u[np.where(valid, cand, 0)]  # [b, k] index into uniq
        r = np.arange(len(sel_ok))[:, None]
        c_in, c_tot = n_in[r, cu], n_tot[r, cu]
        score = np.where(valid, 2 * c_in - c_tot, np.iinfo(np.int64).min)
        best = score.argmax(axis=1)  # first max: higher peak, then lower id
        has = valid.any(axis=1)
        rr = np.flatnonzero(has)
        b_slot = best[rr]
        entry = cand[rr, b_slot]
        _store(
            out,
            sel_ok[rr],
            data.features[cols[e_col[entry]]],
            score[rr, b_slot],
            c_in[rr, b_slot],
            (c_tot - c_in)[rr, b_slot],
            e_val[entry],
        )
    return np.concatenate(todo) if todo else np.zeros(0, dtype=np.int64)


def feature_scores(
    data: LayerData, c: int, feature: int, weights: np.ndarray, threshold: float
) -> np.ndarray:
    """Score n_in - n_out of one fixed feature in category c for every row of ``weights``."""
    col = np.searchsorted(data.features, feature)
    if col >= len(data.features) or data.features[col] != feature:
        return np.zeros(weights.shape[0], dtype=np.int64)  # never active: no text above
    above = (data.values[:, col] > threshold).astype(np.int64)
    inside = data.cat_index == c
    w = np.asarray(weights, dtype=np.int64)
    n_in = w[:, inside] @ above[inside]
    n_out = w[:, ~inside] @ above[~inside]
    return n_in - n_out


def peak_rank(data: LayerData, c: int, feature: int) -> int | None:
    """Rank (1 = highest) of ``feature`` by in-category peak among features active in c
    (ties: lower id first), as in the candidate rule; None if inactive in c."""
    peaks = data.values[data.rows(c)].max(axis=0, initial=0.0)
    col = np.searchsorted(data.features, feature)
    if col >= len(data.features) or data.features[col] != feature or peaks[col] <= 0:
        return None
    p = peaks[col]
    ahead = (peaks > p) | ((peaks == p) & (np.arange(len(peaks)) < col))
    return int(ahead.sum()) + 1

"""The surface measures of one specialist, on in-memory arrays over its counted positions.

Inputs (one entry per counted position of every text, texts in text order, positions in order;
docs/surface.md):

- ``y``: the feature's activation there (0 where it is inactive: zeros included);
- ``token``: the token id there; ``prev``: the token id of the stored position before it in the
  same text (the BOS token for the first counted position; -1 when there is none);
- ``fold``: the held-out fold of the position's text (``validation.folds.category_folds`` of
  the specialist's category: the validation stage's folds); ``inside``: the text is in the
  specialist's category.

Measures:

- ``token_r2``: held-out R² (scikit-learn ``r2_score``, pooled over every position of every
  fold) of the predictor that knows only the token: the mean activation of that token id over
  the positions of the *training* texts of the position's fold; a token id absent from the
  training texts gets the training texts' mean over all positions. ``token_r2_seen``: the same
  R² over the positions whose token id occurs in the training texts of their fold (a specialist
  of many rare tokens, each seen once, cannot be predicted by any token table on held-out texts:
  ``unseen_mass`` is the share of its activation mass on such positions).
- ``bigram_r2``: the same with the pair (previous token, token) as the key; an unseen pair backs
  off to the token predictor (then to the mean), so the bigram predictor knows at least what the
  token predictor knows.
- ``top_tokens``: the token ids carrying most of the activation mass (sum of activations) over
  every counted position; ``top5_mass`` = share of the mass on the top 5.
- ``triggers``: the token ids carrying most of the mass *inside* the category: the fewest ids,
  by mass, whose mass reaches ``trigger_mass`` of the category's mass, at most ``max_triggers``.
  On every occurrence of a trigger id: mean activation inside the category (zeros included) and
  outside; ``outside_ratio`` = mean outside / mean inside, None when no trigger id occurs outside
  (the counts say so) or the inside mean is 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Positions:
    """The counted positions of one (family, layer): what every specialist's measures share."""

    token: np.ndarray  # int64 [n]
    prev: np.ndarray  # int64 [n] (-1: no previous stored position)
    text: np.ndarray  # int64 [n]: row of the position's text (text order)
    cat_index: np.ndarray  # int64 [n_texts]: category index of every text (sorted categories)

    def bigram(self) -> np.ndarray:
        """One int64 key per (previous token, token) pair."""
        width = int(max(self.token.max(initial=0), self.prev.max(initial=0))) + 2
        return (self.prev + 1) * width + self.token


def _group_means(keys: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique keys and the mean of ``y`` over each."""
    uniq, inverse = np.unique(keys, return_inverse=True)
    sums = np.bincount(inverse, weights=y, minlength=len(uniq))
    counts = np.bincount(inverse, minlength=len(uniq))
    return uniq, sums / counts


def _lookup(uniq: np.ndarray, means: np.ndarray, keys: np.ndarray, fallback: np.ndarray):
    """(``means`` of ``keys`` where the key is in ``uniq``, else ``fallback``; found mask)."""
    if not len(uniq):
        return fallback.copy(), np.zeros(len(keys), dtype=bool)
    at = np.minimum(np.searchsorted(uniq, keys), len(uniq) - 1)
    found = uniq[at] == keys
    return np.where(found, means[at], fallback), found


def held_out_means(keys: np.ndarray, y: np.ndarray, fold: np.ndarray, fallback=None):
    """(float64 [n], bool [n]): for every position, the mean of ``y`` over the training
    positions (other folds) with the same key, and whether the key occurs there at all;
    ``fallback`` (float64 [n]) where it does not, by default the training positions' mean."""
    pred = np.zeros(len(y), dtype=np.float64)
    seen = np.zeros(len(y), dtype=bool)
    for k in np.unique(fold):
        train, test = fold != k, fold == k
        uniq, means = _group_means(keys[train], y[train])
        base = (
            np.full(int(test.sum()), y[train].mean() if train.any() else 0.0)
            if fallback is None
            else fallback[test]
        )
        pred[test], seen[test] = _lookup(uniq, means, keys[test], base)
    return pred, seen


def r2(y: np.ndarray, pred: np.ndarray) -> float | None:
    """scikit-learn's R² (None for a constant ``y``, where it is undefined)."""
    from sklearn.metrics import r2_score

    if len(y) < 2 or float(np.var(y)) == 0.0:
        return None
    return float(r2_score(y, pred))


def token_predictions(pos: Positions, y: np.ndarray, fold: np.ndarray):
    """(token predictor, bigram predictor, token seen in training), held out: [n] each."""
    token_pred, seen = held_out_means(pos.token, y, fold)
    bigram_pred, _ = held_out_means(pos.bigram(), y, fold, fallback=token_pred)
    return token_pred, bigram_pred, seen


def token_mass(token: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Token ids with activation mass > 0 and their mass, largest first (ties: lower id)."""
    uniq, inverse = np.unique(token, return_inverse=True)
    mass = np.bincount(inverse, weights=y, minlength=len(uniq))
    keep = mass > 0
    uniq, mass = uniq[keep], mass[keep]
    order = np.lexsort((uniq, -mass))
    return uniq[order], mass[order]


def top_mass(token: np.ndarray, y: np.ndarray, k: int = 5) -> float | None:
    """Share of the activation mass on the ``k`` token ids with the most mass (None: no mass)."""
    _, mass = token_mass(token, y)
    total = float(mass.sum())
    return float(mass[:k].sum() / total) if total > 0 else None


def trigger_ids(token: np.ndarray, y: np.ndarray, share: float, most: int) -> np.ndarray:
    """The fewest token ids (by mass, at most ``most``) whose mass reaches ``share`` of the
    total mass of ``y`` (the positions given: the category's)."""
    ids, mass = token_mass(token, y)
    if not len(ids):
        return ids
    need = share * float(mass.sum())
    n = int(np.searchsorted(np.cumsum(mass), need * (1 - 1e-12))) + 1
    return ids[: min(n, most, len(ids))]


@dataclass(frozen=True)
class Outside:
    """Trigger tokens inside vs outside the category."""

    n_in: int  # occurrences of trigger ids inside the category
    n_out: int  # ... outside
    mean_in: float | None
    mean_out: float | None

    @property
    def ratio(self) -> float | None:
        if self.n_out == 0 or not self.mean_in:
            return None
        return self.mean_out / self.mean_in


def outside(token: np.ndarray, y: np.ndarray, inside: np.ndarray, ids: np.ndarray) -> Outside:
    """Mean activation on the occurrences of ``ids`` inside (``inside`` true) and outside."""
    hit = np.isin(token, ids)
    at_in, at_out = hit & inside, hit & ~inside
    n_in, n_out = int(at_in.sum()), int(at_out.sum())
    return Outside(
        n_in,
        n_out,
        float(y[at_in].mean()) if n_in else None,
        float(y[at_out].mean()) if n_out else None,
    )


@dataclass(frozen=True)
class TokenRow:
    """One token id of a specialist: its mass and where it occurs."""

    token_id: int
    rank: int  # by mass over every counted position (1 = most)
    mass_share: float  # of the mass over every counted position
    mass_share_in: float  # of the mass inside the category
    trigger: bool
    n_in: int
    n_out: int
    mean_in: float | None
    mean_out: float | None


@dataclass(frozen=True)
class Surface:
    """The measures of one specialist (module docstring)."""

    n_positions: int
    token_r2: float | None
    bigram_r2: float | None
    token_r2_seen: float | None  # over the positions whose token occurs in the training texts
    unseen_mass: float | None  # share of the activation mass on tokens unseen in training
    top5_mass: float | None
    triggers: np.ndarray  # int64: the trigger ids, by in-category mass
    trigger_mass_in: float | None  # share of the in-category mass on the triggers
    outside: Outside
    tokens: list[TokenRow]  # the top tokens overall and every trigger


def _shares(ids: np.ndarray, mass: np.ndarray) -> dict[int, float]:
    """token id -> its share of the mass (empty without mass)."""
    total = float(mass.sum())
    return dict(zip(ids.tolist(), (mass / total).tolist(), strict=True)) if total > 0 else {}


def measure(
    pos: Positions,
    y: np.ndarray,
    fold: np.ndarray,
    inside: np.ndarray,
    trigger_share: float,
    max_triggers: int,
    top: int = 5,
) -> Surface:
    """Every measure of one specialist. ``fold`` and ``inside`` are per position."""
    token_pred, bigram_pred, seen = token_predictions(pos, y, fold)
    total_mass = float(y.sum())
    ids_in, mass_in = token_mass(pos.token[inside], y[inside])
    total_in = float(mass_in.sum())
    triggers = trigger_ids(pos.token[inside], y[inside], trigger_share, max_triggers)
    ids_all, mass_all = token_mass(pos.token, y)
    total = float(mass_all.sum())
    shown = list(dict.fromkeys([*ids_all[:top].tolist(), *triggers.tolist()]))
    rank = {int(t): i + 1 for i, t in enumerate(ids_all)}
    share_all = (
        dict(zip(ids_all.tolist(), (mass_all / total).tolist(), strict=True)) if total else {}
    )
    share_in = (
        dict(zip(ids_in.tolist(), (mass_in / total_in).tolist(), strict=True)) if total_in else {}
    )
    rows = []
    for t in shown:
        where = outside(pos.token, y, inside, np.array([t]))
        rows.append(
            TokenRow(
                int(t),
                rank[int(t)],
                share_all.get(int(t), 0.0),
                share_in.get(int(t), 0.0),
                bool(np.isin(t, triggers)),
                where.n_in,
                where.n_out,
                where.mean_in,
                where.mean_out,
            )
        )
    trig_mass = float(mass_in[: len(triggers)].sum() / total_in) if total_in else None
    return Surface(
        n_positions=len(y),
        token_r2=r2(y, token_pred),
        bigram_r2=r2(y, bigram_pred),
        token_r2_seen=r2(y[seen], token_pred[seen]),
        unseen_mass=float(y[~seen].sum() / total_mass) if total_mass > 0 else None,
        top5_mass=float(mass_all[:top].sum() / total) if total else None,
        triggers=triggers,
        trigger_mass_in=trig_mass,
        outside=outside(pos.token, y, inside, triggers),
        tokens=rows,
    )


def finite_or_none(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)

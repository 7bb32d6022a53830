"""Per-cell statistics of the ablation effects: in- vs out-of-category Δloss, bootstrap
intervals, the density-matched random control and the "detector only" verdict (docs/causal.md).

A *cell* is one (SAE family, layer, category) with a specialist feature. For each ablation mode:

- in_mean / out_mean: mean per-text Δloss over the category's texts / all other texts (texts
  without a loss position are left out);
- diff = in_mean - out_mean and ratio = in_mean / out_mean (null when out_mean <= 0), with
  percentile bootstrap intervals: texts resampled with replacement within the category and
  within the rest, ``resamples`` times, seeded;
- the same numbers for the control: per text, the mean Δloss of the cell's control features
  (features of similar token density drawn at random, seeded per cell);
- above_control: the bootstrap interval of the paired in-category difference (specialist Δloss
  - control Δloss, text by text) lies above 0; above_zero: the interval of in_mean lies above 0
  (a control that *helps* the model when removed must not make a harmless feature look
  needed). ``detector_only`` = not (above_control and above_zero).
- verdict (zero ablation is the headline): "detector only"; else "specific" when the diff
  interval lies above 0; else "unspecific" (it matters, but not more for its category).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence

import numpy as np

CONTROL_POOL = 20  # density-nearest candidates a control is drawn from
MIN_DEFINED = 0.5  # a ratio interval needs out_mean > 0 in at least this share of resamples
NO_CONTROL = "no control"  # a clear effect, no density-matched control to compare


def cell_rng(
    seed: int, family: str, layer: int, category: str, salt: str = ""
) -> np.random.Generator:
    """The generator of one cell: independent of which other cells exist."""
    key = f"{family}\x1f{int(layer)}\x1f{category}\x1f{salt}".encode()
    return np.random.default_rng([int(seed), zlib.crc32(key)])


def draw_controls(
    density: np.ndarray,
    feature: int,
    exclude: Iterable[int],
    draws: int,
    rng: np.random.Generator,
    pool: int = CONTROL_POOL,
) -> list[int]:
    """``draws`` features of token density similar to ``feature``'s, drawn at random.

    Candidates: features that fire at all (density > 0), other than ``feature`` and ``exclude``
    (the layer's specialists); the ``pool`` nearest in log density (ties: lower id) are the pool
    the draws are taken from, without replacement. Fewer when fewer candidates exist."""
    density = np.asarray(density, dtype=np.float64)
    excluded = set(int(f) for f in exclude) | {int(feature)}
    candidates = np.array(
        [f for f in np.flatnonzero(density > 0) if int(f) not in excluded], dtype=np.int64
    )
    if not len(candidates) or draws <= 0:
        return []
    target = density[feature] if density[feature] > 0 else np.median(density[candidates])
    distance = np.abs(np.log(density[candidates]) - np.log(target))
    nearest = candidates[np.lexsort((candidates, distance))][:pool]
    picked = rng.choice(nearest, size=min(draws, len(nearest)), replace=False)
    return sorted(int(f) for f in picked)


def _finite(values) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return values[np.isfinite(values)]


def _interval(samples: np.ndarray, ci: float) -> tuple[float, float]:
    tail = (1.0 - ci) / 2.0 * 100.0
    low, high = np.percentile(samples, [tail, 100.0 - tail])
    return float(low), float(high)


# the effect values of one row (bootstrap_effect), in column order; the control's are prefixed
EFFECT_KEYS = ("in_mean", "in_low", "in_high", "out_mean", "diff", "diff_low", "diff_high")
EFFECT_KEYS += ("ratio", "ratio_low", "ratio_high")


def bootstrap_effect(
    inside, outside, resamples: int, rng: np.random.Generator, ci: float = 0.95
) -> dict[str, float | None]:
    """in_mean (with its interval in_low, in_high), out_mean, diff, ratio and their percentile
    bootstrap intervals."""
    inside, outside = _finite(inside), _finite(outside)
    out: dict[str, float | None] = dict.fromkeys(EFFECT_KEYS)
    out["n_in"], out["n_out"] = len(inside), len(outside)
    if not len(inside) or not len(outside):
        if len(inside):
            out["in_mean"] = float(inside.mean())
        if len(outside):
            out["out_mean"] = float(outside.mean())
        return out
    in_mean, out_mean = float(inside.mean()), float(outside.mean())
    out.update(
        in_mean=in_mean,
        out_mean=out_mean,
        diff=in_mean - out_mean,
        ratio=in_mean / out_mean if out_mean > 0 else None,
    )
    in_b = inside[rng.integers(0, len(inside), (resamples, len(inside)))].mean(1)
    out_b = outside[rng.integers(0, len(outside), (resamples, len(outside)))].mean(1)
    out["in_low"], out["in_high"] = _interval(in_b, ci)
    out["diff_low"], out["diff_high"] = _interval(in_b - out_b, ci)
    defined = out_b > 0
    if defined.mean() >= MIN_DEFINED and out["ratio"] is not None:
        out["ratio_low"], out["ratio_high"] = _interval(in_b[defined] / out_b[defined], ci)
    return out


def bootstrap_mean(
    values, resamples: int, rng: np.random.Generator, ci: float = 0.95
) -> tuple[float | None, float | None, float | None]:
    """Mean and percentile bootstrap interval of the mean (None when empty)."""
    values = _finite(values)
    if not len(values):
        return None, None, None
    boot = values[rng.integers(0, len(values), (resamples, len(values)))].mean(1)
    low, high = _interval(boot, ci)
    return float(values.mean()), low, high


def cell_effect(
    spec: np.ndarray,
    control: np.ndarray | None,
    in_category: np.ndarray,
    resamples: int,
    rng: np.random.Generator,
    ci: float = 0.95,
    min_effect: float = 0.0,
) -> dict:
    """One cell and mode: ``spec``/``control`` are per-text Δloss (NaN: no loss position),
    ``control`` the mean over the cell's control features (None: no control found).

    The feature matters on its category when the effect is both clear and large enough: the
    interval's lower bound above 0 *and* the point estimate at least ``min_effect`` nats
    (``causal.min_effect``), for the in-category Δloss (``above_zero``) and for its excess
    over the control's (``above_control``). A lower bound of 1e-9 (float rounding around a
    feature of no effect) is then still "detector only"."""
    spec = np.asarray(spec, dtype=np.float64)
    in_category = np.asarray(in_category, dtype=bool)
    row = bootstrap_effect(spec[in_category], spec[~in_category], resamples, rng, ci)
    if control is not None:
        control = np.asarray(control, dtype=np.float64)
        ctrl = bootstrap_effect(control[in_category], control[~in_category], resamples, rng, ci)
        paired = spec[in_category] - control[in_category]
        gap, gap_low, gap_high = bootstrap_mean(paired, resamples, rng, ci)
    else:
        ctrl = dict.fromkeys(row)
        gap = gap_low = gap_high = None
    for key in EFFECT_KEYS:
        row[f"control_{key}"] = ctrl[key]
    row.update(vs_control=gap, vs_control_low=gap_low, vs_control_high=gap_high)
    matters = row["in_low"] is not None and row["in_low"] > 0 and row["in_mean"] >= min_effect
    row["above_zero"] = matters
    if control is None and matters:
        # no density-matched random feature to compare with (a layer with too few active
        # features): the effect is clear but cannot be told from a generic ablation's, so
        # neither "needed" nor "detector only"
        row.update(above_control=None, detector_only=None, verdict=NO_CONTROL)
        return row
    above = gap_low is not None and gap_low > 0 and gap >= min_effect
    row["above_control"] = above
    row["detector_only"] = not (above and matters)
    row["verdict"] = verdict(above and matters, row["diff_low"])
    return row


def verdict(matters: bool, diff_low: float | None) -> str:
    """``matters``: the in-category Δloss is above the control's and above 0. (A cell without
    a control whose own effect is clear is ``NO_CONTROL``: ``cell_effect``.)"""
    if not matters:
        return "detector only"
    if diff_low is not None and diff_low > 0:
        return "specific"
    return "unspecific"


def mean_over(arrays: Sequence[np.ndarray]) -> np.ndarray | None:
    """Element-wise mean of per-text arrays (None for no arrays)."""
    if not arrays:
        return None
    return np.mean(np.stack([np.asarray(a, dtype=np.float64) for a in arrays]), axis=0)

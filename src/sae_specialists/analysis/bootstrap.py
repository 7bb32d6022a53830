"""Bootstrap stability of the reported specialists.

A resample draws, inside every category, as many texts as the category has, with replacement
(stratified: category sizes stay fixed, so n_in and n_out keep their ranges); a text drawn m
times counts m times in n_in / n_out, and a text not drawn is absent (it contributes to no
count and to no peak). Every resample reruns the full selection (candidates by in-category
peak, score, tie-breaks) as a row of one vectorised batch (``scoring.select``). The resamples
depend only on the text list and the seed (numpy ``default_rng(seed)``, categories in
alphabetical order), so every SAE family and layer sees the same resamples (paired) and the
result is identical for the same seed.

Per reported specialist (the winner on the data as they are, i.e. the specialists table):
- ``stability``: fraction of resamples in which the same feature wins;
- ``score_ci_low``/``score_ci_high``: percentile interval (coverage ``ci``) of *its* score
  n_in - n_out over the resamples (observed values: inverted-CDF quantiles);
- ``best_score_ci_*``: the same for the winning score, whichever feature wins;
- ``found_rate``: fraction of resamples in which the category has a specialist (score > 0);
- ``runner_up_feature``/``runner_up_share``: the feature winning most often besides it.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import polars as pl

from ..core.jobs import progress
from .dense import LayerData
from .selection import WINNER_SCHEMA, feature_scores, select, winner_row

SCHEMA = {
    **WINNER_SCHEMA,
    "stability": pl.Float64,
    "score_ci_low": pl.Int64,
    "score_ci_high": pl.Int64,
    "best_score_ci_low": pl.Int64,
    "best_score_ci_high": pl.Int64,
    "found_rate": pl.Float64,
    "runner_up_feature": pl.Int64,
    "runner_up_share": pl.Float64,
    "resamples": pl.Int64,
    "seed": pl.Int64,
    "ci": pl.Float64,
}

STABILITY_COLUMNS = [
    "sae",
    "layer",
    "category",
    "feature",
    "stability",
    "score_ci_low",
    "score_ci_high",
    "found_rate",
    "resamples",
    "ci",
]


def resample_weights(cat_index: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """[n_resamples, n_texts] int64 counts: per category (alphabetical order of the indices),
    n_c draws with replacement among its n_c texts."""
    rng = np.random.default_rng(seed)
    weights = np.zeros((n_resamples, len(cat_index)), dtype=np.int64)
    for c in np.unique(cat_index):
        rows = np.flatnonzero(cat_index == c)
        n = len(rows)
        weights[:, rows] = rng.multinomial(n, np.full(n, 1.0 / n), size=n_resamples)
    return weights


def interval(x: np.ndarray, ci: float) -> tuple[int, int]:
    alpha = (1.0 - ci) / 2.0
    lo, hi = np.quantile(x, [alpha, 1.0 - alpha], method="inverted_cdf")
    return int(lo), int(hi)


def bootstrap_layer(
    data: LayerData, weights: np.ndarray, threshold: float, candidates: int, ci: float, seed: int
) -> list[dict]:
    rows = []
    n_res = weights.shape[0]
    for c in range(len(data.categories)):
        point = select(data, c, None, threshold, candidates)
        feature = int(point.feature[0])
        sel = select(data, c, weights, threshold, candidates)
        best_lo, best_hi = interval(np.where(sel.feature >= 0, sel.score, 0), ci)
        row = {
            **winner_row(data, c, point),
            "stability": None,
            "score_ci_low": None,
            "score_ci_high": None,
            "best_score_ci_low": best_lo,
            "best_score_ci_high": best_hi,
            "found_rate": float(sel.has_specialist.mean()),
            "runner_up_feature": None,
            "runner_up_share": None,
            "resamples": n_res,
            "seed": int(seed),
            "ci": float(ci),
        }
        if feature >= 0:
            own = feature_scores(data, c, feature, weights, threshold)
            lo, hi = interval(own, ci)
            others = sel.feature[(sel.feature != feature) & (sel.feature >= 0)]
            row.update(
                stability=float((sel.feature == feature).mean()),
                score_ci_low=lo,
                score_ci_high=hi,
            )
            if len(others):
                ids, counts = np.unique(others, return_counts=True)
                top = int(np.argmax(counts))  # most frequent; ties: lower id (ids ascending)
                row.update(
                    runner_up_feature=int(ids[top]), runner_up_share=float(counts[top] / n_res)
                )
        rows.append(row)
    return rows


def bootstrap_table(
    layers: Iterable[LayerData],
    threshold: float,
    candidates: int,
    n_resamples: int,
    seed: int,
    ci: float = 0.95,
) -> pl.DataFrame:
    rows: list[dict] = []
    weights = None
    layers = list(layers)
    for data in progress(layers, desc=f"{n_resamples} resamples", unit="layers"):
        if weights is None:
            weights = resample_weights(data.cat_index, n_resamples, seed)
        rows += bootstrap_layer(data, weights, threshold, candidates, ci, seed)
    return pl.DataFrame(rows, schema=SCHEMA) if rows else pl.DataFrame(schema=SCHEMA)


def stability_columns(boot: pl.DataFrame) -> pl.DataFrame:
    """The columns to join onto the specialists table on (sae, layer, category, feature); the
    key types are the specialists table's (feature Int32, null when a category has no active
    feature: join with ``nulls_equal=True``)."""
    return boot.select(STABILITY_COLUMNS).with_columns(pl.col("feature").cast(pl.Int32))

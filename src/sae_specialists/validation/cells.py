"""Per-layer orchestration and the per-cell table of the stage.

``heldout_layer`` (held-out selection + random floor) and ``null_layer_rows`` (shuffled-label
null) each handle every category of one (SAE family, layer) and run in their own jobs;
``join_cells`` joins their rows, ``with_verdicts`` adds the baselines' mean held-out AUROC and
balanced accuracy and the verdict.
"""

from __future__ import annotations

import numpy as np

from ..analysis.dense import LayerData
from ..analysis.selection import select
from .floor import random_floor
from .folds import category_folds
from .heldout import HeldOut, feature_values, heldout_category
from .metrics import auroc
from .null import NullCategory, null_category, null_layer, p_value, percentile95
from .table import (  # noqa: F401  (the cell table's schemas and joins, re-exported)
    CELL_SCHEMA,
    HELDOUT_SCHEMA,
    KEY_SCHEMA,
    KEYS,
    NULL_CELL_SCHEMA,
    baseline_means,
    frame,
    join_cells,
    with_verdicts,
)


def _full(
    data: LayerData, c: int, threshold: float, candidates: int | None
) -> tuple[int, int, float | None]:
    """The full-data specialist (feature, score; -1, 0 when nothing is active in the category)
    and its in-sample AUROC."""
    sel = select(data, c, None, threshold, candidates)
    feature = int(sel.feature[0])
    score = int(sel.score[0]) if feature >= 0 else 0
    auc = auroc(data.cat_index == c, feature_values(data, feature))
    return feature, score, (None if np.isnan(auc) else auc)


def _cell_row(schema: dict, data: LayerData, category: str, **values) -> dict:
    """A ``schema`` row (every column, in order; null unless given) of one category of the
    layer ``data``."""
    row = dict.fromkeys(schema)
    row.update(sae=data.sae, layer=data.layer, category=category, **values)
    return row


def heldout_layer(
    data: LayerData,
    *,
    threshold: float,
    candidates: int | None,
    n_folds: int,
    seed: int,
    draws: int,
    tolerance: float = 0.05,
    min_pool: int = 10,
) -> tuple[list[HeldOut], list[dict]]:
    """Held-out results (categories with >= 2 texts) and one HELDOUT_SCHEMA row per category
    of one layer."""
    held_all, rows = [], []
    for c, category in enumerate(data.categories):
        feature, score, auc = _full(data, c, threshold, candidates)
        row = _cell_row(
            HELDOUT_SCHEMA,
            data,
            category,
            feature=feature if feature >= 0 else None,
            score=score if feature >= 0 else None,
            has_specialist=bool(feature >= 0 and score > 0),
            in_sample_auroc=auc,
            threshold=float(threshold),
            candidates=candidates,
            folds=int(n_folds),
            seed=int(seed),
            floor_draws=0,
            n_folds=0,
        )
        folds = category_folds(data.cat_index, c, n_folds, seed)
        if folds is not None:
            held = heldout_category(data, c, folds, threshold, candidates)
            held_all.append(held)
            row.update(held.summary())
            row.update(random_floor(data, held, draws, seed, tolerance, min_pool))
        rows.append(row)
    return held_all, rows


def null_layer_rows(
    data: LayerData, labels: np.ndarray, *, threshold: float, candidates: int | None, seed: int
) -> tuple[list[NullCategory], list[dict]]:
    """Null winners and one NULL_CELL_SCHEMA row per category of one layer.

    labels: int64 [N, n_texts], the shuffled category index of every text per permutation
    (``data.cat_index[null.permutations(...)]``)."""
    nl = null_layer(data, threshold, candidates)
    nulls, rows = [], []
    for c, category in enumerate(data.categories):
        feature, score, auc = _full(data, c, threshold, candidates)
        res = null_category(nl, labels, c, candidates)
        nulls.append(res)
        row = _cell_row(
            NULL_CELL_SCHEMA,
            data,
            category,
            null_feature=feature if feature >= 0 else None,
            permutations=int(labels.shape[0]),
            permutation_seed=int(seed),
        )
        if labels.shape[0]:
            row.update(
                p_value=p_value(res.score, score),
                p_value_auroc=None if auc is None else p_value(res.auroc, auc),
                null_score_p95=percentile95(res.score),
                null_auroc_p95=percentile95(res.auroc),
            )
        rows.append(row)
    return nulls, rows


def validate_layer(
    data: LayerData,
    labels: np.ndarray,
    *,
    threshold: float,
    candidates: int | None,
    seed: int,
    **heldout,
) -> tuple[list[HeldOut], list[NullCategory], list[dict]]:
    """Held-out results, null winners and the joined cell rows (CELL_SCHEMA) of one layer;
    ``heldout``: heldout_layer's other settings (n_folds, draws; tolerance, min_pool)."""
    common = {"threshold": threshold, "candidates": candidates, "seed": seed}
    held, h_rows = heldout_layer(data, **common, **heldout)
    nulls, n_rows = null_layer_rows(data, labels, **common)
    cells = join_cells(frame(h_rows, HELDOUT_SCHEMA), frame(n_rows, NULL_CELL_SCHEMA))
    return held, nulls, cells.to_dicts()

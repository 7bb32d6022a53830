"""All-feature scoring vs the study's top-k candidate rule.

The study only scored the ``candidates`` (5) features with the highest in-category peak. A
feature that fires moderately on every text of a category and nowhere else can have the best
score of all yet a peak below five louder, less selective features. Here every feature active
in the category is scored (vectorised), and each category where the best feature overall beats
the top-k winner is reported as *missed by top-k*.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import polars as pl

from ..analysis.dense import LayerData
from ..analysis.selection import peak_rank, select

SCHEMA = {
    "sae": pl.String,
    "layer": pl.Int64,
    "category": pl.String,
    "topk_feature": pl.Int64,
    "topk_score": pl.Int64,
    "topk_has_specialist": pl.Boolean,
    "all_feature": pl.Int64,
    "all_score": pl.Int64,
    "all_n_in": pl.Int64,
    "all_n_out": pl.Int64,
    "all_peak": pl.Float64,
    "all_peak_rank": pl.Int64,
    "all_has_specialist": pl.Boolean,
    "n_better": pl.Int64,
    "missed": pl.Boolean,
    "gained_specialist": pl.Boolean,
    "n_active": pl.Int64,
    "threshold": pl.Float64,
    "candidates": pl.Int64,
}


def _opt(value: int):
    return None if value < 0 else int(value)


def all_feature_table(
    layers: Iterable[LayerData], threshold: float, candidates: int
) -> pl.DataFrame:
    """Per (sae, layer, category): the top-k winner, the best of all features (its peak rank:
    1 = the loudest feature in the category), n_better (features scoring above the top-k
    winner), missed (the best overall scores higher than the top-k winner) and
    gained_specialist (the category has a specialist only without the restriction)."""
    rows = []
    for data in layers:
        above = (data.values > threshold).astype(np.int64)
        for c, category in enumerate(data.categories):
            topk = select(data, c, None, threshold, candidates)
            best = select(data, c, None, threshold, None)
            inside = data.cat_index == c
            active = data.values[inside].max(axis=0, initial=0.0) > 0
            scores = above[inside].sum(axis=0) - above[~inside].sum(axis=0)
            t_feat, a_feat = int(topk.feature[0]), int(best.feature[0])
            t_score = int(topk.score[0]) if t_feat >= 0 else None
            a_score = int(best.score[0]) if a_feat >= 0 else None
            n_better = int((active & (scores > t_score)).sum()) if t_score is not None else 0
            rows.append(
                {
                    "sae": data.sae,
                    "layer": data.layer,
                    "category": category,
                    "topk_feature": _opt(t_feat),
                    "topk_score": t_score,
                    "topk_has_specialist": bool(topk.has_specialist[0]),
                    "all_feature": _opt(a_feat),
                    "all_score": a_score,
                    "all_n_in": int(best.n_in[0]) if a_feat >= 0 else None,
                    "all_n_out": int(best.n_out[0]) if a_feat >= 0 else None,
                    "all_peak": float(best.peak[0]) if a_feat >= 0 else None,
                    "all_peak_rank": peak_rank(data, c, a_feat) if a_feat >= 0 else None,
                    "all_has_specialist": bool(best.has_specialist[0]),
                    "n_better": n_better,
                    "missed": a_score is not None and t_score is not None and a_score > t_score,
                    "gained_specialist": bool(
                        best.has_specialist[0] and not topk.has_specialist[0]
                    ),
                    "n_active": int(active.sum()),
                    "threshold": float(threshold),
                    "candidates": int(candidates),
                }
            )
    return pl.DataFrame(rows, schema=SCHEMA) if rows else pl.DataFrame(schema=SCHEMA)

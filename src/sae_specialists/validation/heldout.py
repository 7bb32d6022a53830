"""Held-out selection: the study's rule on the training texts of a fold, judged on the rest.

For every fold k of category c (``folds.category_folds``), the specialist selection of
``analysis.selection`` (top-``candidates`` features by in-category peak, score n_in - n_out at
the threshold, tie-breaks) runs on the texts outside fold k only: they are a weighting of the
texts with weight 0 on fold k, so the held-out texts count nowhere and contribute to no peak.
All folds of a category are one batch of ``select``. The feature chosen in fold k is then
evaluated on fold k's texts with its per-text values (same aggregation and BOS rule as the
analysis: they are the analysis' per-text values): AUROC (in vs out), and precision / recall /
F1 / balanced accuracy of "per-text value > threshold".

``fold_agreement`` is the share of folds choosing the full-data specialist (the analysis'
specialist). A fold whose training texts have no feature active in the category (feature -1)
evaluates an all-zero score: AUROC 0.5, nothing predicted.

``test_set_rows``: the optional separate test set (``validation.test_texts``): the full-data
specialist evaluated on the test texts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from ..analysis.dense import LayerData
from ..analysis.selection import select
from .folds import train_weights
from .metrics import auroc, threshold_metrics

# a feature's metrics on texts it was not selected on (a held-out fold, the test set)
METRIC_SCHEMA = {
    "n_test_in": pl.Int64,
    "n_test_out": pl.Int64,
    "auroc": pl.Float64,
    "precision": pl.Float64,
    "recall": pl.Float64,
    "f1": pl.Float64,
    "balanced_accuracy": pl.Float64,
}
FOLD_SCHEMA = {
    "sae": pl.String,
    "layer": pl.Int64,
    "category": pl.String,
    "fold": pl.Int64,
    "n_folds": pl.Int64,
    "feature": pl.Int64,
    "train_score": pl.Int64,
    "train_has_specialist": pl.Boolean,
    "is_full_specialist": pl.Boolean,
    **METRIC_SCHEMA,
}


@dataclass
class HeldOut:
    """Held-out results of one (SAE, layer, category)."""

    sae: str
    layer: int
    category: str
    c: int
    folds: np.ndarray  # int64 [n_texts]: fold of every text
    labels: np.ndarray  # bool [n_texts]: text in the category
    full_feature: int  # the full-data specialist (-1: nothing active in the category)
    full_score: int
    feature: np.ndarray  # int64 [K]: feature chosen on the training texts of each fold
    train_score: np.ndarray  # int64 [K]
    metrics: list[dict[str, float]]  # per fold: auroc, precision, recall, f1, balanced_accuracy

    @property
    def n_folds(self) -> int:
        return len(self.feature)

    def rows(self) -> list[dict]:
        out = []
        for k in range(self.n_folds):
            test = self.folds == k
            y = self.labels[test]
            out.append(
                {
                    "sae": self.sae,
                    "layer": self.layer,
                    "category": self.category,
                    "fold": k,
                    "n_folds": self.n_folds,
                    "feature": int(self.feature[k]) if self.feature[k] >= 0 else None,
                    "train_score": int(self.train_score[k]),
                    "train_has_specialist": bool(self.feature[k] >= 0 and self.train_score[k] > 0),
                    "is_full_specialist": bool(
                        self.full_feature >= 0 and self.feature[k] == self.full_feature
                    ),
                    "n_test_in": int(y.sum()),
                    "n_test_out": int((~y).sum()),
                    **{name: _opt(x) for name, x in self.metrics[k].items()},
                }
            )
        return out

    def summary(self) -> dict:
        auc = np.array([m["auroc"] for m in self.metrics], dtype=np.float64)
        ok = auc[~np.isnan(auc)]
        agree = (
            float(np.mean(self.feature == self.full_feature)) if self.full_feature >= 0 else None
        )
        return {
            "n_folds": self.n_folds,
            "heldout_auroc": float(ok.mean()) if len(ok) else None,
            "heldout_auroc_std": float(ok.std()) if len(ok) else None,
            "heldout_auroc_min": float(ok.min()) if len(ok) else None,
            "heldout_auroc_max": float(ok.max()) if len(ok) else None,
            **{
                f"heldout_{name}": _mean([m[name] for m in self.metrics])
                for name in ("precision", "recall", "f1", "balanced_accuracy")
            },
            "fold_agreement": agree,
        }


def _opt(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def _mean(xs: list[float]) -> float | None:
    xs = [x for x in xs if not math.isnan(x)]
    return float(np.mean(xs)) if xs else None


def feature_values(data: LayerData, feature: int, rows: np.ndarray | None = None) -> np.ndarray:
    """Per-text values of ``feature`` (0 on every text when it is never active)."""
    rows = np.arange(data.n_texts) if rows is None else rows
    col = int(np.searchsorted(data.features, feature))
    if feature < 0 or col >= len(data.features) or data.features[col] != feature:
        return np.zeros(len(rows), dtype=np.float64)
    return data.values[rows, col]


def evaluate(y: np.ndarray, values: np.ndarray, threshold: float) -> dict[str, float]:
    """Held-out metrics of one feature's per-text values."""
    return {"auroc": auroc(y, values), **threshold_metrics(y, values, threshold)}


def heldout_category(
    data: LayerData, c: int, folds: np.ndarray, threshold: float, candidates: int | None
) -> HeldOut:
    """Select on each fold's training texts (one batch), evaluate on its held-out texts."""
    full = select(data, c, None, threshold, candidates)
    sel = select(data, c, train_weights(folds), threshold, candidates)
    metrics = []
    for k in range(len(sel.feature)):
        test = np.flatnonzero(folds == k)
        y = data.cat_index[test] == c
        metrics.append(evaluate(y, feature_values(data, int(sel.feature[k]), test), threshold))
    return HeldOut(
        sae=data.sae,
        layer=data.layer,
        category=data.categories[c],
        c=c,
        folds=folds,
        labels=data.cat_index == c,
        full_feature=int(full.feature[0]),
        full_score=int(full.score[0]),
        feature=sel.feature.copy(),
        train_score=np.where(sel.feature >= 0, sel.score, 0),
        metrics=metrics,
    )


def heldout_frame(results: list[HeldOut]) -> pl.DataFrame:
    rows = [r for h in results for r in h.rows()]
    return pl.DataFrame(rows, schema=FOLD_SCHEMA) if rows else pl.DataFrame(schema=FOLD_SCHEMA)


TEST_SET_SCHEMA = {
    "sae": pl.String,
    "layer": pl.Int64,
    "category": pl.String,
    "feature": pl.Int64,
    **METRIC_SCHEMA,
}


def test_set_rows(
    study: LayerData, test: LayerData, threshold: float, candidates: int | None
) -> list[dict]:
    """Per category of the study: the full-data specialist (selected on every study text)
    evaluated on the test texts (labels by category name; a study category absent from the
    test set gets no metrics)."""
    rows = []
    test_cats = np.array(test.categories, dtype=object)[test.cat_index]
    for c, category in enumerate(study.categories):
        feature = int(select(study, c, None, threshold, candidates).feature[0])
        y = test_cats == category
        values = feature_values(test, feature)
        m = (
            evaluate(y, values, threshold)
            if y.any()
            else dict.fromkeys(
                ("auroc", "precision", "recall", "f1", "balanced_accuracy"), math.nan
            )
        )
        rows.append(
            {
                "sae": study.sae,
                "layer": study.layer,
                "category": category,
                "feature": feature if feature >= 0 else None,
                "n_test_in": int(y.sum()),
                "n_test_out": int((~y).sum()),
                **{name: _opt(x) for name, x in m.items()},
            }
        )
    return rows

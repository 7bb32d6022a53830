"""Validation on the demo's planted cases (the session's shared demo run; what is planted:
sae_specialists/demo and planted.json, whose ``expected`` numbers the demo builder's tests
compute independently): exact verdicts, p-values equal to that independent computation (the
same 1,000 label shuffles), held-out AUROC recomputed here with scikit-learn and a plain rule.

- planted specialists (python, urls, social; conversational and non_english from layer 1)
  generalise: held-out AUROC >= 0.95, p < 0.01;
- recipes (no planted signal): the rule's winner (lottery_dinner) scores 2 - 1 = 1, so the
  study calls it a specialist; validation flags it (p > 0.05, held-out AUROC near 0.5);
- poetry (signal spread over four weak features): the dense probe and the k=5 probe beat the
  single specialist on the same folds.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score
from test_validation_units import naive_select

from sae_specialists.validation.folds import category_folds

GENERALISING = {
    "python": (0, 1, 2, 3),
    "urls": (0, 1, 2, 3),
    "social": (0, 1, 2, 3),
    "conversational": (1, 2, 3),
    "non_english": (1, 2, 3),
}
LAYERS = (0, 1, 2, 3)


@pytest.fixture(scope="module")
def demo(demo_run):
    cells = pl.read_parquet(demo_run.results / "validation" / "cells.parquet")
    return cells.filter(pl.col("sae") == "res"), demo_run.planted, demo_run


def cell(cells: pl.DataFrame, category: str, layer: int) -> dict:
    rows = cells.filter((pl.col("category") == category) & (pl.col("layer") == layer))
    assert rows.height == 1, (category, layer)
    return rows.row(0, named=True)


def test_planted_specialists_generalise(demo):
    cells, planted, _ = demo
    for category, layers in GENERALISING.items():
        for layer in layers:
            r = cell(cells, category, layer)
            assert r["feature"] == planted["layers"][str(layer)][category]
            assert r["heldout_auroc"] >= 0.95 and r["p_value"] < 0.01, r
            assert r["fold_agreement"] == 1.0
            assert r["verdict"] == "generalises", r["verdict_text"]


def test_no_signal_category_is_flagged(demo):
    cells, planted, run = demo
    spec = pl.read_parquet(run.results / "tables" / "specialists.parquet")
    for layer in LAYERS:
        r = cell(cells, "recipes", layer)
        # the study's rule calls lottery_dinner (2 recipes, 1 conversational text) a specialist
        assert r["feature"] == planted["layers"][str(layer)]["lottery_dinner"]
        assert (r["score"], r["has_specialist"]) == (1, True)
        assert cell(spec.filter(pl.col("sae") == "res"), "recipes", layer)["has_specialist"]
        # ... validation does not
        assert r["p_value"] > 0.05
        assert abs(r["heldout_auroc"] - 0.5) <= 0.05
        assert r["verdict"].startswith("does not generalise, not better than chance"), r
        assert r["fails_heldout"]


def test_spread_category_loses_to_the_probes(demo):
    cells, planted, _ = demo
    for layer in LAYERS:
        r = cell(cells, "poetry", layer)
        roles = planted["layers"][str(layer)]
        groups = {roles[k] for k in roles if k.startswith("poetry_")}
        assert r["feature"] in groups and r["score"] == 6  # one group feature: 6 of 12 poems
        assert r["heldout_auroc"] < 0.7
        for baseline in ("dense_probe", "ksparse_5", "diffmean"):
            assert r[f"{baseline}_auroc"] >= 0.99, (baseline, r)
            assert r[f"{baseline}_auroc"] > r["heldout_auroc"] + 0.3
        assert "loses to probe" in r["verdict"] and r["best_baseline"] is not None


def test_p_values_equal_the_independent_computation(demo):
    cells, planted, _ = demo
    expected = planted["expected"]["validation"]["cells"]
    for category, per_layer in expected.items():
        for layer, numbers in per_layer.items():
            r = cell(cells, category, int(layer))
            assert r["p_value"] == pytest.approx(numbers["permutation_p"], abs=1e-12), r
    lottery = planted["expected"]["validation"]["lottery"]["permutation_p"]
    for layer in LAYERS:
        assert cell(cells, "recipes", layer)["p_value"] == pytest.approx(lottery[str(layer)])


def test_heldout_auroc_recomputed_with_scikit_learn(demo):
    """Each fold's winner re-selected on the training texts by a plain implementation of the
    rule, its held-out AUROC by scikit-learn, the mean over folds equal to the table's."""
    cells, _, run = demo
    texts = pl.read_parquet(run.results / "per_text" / "texts.parquet").sort("text_order")
    categories = sorted(texts["category"].unique().to_list())
    cat_index = np.array([categories.index(c) for c in texts["category"]])
    folds_table = pl.read_parquet(run.results / "validation" / "folds.parquet")
    seed, n_folds = run.config["validation"]["seed"], run.config["validation"]["folds"]
    threshold = run.config["analysis"]["threshold"]
    k = run.config["analysis"]["candidates"]
    for layer in (0, 3):
        pt = pl.read_parquet(run.results / "per_text" / "sae=res" / f"layer={layer}.parquet")
        features = np.sort(pt["feature"].unique().to_numpy())
        row = {t: i for i, t in enumerate(texts["text_id"])}
        values = np.zeros((texts.height, len(features)))
        values[[row[t] for t in pt["text_id"]], np.searchsorted(features, pt["feature"])] = pt[
            "value"
        ].to_numpy()
        for category in ("recipes", "poetry", "python"):
            c = categories.index(category)
            folds = category_folds(cat_index, c, n_folds, seed)
            aucs = []
            for fold in range(int(folds.max()) + 1):
                train, test = folds != fold, folds == fold
                feature, _ = naive_select(
                    values[train].tolist(), features, cat_index[train].tolist(), c, threshold, k
                )
                recorded = folds_table.filter(
                    (pl.col("layer") == layer)
                    & (pl.col("category") == category)
                    & (pl.col("fold") == fold)
                )["feature"].item()
                assert feature == recorded
                col = int(np.searchsorted(features, feature))
                aucs.append(roc_auc_score(cat_index[test] == c, values[test, col]))
            assert cell(cells, category, layer)["heldout_auroc"] == pytest.approx(np.mean(aucs))

"""Validation stage (issue 17): unit tests on small hand-made matrices with exact expectations,
each number checked against an independent plain-Python computation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import (
    balanced_accuracy_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from sae_specialists.analysis.dense import LayerData
from sae_specialists.analysis.selection import select
from sae_specialists.validation import baselines as bl
from sae_specialists.validation.cells import validate_layer, with_verdicts
from sae_specialists.validation.floor import density_pool, random_floor
from sae_specialists.validation.folds import assign_folds, category_folds, train_weights
from sae_specialists.validation.heldout import heldout_category
from sae_specialists.validation.metrics import auroc, rank_auroc, threshold_metrics
from sae_specialists.validation.null import (
    null_category,
    null_layer,
    p_value,
    percentile95,
    permutations,
)
from sae_specialists.validation.verdict import verdict

# -- independent plain-Python references -------------------------------------------------------


def pairwise_auroc(y, s) -> float:
    """P(score in > score out) + 1/2 P(equal), by counting every pair."""
    pos = [v for v, t in zip(s, y, strict=True) if t]
    neg = [v for v, t in zip(s, y, strict=True) if not t]
    total = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg)
    return total / (len(pos) * len(neg))


def naive_select(values, features, labels, c, threshold, k):
    """The study's rule written out: (feature id, score), (-1, 0) when nothing is active."""
    n, n_feat = len(values), len(values[0])
    inside = [i for i in range(n) if labels[i] == c]
    peak = {f: max(values[i][f] for i in inside) for f in range(n_feat)}
    active = [f for f in range(n_feat) if peak[f] > 0]
    cands = sorted(active, key=lambda f: (-peak[f], features[f]))[:k]
    if not cands:
        return -1, 0

    def score(f):
        n_in = sum(values[i][f] > threshold for i in inside)
        n_out = sum(values[i][f] > threshold for i in range(n) if labels[i] != c)
        return n_in - n_out

    best = min(cands, key=lambda f: (-score(f), -peak[f], features[f]))
    return int(features[best]), score(best)


def make_layer(values, cat_index, categories=None, features=None, sae="res", layer=3):
    values = np.asarray(values, dtype=np.float64)
    cat_index = np.asarray(cat_index, dtype=np.int64)
    if categories is None:
        categories = [f"c{i}" for i in range(cat_index.max() + 1)]
    if features is None:
        features = np.arange(values.shape[1], dtype=np.int64) * 3 + 1
    return LayerData(
        sae,
        layer,
        values,
        np.asarray(features, dtype=np.int64),
        [f"t{i}" for i in range(len(cat_index))],
        list(categories),
        cat_index,
    )


def planted_layer(seed=0, n_per=(10, 10, 10, 6), n_noise=40, n_plant=3):
    """Categories 0..2 each with a planted specialist (fires > 5 on its texts only); the last
    category has no signal; plus random sparse noise features, quantised to create ties."""
    rng = np.random.default_rng(seed)
    cat_index = np.repeat(np.arange(len(n_per)), n_per)
    n = len(cat_index)
    noise = np.where(
        rng.random((n, n_noise)) < 0.15, np.round(rng.uniform(1, 12, (n, n_noise))), 0.0
    )
    plants = np.zeros((n, n_plant))
    for c in range(n_plant):
        plants[cat_index == c, c] = rng.uniform(8, 20, (cat_index == c).sum())
    return make_layer(np.hstack([plants, noise]), cat_index)


# -- folds ---------------------------------------------------------------------------------------


def test_folds_stratified_deterministic_and_loto():
    cat = np.repeat([0, 1, 2], [10, 7, 3])
    f = assign_folds(cat, 5, seed=4)
    assert np.array_equal(f, assign_folds(cat, 5, seed=4))
    assert not np.array_equal(f, assign_folds(cat, 5, seed=5))
    for c, n_c in ((0, 10), (1, 7)):
        counts = np.bincount(f[cat == c], minlength=5)
        assert counts.max() - counts.min() <= 1 and counts.sum() == n_c
    # category 2 has 3 < 5 texts: leave-one-text-out over its texts (3 folds, one text each)
    f2 = category_folds(cat, 2, 5, seed=4)
    assert f2.max() == 2
    assert sorted(np.bincount(f2[cat == 2])) == [1, 1, 1]
    assert np.array_equal(category_folds(cat, 0, 5, seed=4), f)
    assert category_folds(np.array([0, 0, 1]), 1, 5, seed=0) is None
    w = train_weights(f)
    assert w.shape == (5, 20) and np.array_equal(w.sum(axis=0), np.full(20, 4))
    assert np.array_equal(w[2] == 0, f == 2)


# -- metrics -------------------------------------------------------------------------------------


def test_auroc_and_threshold_metrics_match_counting():
    rng = np.random.default_rng(1)
    for _ in range(20):
        n = int(rng.integers(4, 15))
        y = rng.random(n) < 0.4
        y[0], y[1] = True, False
        s = np.round(rng.uniform(0, 4, n))  # ties
        assert auroc(y, s) == pytest.approx(pairwise_auroc(y, s), abs=1e-12)
        assert rank_auroc(np.c_[s, -s], y) == pytest.approx(
            [pairwise_auroc(y, s), pairwise_auroc(y, -s)], abs=1e-12
        )
        m = threshold_metrics(y, s, 2.0)
        tp = sum(bool(a and v > 2) for a, v in zip(y, s, strict=True))
        fp = sum(bool((not a) and v > 2) for a, v in zip(y, s, strict=True))
        fn = sum(bool(a and v <= 2) for a, v in zip(y, s, strict=True))
        tn = sum(bool((not a) and v <= 2) for a, v in zip(y, s, strict=True))
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn)
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        assert m["precision"] == pytest.approx(prec)
        assert m["recall"] == pytest.approx(rec)
        assert m["f1"] == pytest.approx(f1)
        assert m["balanced_accuracy"] == pytest.approx((rec + tn / (tn + fp)) / 2)
        # the same numbers from scikit-learn's own functions
        pred = s > 2
        assert auroc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
        assert m["precision"] == pytest.approx(precision_score(y, pred, zero_division=0))
        assert m["recall"] == pytest.approx(recall_score(y, pred, zero_division=0))
        assert m["f1"] == pytest.approx(f1_score(y, pred, zero_division=0))
        assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert math.isnan(auroc([True, True], [1.0, 2.0]))


def test_average_ranks_equal_scipy_rankdata():
    from scipy.stats import rankdata

    from sae_specialists.validation.metrics import average_ranks

    rng = np.random.default_rng(2)
    values = np.round(rng.uniform(0, 5, (30, 12)))  # many ties
    values[:, 3] = 1.0  # a constant column
    np.testing.assert_array_equal(average_ranks(values), rankdata(values, axis=0))
    np.testing.assert_array_equal(average_ranks(values[:, 0]), rankdata(values[:, 0]))


# -- held-out selection --------------------------------------------------------------------------


def test_heldout_selects_on_training_texts_only():
    data = planted_layer(seed=2)
    for c in range(len(data.categories)):
        folds = category_folds(data.cat_index, c, 5, seed=0)
        held = heldout_category(data, c, folds, 5.0, 5)
        for k in range(held.n_folds):
            train = np.flatnonzero(folds != k)
            test = np.flatnonzero(folds == k)
            feat, score = naive_select(
                data.values[train].tolist(),
                data.features,
                data.cat_index[train].tolist(),
                c,
                5.0,
                5,
            )
            assert (int(held.feature[k]), int(held.train_score[k])) == (feat, score)
            col = list(data.features).index(feat)
            y = data.cat_index[test] == c
            assert held.metrics[k]["auroc"] == pytest.approx(
                pairwise_auroc(y, data.values[test, col]), abs=1e-12
            )
        # the planted specialist is chosen in every fold and separates perfectly
        if c < 3:
            assert held.full_feature == data.features[c]
            assert held.summary()["fold_agreement"] == 1.0
            assert held.summary()["heldout_auroc"] == 1.0
            assert held.summary()["heldout_recall"] == 1.0


def test_heldout_rows_frame_and_test_set():
    from sae_specialists.validation.heldout import heldout_frame, test_set_rows

    data = planted_layer(seed=3)
    folds = category_folds(data.cat_index, 0, 5, seed=1)
    held = heldout_category(data, 0, folds, 5.0, 5)
    df = heldout_frame([held])
    assert df.height == 5 and df["n_test_in"].sum() == 10 and df["n_test_out"].sum() == 26
    assert df["is_full_specialist"].all()
    # a test set drawn from the same planted structure: the specialist transfers
    test = planted_layer(seed=9)
    rows = test_set_rows(data, test, 5.0, 5)
    assert [r["auroc"] for r in rows[:3]] == [1.0, 1.0, 1.0]


# -- shuffled-label null ---------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 3, 5])
def test_null_matches_the_rule_rerun_on_every_permutation(k):
    data = planted_layer(seed=5, n_per=(5, 4, 4, 3), n_noise=25)
    perms = permutations(data.n_texts, 60, seed=11)
    labels = data.cat_index[perms]
    nl = null_layer(data, 5.0, k)
    for c in range(len(data.categories)):
        res = null_category(nl, labels, c, k)
        for p in range(perms.shape[0]):
            feat, score = naive_select(
                data.values.tolist(), data.features, labels[p].tolist(), c, 5.0, k
            )
            assert (int(res.feature[p]), int(res.score[p])) == (feat, score), (c, p)
            col = list(data.features).index(feat)
            assert res.auroc[p] == pytest.approx(
                pairwise_auroc(labels[p] == c, data.values[:, col]), abs=1e-12
            )


def test_null_agrees_with_the_vectorised_rule_on_wide_data():
    rng = np.random.default_rng(7)
    n, n_feat = 21, 400
    values = np.where(
        rng.random((n, n_feat)) < 0.1, np.round(rng.uniform(0.5, 9, (n, n_feat))), 0.0
    )
    data = make_layer(values, np.repeat([0, 1, 2], 7))
    perms = permutations(n, 40, seed=0)
    labels = data.cat_index[perms]
    nl = null_layer(data, 3.0, 5)
    assert len(nl.features) < n_feat  # the top-k union is small
    for c in range(3):
        res = null_category(nl, labels, c, 5)
        for p in range(40):
            sel = select(make_layer(values, labels[p]), c, None, 3.0, 5)
            assert (res.feature[p], res.score[p]) == (sel.feature[0], sel.score[0])


def test_p_value_and_percentile_against_explicit_loop():
    data = planted_layer(seed=6, n_per=(6, 6, 6, 6), n_noise=20)
    perms = permutations(data.n_texts, 200, seed=3)
    assert np.array_equal(perms, permutations(data.n_texts, 200, seed=3))
    _, nulls, rows = validate_layer(
        data, data.cat_index[perms], threshold=5.0, candidates=5, n_folds=3, seed=0, draws=20
    )
    for c, row in enumerate(rows):
        real_feat, real_score = naive_select(
            data.values.tolist(), data.features, data.cat_index.tolist(), c, 5.0, 5
        )
        null_scores = []
        for p in range(perms.shape[0]):
            shuffled = [int(data.cat_index[j]) for j in perms[p]]
            null_scores.append(
                naive_select(data.values.tolist(), data.features, shuffled, c, 5.0, 5)[1]
            )
        at_least = sum(1 for s in null_scores if s >= real_score)
        assert row["feature"] == real_feat and row["score"] == real_score
        assert row["p_value"] == pytest.approx((1 + at_least) / (1 + len(null_scores)))
        ordered = sorted(null_scores)
        assert row["null_score_p95"] == ordered[math.ceil(0.95 * len(ordered)) - 1]
        assert list(nulls[c].score) == null_scores
    # planted categories: nothing in the null reaches score 6; the no-signal one is not special
    assert [r["p_value"] for r in rows[:3]] == [1 / 201] * 3
    assert rows[3]["p_value"] > 0.05
    assert p_value(np.array([1, 2, 3]), 2) == 3 / 4
    assert percentile95(np.arange(1, 101)) == 95.0


def test_null_is_fast_and_small_at_a_wide_layer():
    """A smoke check of the vectorised path (timing lives in bench/validation_bench.py)."""
    rng = np.random.default_rng(0)
    n, n_feat = 70, 3000
    values = np.where(rng.random((n, n_feat)) < 0.05, rng.exponential(2.0, (n, n_feat)), 0.0)
    data = make_layer(values, np.repeat(np.arange(7), 10))
    labels = data.cat_index[permutations(n, 300, seed=0)]
    nl = null_layer(data, 5.0, 5)
    res = null_category(nl, labels, 0, 5)
    assert res.score.shape == (300,) and (res.feature >= 0).all()


# -- random-feature floor --------------------------------------------------------------------------


def test_density_pool_and_floor_are_deterministic():
    density = np.array([0.0, 0.2, 0.21, 0.5, 0.19, 0.3, 0.0, 0.24])
    assert list(density_pool(density, 1, 0.02, 1)) == [2, 4]
    assert list(density_pool(density, 1, 0.02, 4)) == [2, 4, 5, 7]
    data = planted_layer(seed=8)
    folds = category_folds(data.cat_index, 0, 5, seed=0)
    held = heldout_category(data, 0, folds, 5.0, 5)
    a = random_floor(data, held, 50, seed=1)
    assert a == random_floor(data, held, 50, seed=1)
    assert a["floor_draws"] == 250
    assert 0.3 < a["floor_auroc"] < 0.75  # noise features: around chance


def test_floor_median_matches_explicit_draws():
    data = planted_layer(seed=8)
    folds = category_folds(data.cat_index, 1, 5, seed=0)
    held = heldout_category(data, 1, folds, 5.0, 5)
    from sae_specialists.validation.floor import fold_seed

    aucs = []
    for k in range(5):
        train, test = folds != k, folds == k
        density = (data.values[train] > 0).mean(axis=0)
        own = list(data.features).index(held.feature[k])
        pool = density_pool(density, own, 0.05, 10)
        rng = np.random.default_rng(fold_seed(1, data.sae, data.layer, 1, k))
        for col in rng.choice(pool, size=30, replace=True):
            aucs.append(pairwise_auroc(data.cat_index[test] == 1, data.values[test, col]))
    assert random_floor(data, held, 30, seed=1)["floor_auroc"] == pytest.approx(
        float(np.median(aucs)), abs=1e-12
    )


# -- baselines ---------------------------------------------------------------------------------


def spread_data(seed=0, n_per=10, n_cat=4, d=16):
    """Category 0 shifts 6 residual dimensions a little each; SAE features 0-5 carry the shift
    weakly (none alone separates), the rest is noise."""
    rng = np.random.default_rng(seed)
    cat = np.repeat(np.arange(n_cat), n_per)
    y = cat == 0
    x = rng.normal(size=(len(cat), d))
    x[y, :6] += 1.0
    values = np.maximum(0, rng.normal(size=(len(cat), 30)))
    values[:, :6] = np.maximum(0, x[:, :6])
    return x, values, np.arange(30, dtype=np.int64), y, cat


def test_diffmean_and_ksparse_columns_against_hand_computation():
    x_tr = np.array([[2.0, 0.0], [4.0, 1.0], [0.0, 1.0], [1.0, 3.0]])
    y_tr = np.array([True, True, False, False])
    scores, pred = bl.diffmean_fold(x_tr, y_tr, np.array([[3.0, 0.0], [0.0, 3.0]]))
    # w = (3, 0.5) - (0.5, 2) = (2.5, -1.5); projected means 7.25 and -1.75 -> midpoint 2.75
    assert scores == pytest.approx([7.5, -4.5])
    assert list(pred) == [True, False]
    v = np.array([[5.0, 1.0, 0.0], [5.0, 1.0, 2.0], [0.0, 2.0, 0.0], [0.0, 1.0, 0.0]])
    # mean in - mean out = 5, -0.5, 1 -> k=1: col 0; k=2: cols 0, 2; k=3: all three
    assert list(bl.ksparse_columns(v, y_tr, 1)) == [0]
    assert list(bl.ksparse_columns(v, y_tr, 2)) == [0, 2]
    assert list(bl.ksparse_columns(-v, y_tr, 1)) == [1]  # signed: higher inside the category


def test_probes_are_deterministic_and_use_training_texts_only():
    x, values, features, y, cat = spread_data()
    folds = category_folds(cat, 0, 5, seed=0)
    cs = (0.1, 1.0, 10.0)
    rows = bl.baseline_rows(x, values, features, y, folds, ks=(1, 5), seed=0, cs=cs)
    assert rows == bl.baseline_rows(x, values, features, y, folds, ks=(1, 5), seed=0, cs=cs)
    df = pl.DataFrame(rows)
    assert df.height == 5 * 4
    # refit fold 0's dense probe by hand with the chosen C: same held-out AUROC
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    r = df.filter((pl.col("fold") == 0) & (pl.col("method") == "dense_probe")).row(0, named=True)
    train, test = folds != 0, folds == 0
    m = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=r["C"], class_weight="balanced", max_iter=2000, tol=1e-10),
    )
    m.fit(x[train], y[train])
    assert r["auroc"] == pytest.approx(pairwise_auroc(y[test], m.decision_function(x[test])))
    # the principal-axis rotation inside the dense probe leaves the L2 problem unchanged
    from sklearn.decomposition import PCA

    rotated = make_pipeline(
        StandardScaler(),
        PCA(),
        LogisticRegression(C=r["C"], class_weight="balanced", max_iter=2000, tol=1e-10),
    ).fit(x[train], y[train])
    np.testing.assert_allclose(
        rotated.decision_function(x[test]), m.decision_function(x[test]), rtol=1e-5, atol=1e-5
    )
    # ... also with more dimensions than training texts (the study: 56 texts x 768)
    wide = np.random.default_rng(3).normal(size=(len(y), 120)) + 0.5 * y[:, None]
    plain = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=0.1, class_weight="balanced", max_iter=5000, tol=1e-10),
    ).fit(wide[train], y[train])
    rotated = make_pipeline(
        StandardScaler(),
        PCA(),
        LogisticRegression(C=0.1, class_weight="balanced", max_iter=5000, tol=1e-10),
    ).fit(wide[train], y[train])
    np.testing.assert_allclose(
        rotated.decision_function(wide[test]),
        plain.decision_function(wide[test]),
        rtol=1e-5,
        atol=1e-5,
    )
    assert r["C"] in cs
    # the k=5 probe of fold 1, refitted by hand on the columns ranked by hand
    r = df.filter((pl.col("fold") == 1) & (pl.col("k") == 5)).row(0, named=True)
    train, test = folds != 1, folds == 1
    diff = [values[train & y, j].mean() - values[train & ~y, j].mean() for j in range(30)]
    cols = sorted(sorted(range(30), key=lambda j: (-diff[j], j))[:5])
    assert r["features"] == " ".join(str(j) for j in cols)
    m = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=2000))
    m.fit(values[np.ix_(train, cols)], y[train])
    assert r["auroc"] == pytest.approx(
        pairwise_auroc(y[test], m.decision_function(values[np.ix_(test, cols)]))
    )
    # spread signal: the k=5 probe and the dense probe beat the single best feature
    mean = df.group_by("method", "k").agg(pl.col("auroc").mean())
    k5 = mean.filter(pl.col("k") == 5)["auroc"][0]
    k1 = mean.filter(pl.col("k") == 1)["auroc"][0]
    assert k5 > k1


# -- verdict -----------------------------------------------------------------------------------


def test_verdict_texts_and_flags():
    good = {"has_specialist": True, "heldout_auroc": 0.97, "p_value": 1 / 1001, "floor_auroc": 0.5}
    v = verdict(good, {"dense_probe": 0.99, "ksparse_5": 0.98, "diffmean": 0.9})
    assert (
        v["verdict_text"] == "generalises (held-out AUROC 0.97, p < 0.001); dense probe 0.99; "
        "k=5 probe 0.98"
    )
    assert (v["generalises"], v["beats_null"], v["loses_to_probe"]) == (True, True, False)
    chance = {**good, "heldout_auroc": 0.52, "p_value": 0.4}
    v = verdict(chance, {"dense_probe": 0.55})
    assert v["verdict"] == "does not generalise, not better than chance"
    assert v["fails_heldout"]
    weak = {**good, "heldout_auroc": 0.8, "p_value": 0.01}
    v = verdict(weak, {"dense_probe": 0.99, "ksparse_20": 0.995}, shown=("dense_probe",))
    assert v["verdict"] == "generalises, loses to probe"
    assert v["best_baseline"] == "ksparse_20"
    assert v["verdict_text"].endswith("dense probe 0.99; k=20 probe 0.99")
    assert verdict({**good, "has_specialist": False}, {})["verdict"] == "no specialist"
    assert verdict({**good, "p_value": 0.0123}, {})["verdict_text"] == (
        "generalises (held-out AUROC 0.97, p = 0.012)"
    )


def test_cells_with_baselines_and_verdicts():
    data = planted_layer(seed=4)
    labels = data.cat_index[permutations(data.n_texts, 100, seed=0)]
    _, _, rows = validate_layer(
        data, labels, threshold=5.0, candidates=5, n_folds=5, seed=0, draws=20
    )
    from sae_specialists.validation.cells import CELL_SCHEMA, frame

    cells = frame(rows, CELL_SCHEMA)
    base = pl.DataFrame(
        [
            {
                "sae": "res",
                "layer": 3,
                "category": c,
                "fold": f,
                "method": m,
                "k": k,
                "auroc": 0.99,
                "balanced_accuracy": 0.9,
            }
            for c in data.categories
            for f in range(2)
            for m, k in (("dense_probe", None), ("ksparse", 5))
        ]
    )
    out = with_verdicts(
        cells,
        base,
        alpha=0.05,
        min_auroc=0.7,
        probe_margin=0.05,
        shown=("dense_probe", "ksparse_5"),
    )
    assert {"dense_probe_auroc", "ksparse_5_auroc", "verdict_text"} <= set(out.columns)
    planted = out.filter(pl.col("category").is_in(["c0", "c1", "c2"]))
    assert planted["verdict"].to_list() == ["generalises"] * 3
    # c3 has no planted signal: its best feature is noise, chosen in-sample. Its flags follow
    # from its own numbers by the documented rule (written out here), and with this seed the
    # noise feature fails both tests: held out it is at chance, and the null does not reject
    (c3,) = out.filter(pl.col("category") == "c3").to_dicts()
    assert c3["has_specialist"]
    generalises = c3["heldout_auroc"] >= 0.7 and c3["heldout_auroc"] > c3["floor_auroc"]
    beats_null = c3["p_value"] <= 0.05
    assert (c3["generalises"], c3["beats_null"]) == (generalises, beats_null) == (False, False)
    assert c3["fails_heldout"] is True
    assert c3["verdict"] == "does not generalise, not better than chance, loses to probe"


def test_all_permutations_of_a_tiny_case_give_the_exact_p_value():
    """Exhaustive null: every distinct labelling of 6 texts into sizes (3, 3)."""
    values = np.array([[9.0, 0, 6], [8, 0, 0], [7, 6, 0], [0, 6, 6], [0, 7, 0], [0, 0, 0]])
    data = make_layer(values, [0, 0, 0, 1, 1, 1])
    perms = np.array(list(itertools.permutations(range(6))))
    labels = data.cat_index[perms]
    res = null_category(null_layer(data, 5.0, 2), labels, 0, 2)
    feat, real = naive_select(values.tolist(), data.features, [0, 0, 0, 1, 1, 1], 0, 5.0, 2)
    assert real == 3
    # score 3 needs the category to be rows 0-2 (feature 0) or rows 2-4 (feature 1, a
    # candidate there: peak 7 ties feature 0's): 2 x 3! 3! of the 720 orderings
    assert p_value(res.score, real) == pytest.approx((1 + 72) / 721)

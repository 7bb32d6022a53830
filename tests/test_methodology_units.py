"""Methodology engine (no model, no Snakemake): the vectorised selection reproduces the analysis'
definition, the bootstrap reproduces a plain per-resample loop, sweeps/bootstrap are
deterministic, AUROC matches pairwise counting, all-feature scoring finds what top-k misses."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import specialist_oracle as oracle

from sae_specialists.analysis import tables as tb
from sae_specialists.analysis.bootstrap import bootstrap_table, resample_weights
from sae_specialists.analysis.dense import LayerData, layer_data
from sae_specialists.analysis.selection import feature_scores, peak_rank, select, topk_mask
from sae_specialists.core.settings import load_settings, schema_path
from sae_specialists.methodology.allfeatures import all_feature_table
from sae_specialists.methodology.auroc import auroc_matrix, auroc_table, average_ranks
from sae_specialists.methodology.sweep import sweep_thresholds, threshold_sweep


def random_case(seed: int, sizes=(4, 3, 5), d=40, density=0.5, levels=12):
    """Per-text values with many ties (integer levels), stacked like analysis per-text rows."""
    rng = np.random.default_rng(seed)
    tids, cats = [], []
    for c, n in zip("abc", sizes, strict=False):
        for j in range(n):
            tids.append(f"{c}-{j}")
            cats.append(c)
    V = rng.integers(1, levels, size=(len(tids), d)).astype(float)
    V *= rng.random(V.shape) < density
    texts = pl.DataFrame(
        {"text_id": tids, "category": cats, "text_order": range(len(tids))},
        schema={"text_id": pl.String, "category": pl.String, "text_order": pl.Int64},
    )
    i, f = np.nonzero(V)
    pt = pl.DataFrame(
        {
            "sae": ["res"] * len(i),
            "layer": [0] * len(i),
            "text_id": [tids[x] for x in i],
            "category": [cats[x] for x in i],
            "feature": (f * 7 + 3).astype(np.int32),
            "value": V[i, f],
            "max": V[i, f],
        },
        schema=tb.empty_per_text().schema,
    )
    return pt, texts


def analysis_specialists(pt, texts, threshold, k):
    """The rule by the independent polars oracle (tests/specialist_oracle.py)."""
    return oracle.specialists(oracle.candidates(pt, texts, threshold, k), texts).sort("category")


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [1, 3, 5, None])
def test_select_reproduces_analysis_specialists(seed, k):
    pt, texts = random_case(seed)
    data = layer_data(pt, texts, "res", 0)
    for threshold in (0.0, 3.0, 5.0, 9.5):
        ref = analysis_specialists(pt, texts, threshold, 10**9 if k is None else k)
        for method in ("dense", "prefix"):
            for c, cat in enumerate(data.categories):
                sel = select(data, c, None, threshold, k, method=method)
                r = ref.filter(pl.col("category") == cat).row(0, named=True)
                got = (
                    int(sel.feature[0]),
                    int(sel.score[0]),
                    int(sel.n_in[0]),
                    int(sel.n_out[0]),
                    float(sel.peak[0]),
                    bool(sel.has_specialist[0]),
                )
                assert got == (
                    r["feature"],
                    r["score"],
                    r["n_in"],
                    r["n_out"],
                    r["peak"],
                    r["has_specialist"],
                ), (method, threshold, cat)


def test_prefix_path_equals_dense_path_under_resampling_with_ties():
    rng = np.random.default_rng(0)
    for trial in range(40):
        n_c, n_cat, d = int(rng.integers(1, 6)), int(rng.integers(1, 4)), int(rng.integers(1, 30))
        cat_index = np.repeat(np.arange(n_cat), n_c)
        V = rng.integers(0, 5, size=(len(cat_index), d)) * (rng.random((len(cat_index), d)) < 0.6)
        data = LayerData(
            "s",
            0,
            V.astype(float),
            np.arange(d) * 2,
            [str(i) for i in range(len(cat_index))],
            [str(c) for c in range(n_cat)],
            cat_index,
        )
        W = resample_weights(cat_index, 40, trial)
        for c in range(n_cat):
            for k in (1, 2, 5):
                for prefix in (1, 4, None):
                    a = select(data, c, W, 1.5, k, method="dense")
                    b = select(data, c, W, 1.5, k, method="prefix", prefix=prefix)
                    for field in ("feature", "score", "n_in", "n_out", "peak"):
                        assert np.array_equal(getattr(a, field), getattr(b, field))


def test_topk_mask_breaks_ties_by_lower_column():
    peaks = np.array([[3.0, 5.0, 5.0, 5.0, 0.0, 1.0]])
    assert topk_mask(peaks, 2).tolist() == [[False, True, True, False, False, False]]
    assert topk_mask(peaks, 4).tolist() == [[True, True, True, True, False, False]]
    assert topk_mask(peaks, 10).tolist() == [[True, True, True, True, False, True]]


def loop_bootstrap(pt, texts, weights, threshold, k):
    """Independent reference: materialise each resample as a text list with duplicated texts
    and run the analysis' own polars functions on it."""
    tids = texts.sort("text_order")["text_id"].to_list()
    winners = []
    for w in weights:
        copies = [(t, f"{t}#{m}") for t, n in zip(tids, w, strict=True) for m in range(n)]
        mapping = pl.DataFrame({"text_id": [a for a, _ in copies], "new": [b for _, b in copies]})
        new_pt = pt.join(mapping, on="text_id").drop("text_id").rename({"new": "text_id"})
        new_texts = (
            texts.join(mapping, on="text_id")
            .drop("text_id")
            .rename({"new": "text_id"})
            .sort("text_order", "text_id")
            .with_columns(pl.int_range(pl.len()).alias("text_order"))
        )
        spec = analysis_specialists(new_pt.select(tb.PT_COLUMNS), new_texts, threshold, k)
        winners.append(
            dict(
                zip(spec["category"], zip(spec["feature"], spec["score"], strict=True), strict=True)
            )
        )
    return winners


def test_bootstrap_resamples_equal_a_plain_loop_over_resamples():
    pt, texts = random_case(3)
    data = layer_data(pt, texts, "res", 0)
    weights = resample_weights(data.cat_index, 25, seed=11)
    ref = loop_bootstrap(pt, texts, weights, 5.0, 3)
    for c, cat in enumerate(data.categories):
        sel = select(data, c, weights, 5.0, 3)
        got = [
            (int(f), int(s)) if f >= 0 else (None, None)
            for f, s in zip(sel.feature, sel.score, strict=True)
        ]
        assert got == [(r[cat][0], r[cat][1] if r[cat][0] is not None else None) for r in ref]
        # the score of a fixed feature per resample, too
        f0 = int(select(data, c, None, 5.0, 3).feature[0])
        scores = feature_scores(data, c, f0, weights, 5.0)
        for b in range(3):
            kept = [t for t, n in zip(data.text_ids, weights[b], strict=True) for _ in range(n)]
            col = int(np.searchsorted(data.features, f0))
            v = {t: data.values[i, col] for i, t in enumerate(data.text_ids)}
            cat_of = dict(
                zip(data.text_ids, [data.categories[i] for i in data.cat_index], strict=True)
            )
            n_in = sum(v[t] > 5.0 for t in kept if cat_of[t] == cat)
            n_out = sum(v[t] > 5.0 for t in kept if cat_of[t] != cat)
            assert scores[b] == n_in - n_out


def test_resample_weights_are_stratified_and_seeded():
    cat_index = np.repeat(np.arange(3), [4, 3, 5])
    w = resample_weights(cat_index, 200, seed=5)
    for c, n in enumerate([4, 3, 5]):
        assert (w[:, cat_index == c].sum(axis=1) == n).all()
    assert np.array_equal(w, resample_weights(cat_index, 200, seed=5))
    assert not np.array_equal(w, resample_weights(cat_index, 200, seed=6))


def test_bootstrap_is_deterministic_and_perfect_specialist_is_stable():
    pt, texts = random_case(1)
    # plant a perfect specialist of category 'a' (value 50 on every 'a' text, 0 elsewhere)
    a_ids = texts.filter(pl.col("category") == "a")["text_id"].to_list()
    planted = pl.DataFrame(
        {
            "sae": "res",
            "layer": 0,
            "text_id": a_ids,
            "category": "a",
            "feature": 10_000,
            "value": 50.0,
            "max": 50.0,
        }
    ).cast({"layer": pl.Int64, "feature": pl.Int32})
    pt = pl.concat([pt, planted])
    data = layer_data(pt, texts, "res", 0)
    one = bootstrap_table([data], 5.0, 5, 300, seed=7)
    two = bootstrap_table([data], 5.0, 5, 300, seed=7)
    assert one.equals(two)
    other = bootstrap_table([data], 5.0, 5, 300, seed=8)
    assert not one.equals(other)
    a = one.filter(pl.col("category") == "a").row(0, named=True)
    assert a["feature"] == 10_000 and a["stability"] == 1.0
    assert (a["score_ci_low"], a["score_ci_high"]) == (4, 4) and a["found_rate"] == 1.0
    assert one["stability"].is_between(0, 1).all()
    # the point estimate is the analysis' specialist
    ref = analysis_specialists(pt, texts, 5.0, 5)
    assert (
        one.select("category", "feature").rows()
        == ref.select("category", pl.col("feature").cast(pl.Int64)).rows()
    )


def test_threshold_sweep_is_deterministic_and_matches_analysis_per_threshold():
    pt, texts = random_case(4)
    data = layer_data(pt, texts, "res", 0)
    grid = sweep_thresholds([1, 3, 7, 11], 5.0)
    assert grid == [1.0, 3.0, 5.0, 7.0, 11.0]
    sweep = threshold_sweep([data], grid, 3)
    assert sweep.equals(threshold_sweep([data], grid, 3))
    for rule, k in (("top_k", 3), ("all_features", 10**9)):
        for t in grid:
            ref = analysis_specialists(pt, texts, t, k)
            got = sweep.filter((pl.col("rule") == rule) & (pl.col("threshold") == t)).sort(
                "category"
            )
            assert got["feature"].to_list() == ref["feature"].cast(pl.Int64).to_list()
            assert got["score"].to_list() == ref["score"].to_list()
            assert got["specialists_found"].unique().to_list() == [int(ref["has_specialist"].sum())]


def test_average_ranks_and_auroc_match_pairwise_counts():
    rng = np.random.default_rng(2)
    V = rng.integers(0, 4, size=(9, 6)).astype(float)
    ranks = average_ranks(V)
    for f in range(6):
        for i in range(9):
            assert ranks[i, f] == (V[:, f] < V[i, f]).sum() + ((V[:, f] == V[i, f]).sum() + 1) / 2
    cat_index = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    data = LayerData(
        "s", 0, V, np.arange(6), [str(i) for i in range(9)], ["x", "y", "z"], cat_index
    )
    auc = auroc_matrix(data)
    for c in range(3):
        inside = cat_index == c
        for f in range(6):
            a, b = V[inside, f], V[~inside, f]
            pairs = (a[:, None] > b[None, :]).sum() + 0.5 * (a[:, None] == b[None, :]).sum()
            assert auc[c, f] == pytest.approx(pairs / (len(a) * len(b)))


def test_auroc_table_reports_specialist_and_best_feature():
    pt, texts = random_case(5)
    data = layer_data(pt, texts, "res", 0)
    table = auroc_table([data], 5.0, 3)
    ref = analysis_specialists(pt, texts, 5.0, 3)
    assert table["feature"].to_list() == ref["feature"].cast(pl.Int64).to_list()
    assert table["auroc"].is_between(0, 1).all()
    assert (table["best_auroc"] >= table["auroc"]).all()


def quiet_specialist_case():
    """Category 'a' (4 texts): features 1-5 are loud (value 40) on one 'a' text and on every
    other text; feature 6 is quiet (value 6) on every 'a' text and nowhere else."""
    tids = [f"a-{i}" for i in range(4)] + [f"b-{i}" for i in range(4)]
    cats = ["a"] * 4 + ["b"] * 4
    rows = []
    for i, (t, c) in enumerate(zip(tids, cats, strict=True)):
        for f in range(1, 6):
            if c == "b" or i == 0:
                rows.append((t, c, f, 40.0 + f))
        if c == "a":
            rows.append((t, c, 6, 6.0))
    pt = pl.DataFrame(rows, schema=["text_id", "category", "feature", "value"], orient="row")
    pt = pt.with_columns(
        pl.lit("res").alias("sae"),
        pl.lit(0, dtype=pl.Int64).alias("layer"),
        pl.col("feature").cast(pl.Int32),
        pl.col("value").alias("max"),
    )
    texts = pl.DataFrame({"text_id": tids, "category": cats, "text_order": range(8)})
    return pt.select(tb.PT_COLUMNS), texts


def test_all_feature_scoring_reports_what_top_k_misses():
    pt, texts = quiet_specialist_case()
    data = layer_data(pt, texts, "res", 0)
    table = all_feature_table([data], 5.0, 5).filter(pl.col("category") == "a").row(0, named=True)
    # by construction: top-5 = features 5,4,3,2,1 (peaks 45..41), each 1 in / 4 out: score -3;
    # feature 6 (peak rank 6): 4 in / 0 out: score 4
    assert (table["topk_feature"], table["topk_score"]) == (5, -3)
    assert (table["all_feature"], table["all_score"], table["all_peak_rank"]) == (6, 4, 6)
    assert table["missed"] and table["gained_specialist"] and table["n_better"] == 1
    assert table["n_active"] == 6
    assert peak_rank(data, 0, 6) == 6 and peak_rank(data, 0, 5) == 1
    # and the analysis' top-5 rule agrees
    ref = analysis_specialists(pt, texts, 5.0, 5).filter(pl.col("category") == "a")
    assert ref["feature"].to_list() == [5] and ref["has_specialist"].to_list() == [False]


def methodology_settings(config: dict):
    """The methodology settings of a minimal config plus ``config`` (defaults: the schema's)."""
    base = {
        "model": {"name": "m"},
        "saes": {"r": {"path": "p{layer}"}},
        "layers": [0],
        "texts": "t",
    }
    return load_settings({**base, **config}, schema_path()).methodology


def test_methodology_settings_defaults():
    s = methodology_settings({})
    assert s.bootstrap_resamples == 1000 and s.seed == 0 and not s.enabled
    s = methodology_settings({"methodology": {"thresholds": [1, 2], "enabled": True}})
    assert s.thresholds == (1.0, 2.0) and s.enabled and s.model_variants


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("k", [1, 3])
def test_candidate_layer_data_keeps_few_features_and_gives_the_same_bootstrap(seed, k):
    """Column restriction for large corpora: on data with far more entries per category than
    the selection's prefix, the kept features are a strict subset and the point estimate and
    every bootstrap statistic equal those of the full matrix."""
    from sae_specialists.analysis.dense import candidate_layer_data

    pt, texts = random_case(seed, sizes=(9, 6, 11), d=300, density=0.6, levels=40)
    full = layer_data(pt, texts, "res", 0)
    kept = candidate_layer_data(pt.lazy(), texts, "res", 0, k)
    assert 0 < kept.values.shape[1] < full.values.shape[1]
    assert kept.categories == full.categories
    assert (kept.cat_index == full.cat_index).all()
    assert set(kept.features) <= set(full.features)
    for threshold in (5.0, 20.0):
        ref = bootstrap_table([full], threshold, k, 200, seed)
        got = bootstrap_table([kept], threshold, k, 200, seed)
        assert got.equals(ref), (threshold, got, ref)
        spec = analysis_specialists(pt, texts, threshold, k)
        assert got["feature"].to_list() == spec["feature"].to_list()


@pytest.mark.parametrize("density", [0.6, 0.02])
def test_candidate_layer_data_is_the_same_streamed_in_small_batches(monkeypatch, density):
    """The per-category entry counts and largest values are merged batch by batch: batches of
    a few rows give exactly the result of one batch (density 0.02: some categories have fewer
    entries than the prefix, so every one of their features is kept)."""
    from sae_specialists.analysis import dense

    pt, texts = random_case(1, sizes=(9, 6, 11), d=300, density=density, levels=40)
    whole = dense.candidate_layer_data(pt.lazy(), texts, "res", 0, 2)
    monkeypatch.setattr(dense, "BATCH_ROWS", 37)
    batched = dense.candidate_layer_data(pt.lazy(), texts, "res", 0, 2)
    assert (batched.category_entries == whole.category_entries).all()
    assert (batched.features == whole.features).all()
    assert (batched.values == whole.values).all()
    sizes = pt.group_by("category").len().sort("category")["len"].to_list()
    assert batched.category_entries.tolist() == sizes
    if density < 0.1:
        assert min(sizes) <= dense.default_prefix(2, 6)  # the no-floor case is exercised


def test_methodology_refuses_dense_matrices_over_budget():
    from sae_specialists.core.errors import UserError
    from sae_specialists.methodology.entry import check_dense_budget

    pt, texts = random_case(0, sizes=(9, 6, 11), d=300, density=0.6)
    n_features = pt["feature"].n_unique()
    expected = texts.height * n_features * 8 / 1e9
    assert check_dense_budget(pt.lazy(), texts.height, 1.0) == pytest.approx(expected)
    with pytest.raises(UserError, match="methodology.enabled: false") as err:
        check_dense_budget(pt.lazy(), texts.height, expected / 2)
    assert f"{texts.height} texts x {n_features} active features" in str(err.value)

"""The learning curve (validation/learning_curve.py): how many texts a finding needs. Unit tests
on small in-memory layers; every number of one draw recomputed by plain loops."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from test_validation_units import make_layer, naive_select, pairwise_auroc

from sae_specialists.analysis.selection import select
from sae_specialists.core.verdicts import verdict_frame
from sae_specialists.validation import learning_curve as lc
from sae_specialists.validation.folds import assign_folds, category_folds
from sae_specialists.validation.heldout import heldout_category
from sae_specialists.validation.null import (
    null_category,
    null_layer,
    p_value,
    permutations,
    top_entries,
)

CATEGORIES = ["none", "strong", "weak"]


def planted(seed=0, n=40, n_noise=30):
    """``strong``: a feature firing on all its texts only; ``weak``: a feature firing on 60% of
    its texts and 10% of the others (held-out AUROC ~0.75, small scores at few texts);
    ``none``: nothing; plus sparse integer-valued noise features (ties)."""
    rng = np.random.default_rng(seed)
    cats = np.repeat(np.arange(3), n)
    size = len(cats)
    noise = np.where(
        rng.random((size, n_noise)) < 0.15, np.round(rng.uniform(1, 12, (size, n_noise))), 0.0
    )
    plants = np.zeros((size, 2))
    plants[cats == 1, 0] = rng.uniform(8, 20, n)
    fires = np.where(cats == 2, rng.random(size) < 0.6, rng.random(size) < 0.1)
    plants[fires, 1] = rng.uniform(10, 20, fires.sum())
    return make_layer(np.hstack([plants, noise]), cats, CATEGORIES)


def settings(**kw) -> lc.CurveSettings:
    base = dict(
        ladder=(5, 10, 20),
        draws=5,
        permutations=100,
        pass_share=0.5,
        folds=5,
        seed=0,
        threshold=5.0,
        candidates=5,
        alpha=0.05,
        min_auroc=0.7,
    )
    return lc.CurveSettings(**{**base, **kw})


def test_rungs_and_draws():
    assert lc.rungs([40, 40, 12], [5, 10, 20, 50]) == [5, 10, 20, 40]
    assert lc.rungs([8, 8], [10, 20]) == [8]
    cats = np.repeat([0, 1, 2], [12, 3, 7])
    rows = lc.draw_rows(cats, 5, np.random.default_rng(1))
    assert list(np.bincount(cats[rows])) == [5, 3, 5] and len(set(rows)) == len(rows)
    assert np.array_equal(rows, lc.draw_rows(cats, 5, np.random.default_rng(1)))
    assert not np.array_equal(rows, lc.draw_rows(cats, 5, np.random.default_rng(2)))


def test_one_draw_matches_plain_loops():
    """The specialist, held-out AUROC, fold agreement and p-value of one draw, recomputed with
    the study's rule written out, pair-counting AUROC and an explicit permutation loop."""
    data = planted(n=12, n_noise=8)
    s = settings(ladder=(6,), permutations=40)
    n, draw = 6, 2
    table = lc.curve_layer(data, s).filter((pl.col("n") == n) & (pl.col("draw") == draw))
    rng, fold_seed, perm_seed = lc._draw_seeds(s.seed, n, draw)
    rows = lc.draw_rows(data.cat_index, n, rng)
    values = data.values[rows].tolist()
    labels = data.cat_index[rows]
    features = data.features
    perms = permutations(len(rows), s.permutations, perm_seed)
    for c, category in enumerate(CATEGORIES):
        got = table.filter(pl.col("category") == category).row(0, named=True)
        feature, score = naive_select(values, features, labels, c, s.threshold, s.candidates)
        assert got["feature"] == (feature if feature >= 0 else None)
        null = [
            naive_select(values, features, labels[p], c, s.threshold, s.candidates)[1]
            for p in perms
        ]
        expected_p = (1 + sum(x >= score for x in null)) / (1 + len(null))
        assert got["p_value"] == pytest.approx(expected_p, abs=1e-12)
        folds = assign_folds(labels, min(s.folds, n), fold_seed)
        aucs, agree = [], []
        for k in range(folds.max() + 1):
            train = [i for i in range(len(rows)) if folds[i] != k]
            test = [i for i in range(len(rows)) if folds[i] == k]
            f, _ = naive_select(
                [values[i] for i in train], features, labels[train], c, s.threshold, s.candidates
            )
            col = list(features).index(f) if f >= 0 else None
            scores = [values[i][col] if col is not None else 0.0 for i in test]
            aucs.append(pairwise_auroc([labels[i] == c for i in test], scores))
            agree.append(f == feature)
        assert got["heldout_auroc"] == pytest.approx(np.mean(aucs), abs=1e-12)
        if feature >= 0:
            assert got["fold_agreement"] == pytest.approx(np.mean(agree), abs=1e-12)
        passes = score > 0 and np.mean(aucs) >= s.min_auroc and expected_p <= s.alpha
        assert got["passes"] == passes


def test_planted_strong_weak_and_no_signal():
    data = planted()
    s = settings()
    stage = lc.stage_cells(data, s, s.permutations)
    draws = lc.curve_layer(data, s, stage)
    assert draws.height == (3 * s.draws + 1) * 3  # rungs 5, 10, 20 x draws + every text once
    rungs = lc.rung_table(draws, s.pass_share)
    cells = {r["category"]: r for r in lc.cell_table(rungs, lc.full_frame(stage), s).to_dicts()}
    assert cells["strong"]["n_needed"] == 5
    assert cells["weak"]["n_needed"] in (10, 20)  # planted: fails at 5, passes from 10-20
    weak5 = rungs.filter((pl.col("category") == "weak") & (pl.col("n") == 5)).row(0, named=True)
    assert not weak5["passes"]
    assert cells["none"]["n_needed"] is None and not cells["none"]["reached"]
    assert cells["none"]["sentence"].startswith("none: not reached with 40 texts")
    assert "; passes from" in cells["weak"]["sentence"]
    # the rung table: pass share and medians recomputed from the draws
    for r in rungs.iter_rows(named=True):
        d = draws.filter((pl.col("category") == r["category"]) & (pl.col("n") == r["n"])).to_dicts()
        assert r["pass_share"] == pytest.approx(np.mean([x["passes"] for x in d]))
        assert r["heldout_auroc"] == pytest.approx(np.median([x["heldout_auroc"] for x in d]))
        assert r["p_value"] == pytest.approx(np.median([x["p_value"] for x in d]))
    # the findings board's records: one per cell with a specialist, schema-checked
    board = verdict_frame(lc.verdict_records(lc.cell_table(rungs, lc.full_frame(stage), s)))
    by_cat = {r["category"]: r for r in board.to_dicts()}
    assert by_cat["strong"]["verdict"] == "reached" and by_cat["strong"]["ok"] is True
    assert by_cat["strong"]["label"] == "passes from 5 texts"
    assert set(board["stage"]) == {"learning_curve"}


def test_n_needed_is_stable_from_then_on():
    assert lc.n_needed([5, 10, 20, 40], [False, True, False, True]) == (40, 10)
    assert lc.n_needed([5, 10, 20], [True, True, True]) == (5, 5)
    assert lc.n_needed([5, 10], [True, False]) == (None, 5)


def test_top_entries_equals_a_partition_of_whole_rows():
    """null.top_entries (row by row over the positive values) against the k-th largest value
    of the whole row: ties of the k-th kept, rows with fewer than k positives, k None."""
    rng = np.random.default_rng(3)
    values = np.where(rng.random((60, 40)) < 0.2, np.round(rng.uniform(1, 6, (60, 40))), 0.0)
    values[:5] = 0.0
    values[5, :3] = [2.0, 2.0, 1.0]  # fewer than k positives
    for k in (1, 2, 5, 39, 40, None):
        if k is None or k >= values.shape[1]:
            expected = values > 0
        else:
            kth = np.sort(values, axis=1)[:, -k]
            expected = (values > 0) & (values >= kth[:, None])
        assert np.array_equal(top_entries(values, k), expected)


def straightforward_draws(data, s: lc.CurveSettings, n_permutations: int) -> pl.DataFrame:
    """The curve as first written: every subsample on every column active on its texts (its
    own top-k mask), and the top rung computed on the corpus with the stage's seeds (folds of
    ``s.seed``, ``n_permutations`` permutations of ``s.seed``), as the stage's jobs do."""
    full = []
    for c in range(len(data.categories)):
        sel = select(data, c, None, s.threshold, s.candidates)
        full.append(int(sel.feature[0]) if sel.feature[0] >= 0 and sel.score[0] > 0 else -1)
    ladder = lc.rungs(data.category_sizes(), s.ladder)
    rows = []
    for n in ladder[:-1]:
        for draw in range(s.draws):
            rng, fold_seed, perm_seed = lc._draw_seeds(s.seed, n, draw)
            picked = lc.draw_rows(data.cat_index, n, rng)
            active = np.flatnonzero((data.values[picked] > 0).any(axis=0))
            sub = make_layer(
                data.values[picked][:, active],
                data.cat_index[picked],
                data.categories,
                data.features[active],
            )
            for row in lc.evaluate_draw(sub, s, fold_seed, perm_seed, full):
                rows.append({**row, "n": n, "draw": draw})
    labels = data.cat_index[permutations(data.n_texts, n_permutations, s.seed)]
    nl = null_layer(data, s.threshold, s.candidates)
    sizes = data.category_sizes()
    for c in range(len(data.categories)):
        folds = category_folds(data.cat_index, c, s.folds, s.seed)
        held = heldout_category(data, c, folds, s.threshold, s.candidates)
        summary = held.summary()
        score = held.full_score if held.full_feature >= 0 else 0
        p = p_value(null_category(nl, labels, c, s.candidates).score, score)
        row = lc.draw_row(
            data,
            c,
            int(sizes[c]),
            held.full_feature,
            held.full_score,
            summary["heldout_auroc"],
            summary["fold_agreement"],
            p,
            full[c],
            s,
        )
        rows.append({**row, "n": ladder[-1], "draw": 0})
    return pl.DataFrame(rows, schema=lc.DRAW_SCHEMA)


@pytest.mark.parametrize("candidates", [2, 5, None])
def test_fast_curve_equals_the_straightforward_one(candidates):
    """Subsamples restricted to their texts' top-k columns and the top rung read from the
    stage's cells: the same draws, rungs and n_needed as the straightforward curve."""
    data = planted(seed=4, n=40, n_noise=80)
    s = settings(ladder=(5, 10, 20), draws=3, permutations=60, candidates=candidates)
    stage = lc.stage_cells(data, s, 150)
    fast = lc.curve_layer(data, s, stage).sort("category", "n", "draw")
    slow = straightforward_draws(data, s, 150).sort("category", "n", "draw")
    assert fast.height == slow.height == (3 * s.draws + 1) * 3
    exact = ["category", "n", "draw", "n_category", "feature", "score", "has_specialist"]
    exact += ["same_feature", "passes"]
    assert fast.select(exact).equals(slow.select(exact))
    for col in ("heldout_auroc", "fold_agreement", "p_value"):
        a, b = fast[col].to_list(), slow[col].to_list()
        assert [x is None for x in a] == [x is None for x in b]
        assert all(x is None or x == pytest.approx(y, abs=1e-12) for x, y in zip(a, b, strict=True))
    cells = [
        lc.cell_table(lc.rung_table(d, s.pass_share), lc.full_frame(stage), s) for d in (fast, slow)
    ]
    assert cells[0].equals(cells[1])
    assert cells[0]["n_needed"].to_list() != [None] * 3  # some cell is reached
    if candidates is not None:  # the restriction dropped columns: it was put to the test
        rows = lc.draw_rows(data.cat_index, 20, np.random.default_rng(0))
        sub, _ = lc.subsample(data, rows, top_entries(data.values, candidates))
        assert len(sub.features) < (data.values[rows] > 0).any(axis=0).sum()

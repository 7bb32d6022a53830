"""Every analysis definition against hand-made shards with known answers and against an
independent numpy computation on dense matrices."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import specialist_oracle as oracle
from test_analysis_fixture import Fixture, reference_tables, reference_values

from sae_specialists.analysis import tables as tb
from sae_specialists.analysis.pertext import build_per_text, per_text_values
from sae_specialists.analysis.shards import texts_table


def one_token_fixture(values: dict[str, tuple[str, dict[int, float]]], d_sae: int) -> Fixture:
    """Each text = BOS + one counted token, so its per-text value is that token's activation
    (mean and max alike): a hand-made per-text matrix."""
    fx = Fixture(d_sae=d_sae)
    for tid, (cat, vals) in values.items():
        a = np.zeros((2, d_sae), np.float32)
        for f, v in vals.items():
            a[1, f] = v
        fx.add(tid, cat, a)
    return fx


def compute(
    fx, tmp_path, aggregation="mean", include_bos=False, threshold=5.0, k=5, chunk_size=None
):
    paths = fx.write(tmp_path, chunk_size=chunk_size)
    toks = fx.flat(paths["tokens"])
    acts = fx.flat(paths["activations"])
    # the production path: per-text file built chunk by chunk, tables on a lazy scan of it
    direct = per_text_values(toks, acts, aggregation, include_bos)
    out = tmp_path / "per_text" / "layer=0.parquet"
    n_rows = build_per_text(
        toks, acts, out, family="res", layer=0, aggregation=aggregation, include_bos=include_bos
    )
    assert n_rows == direct.height
    assert pl.read_parquet(out).equals(direct)  # same rows, same order as all shards at once
    texts = texts_table(toks, include_bos)
    pt, _, metas = tb.scan_per_text([out])
    assert isinstance(pt, pl.LazyFrame) and list(metas) == [("res", 0)]
    keys = pl.DataFrame(
        {"sae": ["res"], "layer": [0]}, schema={"sae": pl.String, "layer": pl.Int64}
    )
    cands = tb.candidates(pt, texts, threshold, k)
    # the one implementation of the rule (analysis.selection) agrees with the polars oracle
    assert cands.equals(oracle.candidates(pt, texts, threshold, k))
    assert tb.specialists(cands, texts, keys).equals(
        oracle.specialists(oracle.candidates(pt, texts, threshold, k), texts, keys)
    )
    return {
        "pt": pt.collect(),
        "texts": texts,
        "strongest": tb.strongest(pt, texts),
        "frequent": tb.frequent(pt, texts),
        "selective": tb.selective(pt, texts, threshold),
        "candidates": cands,
        "specialists": tb.specialists(cands, texts, keys),
        "category_peaks": tb.category_peaks(pt, texts, keys),
    }


# -- hand-made per-text matrix with known answers ---------------------------------------------
# Threshold 5, 2 candidates. Categories of unequal sizes: a (3 texts), b (2), c (2), d (1), e (2).
HAND = {
    "a1": ("a", {0: 9, 1: 10, 3: 6, 6: 9}),
    "a2": ("a", {0: 8, 6: 9}),
    "a3": ("a", {0: 7}),
    "b1": ("b", {1: 6, 2: 7, 3: 8}),
    "b2": ("b", {1: 6, 2: 6}),
    "c1": ("c", {4: 6, 5: 7}),
    "c2": ("c", {}),  # no active feature at all: still a text of c
    "d1": ("d", {7: 6, 8: 6}),
    "e1": ("e", {6: 9.5, 1: 2}),
    "e2": ("e", {}),
}


@pytest.fixture
def hand(tmp_path):
    return compute(one_token_fixture(HAND, d_sae=10), tmp_path, threshold=5.0, k=2)


def spec(res, cat):
    return res["specialists"].filter(pl.col("category") == cat).row(0, named=True)


def test_specialist_plain_and_unequal_sizes(hand):
    a = spec(hand, "a")
    # candidates of a: f1 (peak 10, score 1-2=-1: b1, b2 > 5 outside) and f0/f6 (peak 9);
    # k=2 keeps f1 and f0 (tie on peak 9 with f6 -> lower id); f0: 3 in, 0 out -> 3.
    assert (a["feature"], a["score"], a["n_in"], a["n_out"], a["peak"]) == (0, 3, 3, 0, 9.0)
    assert a["has_specialist"] and a["n_category"] == 3
    b = spec(hand, "b")
    # candidates f3 (peak 8: 1 in, 1 out -> 0) and f2 (peak 7: 2 in -> 2)
    assert (b["feature"], b["score"], b["n_category"]) == (2, 2, 2)
    cands_a = hand["candidates"].filter(pl.col("category") == "a")
    assert cands_a["feature"].to_list() == [1, 0]
    assert cands_a["score"].to_list() == [-1, 3]


def test_specialist_tie_broken_by_in_category_peak(hand):
    # f4 and f5 both score 1 in c; f5 has the higher in-category peak (7 > 6) and wins although
    # its id is higher.
    c = spec(hand, "c")
    assert (c["feature"], c["score"], c["peak"]) == (5, 1, 7.0)


def test_specialist_final_tie_lower_feature_id(hand):
    # f7 and f8: same score (1) and same in-category peak (6): lower id wins.
    d = spec(hand, "d")
    assert (d["feature"], d["score"], d["n_category"]) == (7, 1, 1)


def test_category_without_specialist_reports_best_candidate(hand):
    # e: candidates f6 (peak 9.5: 1 in, 2 out -> -1) and f1 (peak 2: 0 in, 3 out -> -3).
    e = spec(hand, "e")
    assert (e["feature"], e["score"], e["n_in"], e["n_out"]) == (6, -1, 1, 2)
    assert e["has_specialist"] is False
    found = tb.specialists_found(hand["specialists"]).row(0, named=True)
    assert (found["found"], found["n_categories"]) == (4, 5)


def test_selective_tie_broken_by_higher_max(hand):
    sel = hand["selective"]
    # n_above (value > 5): f0 3, f1 3, f2 2, f3 2 (a1: 6, b1: 8), f4 1, f5 1, f6 3, f7 1, f8 1.
    # Among the n_above = 1 features the higher max wins (f5: 7 > f4: 6); f4, f7, f8 tie on
    # max 6 too: lower id first.
    top = sel.row(0, named=True)
    assert (top["feature"], top["n_above"], top["peak"], top["text_id"]) == (5, 1, 7.0, "c1")
    assert sel["feature"].to_list()[:4] == [5, 4, 7, 8]
    assert sel["n_above"].to_list()[:4] == [1, 1, 1, 1]
    assert sel["peak"].to_list()[:4] == [7.0, 6.0, 6.0, 6.0]


def test_strongest_and_frequent(hand):
    st = hand["strongest"]
    assert st["feature"].to_list()[:4] == [1, 6, 0, 3]  # peaks 10, 9.5, 9, 8
    first = st.row(0, named=True)
    assert (first["peak"], first["text_id"], first["category"], first["rank"]) == (
        10.0,
        "a1",
        "a",
        1,
    )
    fr = hand["frequent"]
    # f1 on a1, b1, b2, e1 = 4 texts of 10; f0, f6 on 3 (f6 peak 9.5 > f0 peak 9)
    assert fr["feature"].to_list()[:3] == [1, 6, 0]
    assert fr["n_texts"].to_list()[:3] == [4, 3, 3]
    assert fr["coverage"].to_list()[0] == pytest.approx(0.4)  # texts with no feature count


def test_category_peaks_and_empty_category_rows(tmp_path):
    fx = one_token_fixture({"x1": ("x", {0: 3.0}), "y1": ("y", {})}, d_sae=2)
    res = compute(fx, tmp_path)
    peaks = res["category_peaks"]
    assert peaks["category"].to_list() == ["x", "y"]
    assert peaks["peak"].to_list() == [3.0, 0.0]
    assert peaks["feature"].to_list() == [0, None]
    y = spec(res, "y")
    assert y["feature"] is None and y["has_specialist"] is False


def test_mean_counts_zero_positions_and_excludes_bos(tmp_path):
    fx = Fixture(d_sae=3)
    # BOS (row 0) fires f2 only: a BOS-only feature; f0 fires on 1 of 4 counted positions.
    fx.add("t1", "a", [[0, 0, 50], [8, 0, 0], [0, 0, 0], [0, 2, 0], [0, 0, 0]])
    fx.add("t2", "b", [[0, 0, 40], [0, 0, 0]])
    res = compute(fx, tmp_path, aggregation="mean", include_bos=False)
    pt = res["pt"]
    assert 2 not in pt["feature"].to_list()
    assert dict(zip(pt["feature"].to_list(), pt["value"].to_list(), strict=True)) == {
        0: 2.0,
        1: 0.5,
    }
    assert pt["max"].to_list() == [8.0, 2.0]
    for name in ("strongest", "frequent", "candidates", "specialists"):
        assert 2 not in res[name]["feature"].drop_nulls().to_list(), name
    assert res["texts"]["n_counted"].to_list() == [4, 1]
    assert res["frequent"]["coverage"].to_list() == [0.5, 0.5]


def test_include_bos_and_max(tmp_path):
    fx = Fixture(d_sae=3)
    fx.add("t1", "a", [[0, 0, 50], [8, 0, 0], [0, 0, 0], [0, 2, 0], [0, 0, 0]])
    res = compute(fx, tmp_path, aggregation="mean", include_bos=True)
    vals = dict(zip(res["pt"]["feature"].to_list(), res["pt"]["value"].to_list(), strict=True))
    assert vals == pytest.approx({0: 8 / 5, 1: 2 / 5, 2: 50 / 5})
    res = compute(fx, tmp_path, aggregation="max", include_bos=False)
    vals = dict(zip(res["pt"]["feature"].to_list(), res["pt"]["value"].to_list(), strict=True))
    assert vals == {0: 8.0, 1: 2.0}
    res = compute(fx, tmp_path, aggregation="max", include_bos=True)
    vals = dict(zip(res["pt"]["feature"].to_list(), res["pt"]["value"].to_list(), strict=True))
    assert vals == {0: 8.0, 1: 2.0, 2: 50.0}


def test_bos_only_text_counts_with_zero_values(tmp_path):
    fx = Fixture(d_sae=2)
    fx.add("t1", "a", [[5, 5]])  # only BOS stored: no counted position when BOS excluded
    fx.add("t2", "a", [[0, 0], [1, 0]])
    res = compute(fx, tmp_path)
    assert res["texts"]["n_counted"].to_list() == [0, 1]
    assert res["pt"]["text_id"].to_list() == ["t2"]
    assert res["frequent"]["coverage"].to_list() == [0.5]


def test_stray_activation_rows_are_rejected(tmp_path):
    fx = one_token_fixture({"x1": ("x", {0: 3.0})}, d_sae=1)
    paths = fx.write(tmp_path)
    other = Fixture(d_sae=1)
    other.add("zz", "y", [[0], [1]])
    p2 = other.write(tmp_path / "other")
    with pytest.raises(ValueError, match="no matching"):
        per_text_values(
            fx.flat(paths["tokens"]), fx.flat(paths["activations"]) + fx.flat(p2["activations"])
        )


# -- random dense matrices against the numpy reference ----------------------------------------


def random_fixture(seed: int) -> Fixture:
    rng = np.random.default_rng(seed)
    d = 16
    fx = Fixture(d_sae=d)
    sizes = {"code": 4, "math": 2, "prose": 5, "urls": 1}
    for cat, n in sizes.items():
        for j in range(n):
            n_pos = int(rng.integers(1, 7))  # 1 = BOS only
            # quantised activations (multiples of 0.5) make ties frequent
            a = rng.integers(0, 24, size=(n_pos, d)).astype(np.float32) / 2
            a[rng.random((n_pos, d)) < 0.6] = 0
            # plant in-category features so that specialists and ties exist
            a[1:, 2 * list(sizes).index(cat)] += 6
            fx.add(f"{cat}-{j}", cat, a)
    return fx


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "aggregation,include_bos", [("mean", False), ("mean", True), ("max", False), ("max", True)]
)
def test_against_numpy_reference(tmp_path, seed, aggregation, include_bos):
    fx = random_fixture(seed)
    threshold, k = 4.5, 3
    # chunks of 2 texts: several shards per category, text order across chunks
    res = compute(fx, tmp_path, aggregation, include_bos, threshold, k, chunk_size=2)
    order, V, M = reference_values(fx, aggregation, include_bos)
    idx = {t: i for i, (t, _) in enumerate(order)}
    # per-text values: sparse table == dense matrix
    dense = np.zeros_like(V)
    dense_max = np.zeros_like(M)
    for t, f, v, m in res["pt"].select("text_id", "feature", "value", "max").rows():
        dense[idx[t], f] = v
        dense_max[idx[t], f] = m
    np.testing.assert_allclose(dense, V, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(dense_max, np.where(V > 0, M, 0), rtol=1e-6, atol=1e-9)
    assert res["texts"]["text_id"].to_list() == [t for t, _ in order]

    ref = reference_tables(order, V, threshold, k)
    st = res["strongest"].select("rank", "feature", "peak", "text_id", "category").rows()
    assert [r[:2] for r in st] == [r[:2] for r in ref["strongest"]]
    np.testing.assert_allclose([r[2] for r in st], [r[2] for r in ref["strongest"]], rtol=1e-9)
    assert [r[3:] for r in st] == [tuple(r[3:]) for r in ref["strongest"]]
    fr = res["frequent"].select("rank", "feature", "n_texts", "coverage").rows()
    assert [r[:3] for r in fr] == [r[:3] for r in ref["frequent"]]
    np.testing.assert_allclose([r[3] for r in fr], [r[3] for r in ref["frequent"]])
    sel = res["selective"].select("rank", "feature", "n_above").rows()
    assert sel == [r[:3] for r in ref["selective"]]
    got_c = (
        res["candidates"]
        .select("category", "candidate_rank", "feature", "n_in", "n_out", "score", "n_category")
        .rows()
    )
    exp_c = [
        (
            r["category"],
            r["candidate_rank"],
            r["feature"],
            r["n_in"],
            r["n_out"],
            r["score"],
            r["n_category"],
        )
        for r in ref["candidates"]
    ]
    assert got_c == exp_c
    for row in res["specialists"].iter_rows(named=True):
        best = ref["specialists"][row["category"]]
        if best is None:
            assert row["feature"] is None
            continue
        assert (row["feature"], row["score"], row["n_in"], row["n_out"]) == (
            best["feature"],
            best["score"],
            best["n_in"],
            best["n_out"],
        )
        assert row["peak"] == pytest.approx(best["peak"])
        assert row["has_specialist"] == (best["score"] > 0)


def test_single_category_scores_are_still_defined(tmp_path):
    """One category only: n_out is 0 for every feature, the score is n_in."""
    fx = one_token_fixture(
        {"x1": ("x", {0: 9, 1: 6}), "x2": ("x", {0: 8}), "x3": ("x", {1: 2})}, d_sae=3
    )
    res = compute(fx, tmp_path, threshold=5.0, k=5)
    (row,) = res["specialists"].iter_rows(named=True)
    assert (row["feature"], row["score"], row["n_in"], row["n_out"]) == (0, 2, 2, 0)
    assert row["has_specialist"]

"""Comparison stage (issue 19) on hand-made cases, each checked against an independent
numpy / plain-Python computation."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pytest

from sae_specialists.comparison.coactivation import pair_correlations
from sae_specialists.comparison.components import component_first, component_grid
from sae_specialists.comparison.decoders import DecoderCache, cosine_matrix, nearest, unit_rows
from sae_specialists.comparison.hooks import (
    comparable,
    hook_position,
    in_residual_basis,
    width_ladders,
)
from sae_specialists.comparison.neighbours import sweep_decoders
from sae_specialists.comparison.splitting import (
    add_similarity,
    parent_texts,
    split_candidates,
    split_shares,
)
from sae_specialists.comparison.tracking import (
    add_neighbour_correlations,
    next_layer_neighbours,
    specialist_links,
    specialist_members,
)

D = 6


def sae_rows(rows):
    return pl.DataFrame(
        rows,
        schema={
            "sae": pl.String,
            "layer": pl.Int64,
            "hook_name": pl.String,
            "d_sae": pl.Int64,
            "d_in": pl.Int64,
        },
        orient="row",
    )


# res reads resid_pre, attn attn_out, mlp mlp_out, z hook_z; layers 1 and 2.
SAES = sae_rows(
    [
        (fam, layer, f"blocks.{layer}.{hook}", 8, D)
        for fam, hook in [
            ("res", "hook_resid_pre"),
            ("attn", "hook_attn_out"),
            ("mlp", "hook_mlp_out"),
            ("z", "attn.hook_z"),
        ]
        for layer in (1, 2)
    ]
)


def specialists_frame(rows):
    return pl.DataFrame(
        rows,
        schema={
            "sae": pl.String,
            "layer": pl.Int64,
            "category": pl.String,
            "feature": pl.Int32,
            "score": pl.Int64,
            "n_in": pl.Int64,
            "n_out": pl.Int64,
        },
        orient="row",
    ).with_columns((pl.col("score") > 0).alias("has_specialist"))


# (sae, layer, category, feature, score, n_in, n_out)
SPEC = specialists_frame(
    [
        # code: attention has it at layer 1 (score 3), mlp at layer 1 too but weaker; res at 2
        ("attn", 1, "code", 3, 3, 4, 1),
        ("mlp", 1, "code", 5, 2, 3, 1),
        ("res", 1, "code", 0, 0, 1, 1),
        ("z", 1, "code", 1, -1, 0, 1),
        ("attn", 2, "code", 3, 4, 4, 0),
        ("mlp", 2, "code", 6, 4, 5, 1),  # same score, more texts inside: strongest at layer 2
        ("res", 2, "code", 2, 4, 4, 0),
        ("z", 2, "code", 1, 0, 0, 0),
        # maths: the MLP at layer 2 is the earliest; res at layer 2 equal score and n_in, so
        # the hook written earlier (resid_pre < mlp_out) wins the tie
        ("attn", 1, "maths", 4, 0, 0, 0),
        ("mlp", 1, "maths", 4, -2, 0, 2),
        ("res", 1, "maths", 4, 0, 0, 0),
        ("z", 1, "maths", 2, 0, 0, 0),
        ("attn", 2, "maths", 4, 0, 1, 1),
        ("mlp", 2, "maths", 7, 3, 3, 0),
        ("res", 2, "maths", 5, 3, 3, 0),
        ("z", 2, "maths", 2, 1, 1, 0),
    ]
)


def expected_components(spec: pl.DataFrame, saes: pl.DataFrame):
    """Plain-Python version of the component comparison."""
    hook = {(r["sae"], r["layer"]): r["hook_name"] for r in saes.iter_rows(named=True)}
    stage = {"hook_resid_pre": 0, "attn.hook_z": 2, "hook_attn_out": 3, "hook_mlp_out": 7}

    def position(sae, layer):
        name = hook[(sae, layer)]
        block, rest = name.split(".", 2)[1], name.split(".", 2)[2]
        return int(block), stage[rest]

    rows = [r for r in spec.iter_rows(named=True) if r["score"] > 0]
    strongest = {}
    for (category, layer), group in itertools.groupby(
        sorted(rows, key=lambda r: (r["category"], r["layer"])),
        key=lambda r: (r["category"], r["layer"]),
    ):
        best = sorted(
            group,
            key=lambda r: (-r["score"], -r["n_in"], position(r["sae"], layer), r["sae"]),
        )[0]
        strongest[(category, layer)] = best["sae"]
    earliest = {}
    for r in rows:
        key = (r["category"], r["sae"])
        earliest[key] = min(earliest.get(key, 99), r["layer"])
    first = {}
    for category in {r["category"] for r in rows}:
        positions = {
            sae: position(sae, layer) for (c, sae), layer in earliest.items() if c == category
        }
        ranks = sorted(set(positions.values()))
        first[category] = {sae: ranks.index(p) + 1 for sae, p in positions.items()}
    return strongest, earliest, first


def test_hook_positions_follow_the_forward_pass():
    names = [
        "blocks.0.hook_resid_pre",
        "blocks.0.attn.hook_z",
        "blocks.0.hook_attn_out",
        "blocks.0.hook_resid_mid",
        "blocks.0.mlp.hook_post",
        "blocks.0.hook_mlp_out",
        "blocks.0.hook_resid_post",
        "blocks.1.hook_resid_pre",
    ]
    assert sorted(names, key=hook_position) == names
    assert hook_position("hook_embed") < hook_position("blocks.0.hook_resid_pre")
    assert in_residual_basis("blocks.3.hook_mlp_out")
    assert not in_residual_basis("blocks.3.attn.hook_z")
    assert not in_residual_basis("blocks.3.mlp.hook_post")
    z = {"hook_name": "blocks.1.attn.hook_z", "d_in": D}
    res = {"hook_name": "blocks.1.hook_resid_pre", "d_in": D}
    assert comparable(res, res) is None
    assert "hook_z" in comparable(res, z)
    assert "d_in differs" in comparable(res, {**res, "d_in": D + 1})


def test_component_grid_and_first_match_plain_python():
    grid = component_grid(SPEC, SAES)
    first = component_first(grid)
    strongest, earliest, order = expected_components(SPEC, SAES)

    assert grid.height == SPEC.height
    got_strongest = {
        (r["category"], r["layer"]): r["sae"]
        for r in grid.filter("strongest").iter_rows(named=True)
    }
    assert got_strongest == strongest
    assert got_strongest == {
        ("code", 1): "attn",
        ("code", 2): "mlp",
        ("maths", 2): "res",
    }
    got_earliest = {
        (r["category"], r["sae"]): r["layer"] for r in grid.filter("earliest").iter_rows(named=True)
    }
    assert got_earliest == earliest
    got_order = {
        (r["category"], r["sae"]): r["order"]
        for r in first.iter_rows(named=True)
        if r["order"] is not None
    }
    assert got_order == {(c, s): o for c, ranks in order.items() for s, o in ranks.items()}
    # code: attn_out (block 1, stage 3) is written before mlp_out of block 1, then resid_pre 2
    code = first.filter(pl.col("category") == "code")
    assert code.filter("first")["sae"].to_list() == ["attn"]
    assert code.filter(pl.col("sae") == "z")["order"].to_list() == [None]
    maths = first.filter(pl.col("category") == "maths").filter(pl.col("order").is_not_null())
    # maths at layer 2: resid_pre (2,0) < z (2,2) < mlp_out (2,7)
    assert maths.sort("order")["sae"].to_list() == ["res", "z", "mlp"]


def dense_case(
    seed=0,
    n_positions=40,
    units=(
        ("res", 1, 0),
        ("res", 1, 3),
        ("res", 2, 1),
        ("attn", 1, 2),
        ("mlp", 2, 5),
        ("res", 2, 7),
    ),
    silent_last=True,
):
    """A dense positions x units matrix with many zeros, and its sparse long table."""
    rng = np.random.default_rng(seed)
    dense = rng.exponential(1.0, (n_positions, len(units))) * (
        rng.random((n_positions, len(units))) < 0.35
    )
    dense[:, 1] = np.where(dense[:, 0] > 0, dense[:, 0] * 2 + 0.1, 0)  # strongly co-active
    if silent_last:
        dense[:, -1] = 0.0  # never fires: no correlation
    text_ids = [f"t{p // 8}" for p in range(n_positions)]
    positions = [p % 8 + 1 for p in range(n_positions)]
    rows = [
        (sae, layer, feature, text_ids[p], positions[p], float(dense[p, u]))
        for u, (sae, layer, feature) in enumerate(units)
        for p in range(n_positions)
        if dense[p, u] > 0
    ]
    acts = pl.DataFrame(
        rows,
        schema={
            "sae": pl.String,
            "layer": pl.Int64,
            "feature": pl.Int32,
            "text_id": pl.String,
            "token_pos": pl.Int32,
            "activation": pl.Float32,
        },
        orient="row",
    )
    return dense.astype(np.float32).astype(np.float64), acts, list(units)


def all_pairs(units) -> pl.DataFrame:
    """Every pair of ``units`` as pair_correlations takes them."""
    return pl.DataFrame(
        [(*a, *b) for a, b in itertools.combinations(units, 2)],
        schema=["sae_a", "layer_a", "feature_a", "sae_b", "layer_b", "feature_b"],
        orient="row",
    )


def test_sparse_pearson_matches_numpy_corrcoef():
    dense, acts, units = dense_case()
    pairs = all_pairs(units)
    got = pair_correlations(acts, pairs, dense.shape[0])
    assert got.height == pairs.height
    for row in got.iter_rows(named=True):
        i = units.index((row["sae_a"], row["layer_a"], row["feature_a"]))
        j = units.index((row["sae_b"], row["layer_b"], row["feature_b"]))
        if dense[:, i].std() == 0 or dense[:, j].std() == 0:
            assert row["correlation"] is None
        else:
            assert row["correlation"] == pytest.approx(
                np.corrcoef(dense[:, i], dense[:, j])[0, 1], abs=1e-9
            )
    strong = got.filter((pl.col("feature_a") == 0) & (pl.col("feature_b") == 3))
    assert strong["correlation"].item() > 0.9


def test_nearest_and_cosines_match_numpy():
    rng = np.random.default_rng(1)
    pool = rng.normal(size=(12, D))
    pool[5] = pool[2] * 3.0  # same direction, other norm: equal cosine, lower index first
    queries = rng.normal(size=(3, D))
    queries[0] = pool[2]
    idx, cos = nearest(queries, pool, k=4)
    full = cosine_matrix(queries, pool)
    for i in range(3):
        expected = sorted(range(12), key=lambda j: (-round(full[i, j], 12), j))[:4]
        assert idx[i].tolist() == expected
        assert np.allclose(cos[i], full[i, expected])
    assert idx[0, :2].tolist() == [2, 5]
    assert cos[0, 0] == pytest.approx(1.0)
    own, _ = nearest(unit_rows(pool, [3]), pool, k=2, exclude=[3])
    assert 3 not in own[0].tolist()
    calls = []
    cache = DecoderCache(lambda key: calls.append(key) or pool, size=2)
    for key in ["a", "b", "a", "c", "a", "b"]:
        cache[key]
    assert calls == ["a", "b", "c", "b"]


def decoders_case():
    """W_dec per (sae, layer): res L1 feature 0 and res L2 feature 2 share a direction
    (a chain); attn L1 feature 3 is close to it; hook_z rows are random."""
    rng = np.random.default_rng(2)
    out = {key: rng.normal(size=(8, D)) for key in SAES.select("sae", "layer").iter_rows()}
    chain = rng.normal(size=D)
    out[("res", 1)][0] = chain
    out[("res", 2)][2] = 2.5 * chain
    out[("attn", 1)][3] = chain + 0.3 * rng.normal(size=D)
    return out


def test_specialist_links_match_numpy():
    spec = specialists_frame(
        [
            ("res", 1, "code", 0, 2, 2, 0),
            ("res", 2, "code", 2, 3, 3, 0),
            ("attn", 1, "code", 3, 2, 2, 0),
            ("z", 2, "code", 1, 1, 1, 0),
            ("mlp", 1, "code", 4, 0, 0, 0),
        ]
    )
    decoders = decoders_case()
    members = specialist_members(spec, SAES)
    assert members["sae"].to_list() == ["res", "attn", "res", "z"]  # forward-pass order
    queries = {}
    for r in members.iter_rows(named=True):
        queries.setdefault((r["sae"], r["layer"]), []).append(r["feature"])
    directions, _ = sweep_decoders(SAES, queries, decoders.__getitem__, k=0)
    dense, acts, units = dense_case(
        units=(("res", 1, 0), ("res", 2, 2), ("attn", 1, 3), ("z", 2, 1)), silent_last=False
    )
    links = specialist_links(members, SAES, directions, acts, dense.shape[0])
    assert links.height == 6
    member_units = [(r["sae"], r["layer"], r["feature"]) for r in members.iter_rows(named=True)]
    for row in links.iter_rows(named=True):
        a = (row["sae_a"], row["layer_a"], row["feature_a"])
        b = (row["sae_b"], row["layer_b"], row["feature_b"])
        assert member_units.index(a) < member_units.index(b)
        i, j = units.index(a), units.index(b)
        assert row["correlation"] == pytest.approx(np.corrcoef(dense[:, i], dense[:, j])[0, 1])
        if "z" in (a[0], b[0]):
            assert row["cosine"] is None and "hook_z" in row["cosine_note"]
        else:
            wa, wb = decoders[a[:2]][a[2]], decoders[b[:2]][b[2]]
            assert row["cosine"] == pytest.approx(wa @ wb / np.linalg.norm(wa) / np.linalg.norm(wb))
    chain = links.filter((pl.col("sae_a") == "res") & (pl.col("sae_b") == "res"))
    assert chain["relation"].to_list() == ["next_layer"]
    assert chain["cosine"].item() == pytest.approx(1.0)
    relations = dict(
        zip(zip(links["sae_a"], links["sae_b"], strict=True), links["relation"], strict=True)
    )
    assert relations[("res", "attn")] == "same_layer"
    assert relations[("attn", "res")] == "other_family"


def test_next_layer_neighbours_match_numpy():
    spec = specialists_frame(
        [
            ("res", 1, "code", 0, 2, 2, 0),
            ("res", 2, "code", 2, 3, 3, 0),
            ("res", 1, "maths", 6, 1, 1, 0),
            ("z", 1, "code", 1, 1, 1, 0),
        ]
    )
    decoders = decoders_case()
    members = specialist_members(spec, SAES)
    queries = {}
    for r in members.iter_rows(named=True):
        queries.setdefault((r["sae"], r["layer"]), []).append(r["feature"])
    _, related = sweep_decoders(SAES, queries, decoders.__getitem__, k=3)
    got = next_layer_neighbours(members, related)
    # res layer 2 is the family's last layer; hook_z is not in the residual basis
    assert set(got["layer"].to_list()) == {1} and set(got["sae"].to_list()) == {"res"}
    for (_category, feature), group in got.group_by("category", "feature"):
        w = decoders[("res", 1)][feature]
        pool = decoders[("res", 2)]
        cos = pool @ w / np.linalg.norm(pool, axis=1) / np.linalg.norm(w)
        expected = np.argsort(-cos, kind="stable")[:3]
        assert group.sort("rank")["next_feature"].to_list() == expected.tolist()
        assert np.allclose(group.sort("rank")["cosine"].to_numpy(), cos[expected])
    top = got.filter((pl.col("category") == "code") & (pl.col("rank") == 1))
    assert top["next_feature"].item() == 2 and top["next_is_specialist"].item()
    assert top["cosine"].item() == pytest.approx(1.0)
    dense, acts, units = dense_case(
        units=tuple(("res", 1, f) for f in (0, 6)) + tuple(("res", 2, f) for f in range(8)),
        silent_last=False,
    )
    with_r = add_neighbour_correlations(got, acts, dense.shape[0])
    for row in with_r.iter_rows(named=True):
        i = units.index(("res", 1, row["feature"]))
        j = units.index(("res", 2, row["next_feature"]))
        assert row["correlation"] == pytest.approx(np.corrcoef(dense[:, i], dense[:, j])[0, 1])


def test_width_ladders_are_detected_and_ordered():
    saes = sae_rows(
        [
            ("res", 8, "blocks.8.hook_resid_pre", 24576, 768),
            ("w768", 8, "blocks.8.hook_resid_pre", 768, 768),
            ("w1536", 8, "blocks.8.hook_resid_pre", 1536, 768),
            ("w24k", 8, "blocks.8.hook_resid_pre", 24576, 768),
            ("res", 6, "blocks.6.hook_resid_pre", 24576, 768),
            ("mlp", 8, "blocks.8.hook_mlp_out", 32768, 768),
        ]
    )
    ladders = width_ladders(saes)
    assert ladders["sae"].to_list() == ["w768", "w1536", "res", "w24k"]
    assert ladders["rung"].to_list() == [0, 1, 2, 3]
    assert set(ladders["ladder"].to_list()) == {"blocks.8.hook_resid_pre"}


def split_case():
    """Narrow SAE (d_sae 4) feature 1 is the 'maths' specialist on texts m0..m5; in the wide
    SAE (d_sae 8) feature 5 covers m0-m2, feature 6 m3-m4 (and m2 weakly), feature 7 fires on
    m5 but also on many other texts, uncorrelated with the parent; nothing covers... every
    text is covered by someone."""
    saes = sae_rows(
        [
            ("narrow", 2, "blocks.2.hook_resid_pre", 4, D),
            ("wide", 2, "blocks.2.hook_resid_pre", 8, D),
        ]
    )
    texts = [(f"m{i}", "maths") for i in range(6)] + [(f"o{i}", "other") for i in range(6)]
    threshold = 1.0
    # per-text values (value > 0 rows only)
    values = {
        ("narrow", 1): {f"m{i}": 3.0 for i in range(6)},
        ("narrow", 2): {"o0": 2.0},
        ("wide", 5): {"m0": 4.0, "m1": 3.5, "m2": 2.0, "o1": 1.5},
        ("wide", 6): {"m2": 2.5, "m3": 3.0, "m4": 2.0},
        ("wide", 7): {"m5": 1.2, **{f"o{i}": 2.0 for i in range(6)}},
        ("wide", 0): {"m0": 0.5},  # below threshold: never a candidate
    }
    category = dict(texts)
    per_text = pl.DataFrame(
        [
            (sae, 2, t, category[t], f, v)
            for (sae, f), per in values.items()
            for t, v in per.items()
        ],
        schema=["sae", "layer", "text_id", "category", "feature", "value"],
        orient="row",
    )
    spec = specialists_frame(
        [
            ("narrow", 2, "maths", 1, 6, 6, 0),
            ("narrow", 2, "other", 2, 1, 1, 0),
            ("wide", 2, "maths", 5, 3, 3, 1),
            ("wide", 2, "other", 7, 5, 6, 1),
        ]
    )
    return saes, per_text, spec, threshold, values, category


def test_splits_match_plain_python():
    saes, per_text, spec, threshold, values, category = split_case()
    ladders = width_ladders(saes)
    parents = parent_texts(ladders, spec, per_text, threshold)
    maths = parents.filter(pl.col("category") == "maths")
    assert maths["text_id"].to_list() == [f"m{i}" for i in range(6)]
    assert parents.filter(pl.col("category") == "other")["text_id"].to_list() == ["o0"]
    cands = split_candidates(ladders, parents, per_text, threshold)
    assert set(cands.filter(pl.col("category") == "maths")["child_feature"].to_list()) == {5, 6, 7}

    # correlations from a dense token matrix: the parent fires where its texts are; 5 and 6
    # fire with it; 7 fires mostly elsewhere
    units = [("narrow", 2, 1), ("narrow", 2, 2)] + [("wide", 2, f) for f in (5, 6, 7)]
    rng = np.random.default_rng(3)
    n = 60
    dense = np.zeros((n, len(units)))
    dense[:30, 0] = rng.uniform(1, 2, 30)
    dense[:15, 2] = dense[:15, 0] * 1.1
    dense[15:28, 3] = dense[15:28, 0] * 0.9
    dense[25:60, 4] = rng.uniform(0.5, 1, 35)
    dense[40:45, 1] = 1.0
    rows = [
        (*units[u], f"p{p // 10}", p % 10, float(dense[p, u]))
        for u in range(len(units))
        for p in range(n)
        if dense[p, u] > 0
    ]
    acts = pl.DataFrame(
        rows,
        schema=["sae", "layer", "feature", "text_id", "token_pos", "activation"],
        orient="row",
    )
    decoders = {("narrow", 2): rng.normal(size=(4, D)), ("wide", 2): rng.normal(size=(8, D))}
    decoders[("wide", 2)][5] = decoders[("narrow", 2)][1] + 0.1 * rng.normal(size=D)
    decoders[("wide", 2)][7] = decoders[("narrow", 2)][1] * -1.0  # opposite: never a child
    queries = {("narrow", 2): [1, 2], ("wide", 2): cands["child_feature"].unique().to_list()}
    directions, _ = sweep_decoders(saes, queries, decoders.__getitem__, k=0)
    sim = add_similarity(cands, saes, directions, acts, n)
    for row in sim.iter_rows(named=True):
        i = units.index(("narrow", 2, row["parent_feature"]))
        j = units.index(("wide", 2, row["child_feature"]))
        assert row["correlation"] == pytest.approx(np.corrcoef(dense[:, i], dense[:, j])[0, 1])
        wp = decoders[("narrow", 2)][row["parent_feature"]]
        wc = decoders[("wide", 2)][row["child_feature"]]
        assert row["cosine"] == pytest.approx(wp @ wc / np.linalg.norm(wp) / np.linalg.norm(wc))
    min_corr, min_cos = 0.3, 0.8
    splits = split_shares(sim, parents, per_text, spec, threshold, min_corr, min_cos)

    # plain-Python expectation for the maths parent
    corr = {
        r["child_feature"]: r["correlation"]
        for r in sim.iter_rows(named=True)
        if r["category"] == "maths"
    }
    cos = {
        r["child_feature"]: r["cosine"]
        for r in sim.iter_rows(named=True)
        if r["category"] == "maths"
    }
    children = sorted(f for f in corr if corr[f] >= min_corr or (cos[f] or -2) >= min_cos)
    assert children == [5, 6]
    parent_set = [t for t, v in values[("narrow", 1)].items() if v > threshold]
    owner = {}
    for t in parent_set:
        firing = [
            (values[("wide", f)].get(t, 0.0), -f)
            for f in children
            if values[("wide", f)].get(t, 0.0) > threshold
        ]
        if firing:
            owner[t] = -max(firing)[1]
    got = splits.filter(pl.col("category") == "maths")
    assert got["child_feature"].to_list() == [6, 5]  # share descending: m2 goes to 6 (2.5 > 2)
    for row in got.iter_rows(named=True):
        f = row["child_feature"]
        covered = [t for t in parent_set if values[("wide", f)].get(t, 0.0) > threshold]
        assert row["n_covered"] == len(covered)
        assert row["coverage"] == pytest.approx(len(covered) / len(parent_set))
        assert row["n_assigned"] == sum(o == f for o in owner.values())
        assert row["share"] == pytest.approx(row["n_assigned"] / len(parent_set))
        outside = [
            t for t, v in values[("wide", f)].items() if v > threshold and category[t] != "maths"
        ]
        assert row["n_out"] == len(outside)
        assert row["n_parent_texts"] == 6 and row["parent_d_sae"] == 4
        assert row["child_d_sae"] == 8 and row["rung"] == 1
    assert got["share"].to_list() == pytest.approx([3 / 6, 2 / 6])  # m5 is uncovered
    assert owner == {"m0": 5, "m1": 5, "m2": 6, "m3": 6, "m4": 6}
    assert got.filter(pl.col("child_feature") == 5)["child_is_specialist"].item()


def test_charts_are_saved_self_contained(tmp_path):
    from sae_specialists.analysis.charts import save_chart
    from sae_specialists.comparison.charts import components_chart, links_chart, splits_chart

    grid = component_grid(SPEC, SAES)
    spec = specialists_frame(
        [
            ("res", 1, "code", 0, 2, 2, 0),
            ("res", 2, "code", 2, 3, 3, 0),
            ("z", 2, "code", 1, 1, 1, 0),
        ]
    )
    members = specialist_members(spec, SAES)
    dense, acts, _ = dense_case(
        units=(("res", 1, 0), ("res", 2, 2), ("z", 2, 1)), silent_last=False
    )
    queries = {("res", 1): [0], ("res", 2): [2], ("z", 2): [1]}
    directions, _ = sweep_decoders(SAES, queries, decoders_case().__getitem__, k=0)
    links = specialist_links(members, SAES, directions, acts, dense.shape[0])
    saes, per_text, sspec, threshold, _, _ = split_case()
    ladders = width_ladders(saes)
    parents = parent_texts(ladders, sspec, per_text, threshold)
    cands = split_candidates(ladders, parents, per_text, threshold).with_columns(
        pl.lit(0.5).alias("cosine"), pl.lit(0.5).alias("correlation")
    )
    splits = split_shares(cands, parents, per_text, sspec, threshold, 0.3, 0.8)
    for name, chart in {
        "components": components_chart(grid),
        "links": links_chart(members, links),
        "splits": splits_chart(splits),
    }.items():
        save_chart(chart, tmp_path / f"{name}.html", tmp_path / f"{name}.png")
        html = (tmp_path / f"{name}.html").read_text()
        assert "vegaEmbed" in html and "https://cdn" not in html
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_decoder_sweep_relations_match_numpy():
    decoders = decoders_case()
    loads = []

    def load(key):
        loads.append(key)
        return decoders[key]

    queries = {("res", 1): [0, 4], ("attn", 1): [3], ("z", 1): [2], ("res", 2): [2]}
    floor = 0.6
    directions, related = sweep_decoders(SAES, queries, load, k=2, min_cosine=floor)
    assert sorted(loads) == sorted(SAES.select("sae", "layer").iter_rows())  # each SAE once
    assert [k[1] for k in loads] == sorted(k[1] for k in loads)  # layer by layer
    for (sae, layer, feature), row in directions.items():
        w = decoders[(sae, layer)][feature]
        assert np.allclose(row, w / np.linalg.norm(w))

    def expected(src, feature, dst, exclude_self):
        """The 2 nearest by cosine (ties: lower id), those above the floor only."""
        w = decoders[src][feature]
        pool = decoders[dst]
        cos = pool @ w / np.linalg.norm(pool, axis=1) / np.linalg.norm(w)
        if exclude_self:
            cos[feature] = -np.inf
        order = [int(i) for i in np.lexsort((np.arange(cos.size), -cos))[:2] if cos[i] > floor]
        return order, cos[order]

    groups = related.group_by("sae", "layer", "feature", "relation", "other_sae", "other_layer")
    seen, empty = set(), 0
    for (sae, layer, feature, relation, other_sae, other_layer), group in groups:
        seen.add((sae, layer, relation, other_sae, other_layer))
        idx, cos = expected((sae, layer), feature, (other_sae, other_layer), relation == "same_sae")
        if not idx:  # none above the floor: one row that says so
            empty += 1
            assert group.height == 1 and group.select("rank", "other_feature", "cosine").row(0) == (
                None,
                None,
                None,
            )
            continue
        group = group.sort("rank")
        assert group["rank"].to_list() == list(range(1, len(idx) + 1))
        assert group["other_feature"].to_list() == idx
        assert np.allclose(group["cosine"].to_numpy(), cos)
    assert 0 < empty < len(seen)  # the floor leaves some searches empty, not all
    assert (related["cosine"].drop_nulls() > floor).all()
    assert seen == {
        ("res", 1, "same_sae", "res", 1),
        ("attn", 1, "same_sae", "attn", 1),
        ("z", 1, "same_sae", "z", 1),  # hook_z: its own SAE only
        ("res", 2, "same_sae", "res", 2),
        ("res", 1, "next_layer", "res", 2),
        ("attn", 1, "next_layer", "attn", 2),
        ("res", 1, "other_component", "attn", 1),
        ("res", 1, "other_component", "mlp", 1),
        ("attn", 1, "other_component", "res", 1),
        ("attn", 1, "other_component", "mlp", 1),
        ("res", 2, "other_component", "attn", 2),
        ("res", 2, "other_component", "mlp", 2),
        # what attn's block-1 output writes is read by res at block 2's resid_pre
        ("attn", 1, "written_into", "res", 2),
    }
    self_rows = related.filter(pl.col("relation") == "same_sae")
    assert (self_rows["feature"] != self_rows["other_feature"]).all()


def tokens_shard(texts: list[tuple[str, str]], n_pos: int):
    """A tokens shard in the data contract: ``n_pos`` positions per (text_id, category), position
    0 the BOS."""
    import pyarrow as pa

    from sae_specialists.core.contract import TOKENS_SCHEMA

    n = len(texts) * n_pos
    return pa.table(
        {
            "text_id": [t for t, _ in texts for _ in range(n_pos)],
            "category": [c for _, c in texts for _ in range(n_pos)],
            "token_pos": [p for _ in texts for p in range(n_pos)],
            "token_id": [p for _ in texts for p in range(n_pos)],
            "token": ["x"] * n,
            "token_bytes": [b"x"] * n,
            "bos": [p == 0 for _ in texts for p in range(n_pos)],
        },
        schema=TOKENS_SCHEMA,
    )


def test_study_reads_counted_positions_from_shards(tmp_path):
    """The tracking job over real contract shards: BOS rows (large activations) are left out,
    and every correlation equals numpy's over the dense counted-position matrix."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sae_specialists.comparison import study
    from sae_specialists.core.contract import ACTIVATIONS_SCHEMA

    rng = np.random.default_rng(5)
    texts = [(f"t{i}", "code" if i < 3 else "maths") for i in range(6)]
    n_pos = 7  # position 0 is BOS
    pq.write_table(tokens_shard(texts, n_pos), tmp_path / "tokens.parquet")
    saes = SAES.filter(pl.col("sae").is_in(["res", "attn"]))
    dense, paths = {}, {}
    for key in saes.select("sae", "layer").iter_rows():
        values = rng.exponential(1.0, (len(texts), n_pos, 8)) * (
            rng.random((len(texts), n_pos, 8)) < 0.4
        )
        values[:, 0, :] = 50.0  # BOS: must never count
        dense[key] = values
        t, p, f = np.nonzero(values)
        table = pa.table(
            {
                "text_id": [texts[i][0] for i in t],
                "token_pos": p.astype(np.int32),
                "feature": f.astype(np.int32),
                "activation": values[t, p, f].astype(np.float32),
            },
            schema=ACTIVATIONS_SCHEMA,
        )
        paths[key] = [str(tmp_path / f"{key[0]}_{key[1]}.parquet")]
        pq.write_table(table, paths[key][0])
    spec = specialists_frame(
        [
            ("res", 1, "code", 0, 2, 2, 0),
            ("res", 2, "code", 2, 3, 3, 0),
            ("attn", 1, "code", 3, 2, 2, 0),
            ("attn", 2, "code", 5, 0, 0, 0),
        ]
    )
    strongest = pl.DataFrame({"sae": ["res"], "layer": [1], "feature": [4]})
    frequent = pl.DataFrame({"sae": ["attn"], "layer": [2], "feature": [6]})
    counted = study.counted_positions([tmp_path / "tokens.parquet"], include_bos=False)
    n_counted = len(texts) * (n_pos - 1)
    load = decoders_case().__getitem__
    candidates = spec.select("sae", "layer", "feature")  # stand-in for the candidates here
    features = study.features_of_interest(candidates, strongest, frequent)
    related_out = study.related(features, saes, load, paths, counted, n_counted, 2)
    directions = study.read_directions(related_out["feature_directions"])  # via the table
    for (sae, layer, feature), row in directions.items():
        w = load((sae, layer))[feature]
        assert np.allclose(row, w / np.linalg.norm(w))
    out = {
        **related_out,
        **study.tracking(
            spec, related_out["related_features"], directions, saes, paths, counted, n_counted
        ),
    }

    def column(sae, layer, feature):
        return dense[(sae, layer)][:, 1:, feature].reshape(-1).astype(np.float32)

    links = out["specialist_links"]
    assert links.height == 3
    related = out["related_features"]
    assert set(related["relation"].to_list()) == {
        *("same_sae", "next_layer", "other_component"),
        "written_into",  # attn at block 1 writes what res reads at block 2
    }
    none_above = related.filter(pl.col("other_feature").is_null())  # searched, none above 0
    assert none_above["correlation"].is_null().all() and none_above["cosine"].is_null().all()
    related = related.drop_nulls("other_feature")
    assert {(4, "res", 1), (6, "attn", 2)} <= set(
        zip(related["feature"], related["sae"], related["layer"], strict=True)
    )
    for frame, a_cols, b_cols in (
        (links, ("sae_a", "layer_a", "feature_a"), ("sae_b", "layer_b", "feature_b")),
        (related, ("sae", "layer", "feature"), ("other_sae", "other_layer", "other_feature")),
        (out["next_layer"], ("sae", "layer", "feature"), ("sae", "next_layer", "next_feature")),
    ):
        assert frame.height > 0
        for row in frame.iter_rows(named=True):
            x = column(*(row[c] for c in a_cols))
            y = column(*(row[c] for c in b_cols))
            assert row["correlation"] == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-9)


def test_candidate_features_are_the_analysis_candidates_at_any_threshold():
    """The related-features job's features come from the one implementation of the rule;
    membership equals the oracle's candidates whatever the threshold."""
    import specialist_oracle

    from sae_specialists.comparison import study

    rng = np.random.default_rng(7)
    texts = pl.DataFrame(
        {
            "text_id": [f"t{i}" for i in range(12)],
            "category": ["a"] * 4 + ["b"] * 4 + ["c"] * 4,
            "text_order": list(range(12)),
        }
    )
    rows = []
    for sae, layer in (("res", 1), ("res", 2), ("attn", 1)):
        for i in range(12):
            for f in rng.choice(40, size=9, replace=False):
                value = float(np.round(rng.exponential(3.0), 1)) or 0.5  # ties on purpose
                rows.append((sae, layer, f"t{i}", texts["category"][i], int(f), value, value))
    pt = pl.DataFrame(
        rows,
        schema=["sae", "layer", "text_id", "category", "feature", "value", "max"],
        orient="row",
    )
    keys = [("attn", 1), ("res", 1), ("res", 2)]
    got = study.candidate_features(pt.lazy(), texts, keys, k=3)
    for threshold in (0.0, 2.5, 100.0):
        oracle = specialist_oracle.candidates(pt, texts, threshold, k=3)
        expected = oracle.select("sae", "layer", "feature").unique().sort("sae", "layer", "feature")
        assert got.to_dicts() == expected.with_columns(pl.col("feature").cast(pl.Int64)).to_dicts()


def test_written_into_pairs_each_component_with_the_residual_sae_that_reads_it_next():
    """An attention-out / MLP-out SAE at block L is read by the residual stream from there on:
    per residual family (resid_pre / mid / post, same d_in) its first SAE after the
    component's hook in the forward pass."""
    from sae_specialists.comparison.hooks import written_into

    saes = sae_rows(
        [
            *[("res", b, f"blocks.{b}.hook_resid_pre", 8, D) for b in (6, 8, 10)],
            *[("attn", b, f"blocks.{b}.hook_attn_out", 8, D) for b in (6, 8)],
            ("mlp", 6, "blocks.6.hook_mlp_out", 8, D),
            ("mid", 6, "blocks.6.hook_resid_mid", 8, D),
            ("post", 8, "blocks.8.hook_resid_post", 8, D),
            ("wide_model", 8, "blocks.8.hook_resid_pre", 8, D + 1),  # another model's width
            ("z", 6, "blocks.6.attn.hook_z", 8, D),
        ]
    )
    assert written_into(saes) == {
        # attention output of block 6 is in resid_mid 6 already, then resid_pre 8 (the next res)
        ("attn", 6): [("mid", 6), ("post", 8), ("res", 8)],
        ("attn", 8): [("post", 8), ("res", 10)],
        # the MLP writes after resid_mid: that family has no later SAE
        ("mlp", 6): [("post", 8), ("res", 8)],
    }


def test_related_block_shows_written_into_and_none_above_the_floor(tmp_path):
    from sae_specialists.dashboards.related import related_block

    rows = [
        ("attn", 0, 7, "same_sae", "attn", 0, 1, 3, 0.42, 0.1),
        ("attn", 0, 7, "written_into", "res", 1, 1, 5, 0.8, 0.9),
        ("attn", 0, 7, "written_into", "res", 1, 2, 9, 0.12, None),
        ("attn", 0, 7, "other_component", "mlp", 0, None, None, None, None),
    ]
    table = pl.DataFrame(
        rows,
        schema=[
            "sae",
            "layer",
            "feature",
            "relation",
            "other_sae",
            "other_layer",
            "rank",
            "other_feature",
            "cosine",
            "correlation",
        ],
        orient="row",
    )
    page_dir = tmp_path / "dashboards/sae=attn/layer=0"
    pages = {("res", 1, 5): str(tmp_path / "dashboards/sae=res/layer=1/feature=5.html")}
    html = related_block(table, "attn", 0, 7, pages, page_dir, 0.1)
    assert "only those above 0.10" in html
    written = html.split('data-relation="written_into"')[1].split("</table>")[0]
    assert written.index("#5") < written.index("#9")  # rank order
    assert '<a href="../../sae=res/layer=1/feature=5.html">#5</a>' in written
    assert "0.800" in written and "0.900" in written and "–" in written  # r unknown for #9
    other = html.split('data-relation="other_component"')[1].split("</table>")[0]
    assert "none above 0.10 in mlp · 0" in other and "#" not in other
    assert html.index("Same SAE") < html.index("Other components") < html.index("Written into")


def test_a_local_decoder_read_from_its_file_is_the_matrix_saelens_loads(demo_assets, tmp_path):
    """comparison jobs read local W_dec without SAELens (decoders.local_decoder): the same
    matrix, bit for bit, as SAELens's own loader gives for every demo family; a bfloat16 SAE
    (numpy cannot read it) and another architecture fall back to SAELens."""
    import json
    import shutil

    import torch
    from sae_lens import SAE
    from safetensors.torch import load_file, save_file

    from sae_specialists.comparison.decoders import load_decoder, local_decoder

    dirs = sorted((demo_assets / "saes").glob("*/layer*"))
    assert len(dirs) >= 10
    for directory in dirs:
        expected = SAE.load_from_disk(str(directory), device="cpu").W_dec.detach().numpy()
        got = local_decoder(str(directory), "test")
        assert got.dtype == np.float32 and np.array_equal(got, expected), directory

    bf16 = shutil.copytree(dirs[0], tmp_path / "bf16")
    weights = load_file(str(bf16 / "sae_weights.safetensors"))
    save_file(
        {k: v.to(torch.bfloat16) for k, v in weights.items()}, str(bf16 / "sae_weights.safetensors")
    )
    assert local_decoder(str(bf16), "test") is None
    expected = weights["W_dec"].to(torch.bfloat16).float().numpy()
    assert np.array_equal(load_decoder("res", 0, {"path": str(bf16)}), expected)

    other = shutil.copytree(dirs[0], tmp_path / "other")
    cfg = json.loads((other / "cfg.json").read_text())
    (other / "cfg.json").write_text(json.dumps({**cfg, "architecture": "matryoshka_batchtopk"}))
    assert local_decoder(str(other), "test") is None


def test_coactivation_read_in_chunks_of_positions_equals_one_read():
    """study.unit_activations gives one lazy frame per extraction shard (disjoint positions):
    the co-activations summed chunk by chunk equal those of the whole frame (itself checked
    against numpy above)."""
    dense, acts, units = dense_case()
    pairs = all_pairs(units)
    whole = pair_correlations(acts, pairs, dense.shape[0])
    texts = sorted(acts["text_id"].unique().to_list())
    chunks = [acts.filter(pl.col("text_id").is_in(texts[i::3])).lazy() for i in range(3)]
    chunks.append(acts.clear().lazy())  # a shard with no row of these units
    parts = pair_correlations(chunks, pairs, dense.shape[0])
    assert parts.select(pl.exclude("correlation")).equals(whole.select(pl.exclude("correlation")))
    np.testing.assert_allclose(
        parts["correlation"].fill_null(np.nan).to_numpy(),
        whole["correlation"].fill_null(np.nan).to_numpy(),
        rtol=1e-12,
        atol=1e-12,
    )
    assert parts["correlation"].null_count() == whole["correlation"].null_count()


def test_each_activation_shard_is_matched_with_its_own_shards_positions(tmp_path):
    """counted_by_shard: one lazy frame of counted positions per (category, chunk), each from
    its own tokens shard; unit_activations with it gives the same rows, shard by shard, as with
    every counted position (BOS left out either way), and a shard whose positions are not in its
    own tokens shard gets none: it is never matched against another shard's positions."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sae_specialists.comparison import study
    from sae_specialists.core.contract import ACTIVATIONS_SCHEMA

    rng = np.random.default_rng(3)
    shards = {
        ("code", "00000"): ["a0", "a1"],
        ("code", "00001"): ["a2"],
        ("maths", "00000"): ["b0"],
    }
    token_paths, act_paths = [], []
    for (category, chunk), text_ids in shards.items():
        part = f"category={category}/chunk={chunk}"
        n_pos = 5
        (tmp_path / "tokens" / part).mkdir(parents=True)
        token_paths.append(str(tmp_path / "tokens" / part / "tokens.parquet"))
        pq.write_table(tokens_shard([(t, category) for t in text_ids], n_pos), token_paths[-1])
        rows = [(t, p, f) for t in text_ids for p in range(n_pos) for f in range(3)]
        acts = pa.table(
            {
                "text_id": [t for t, _, _ in rows],
                "token_pos": np.array([p for _, p, _ in rows], dtype=np.int32),
                "feature": np.array([f for _, _, f in rows], dtype=np.int32),
                "activation": rng.random(len(rows)).astype(np.float32),
            },
            schema=ACTIVATIONS_SCHEMA,
        )
        (tmp_path / "acts" / part).mkdir(parents=True)
        act_paths.append(str(tmp_path / "acts" / part / "activations.parquet"))
        pq.write_table(acts, act_paths[-1])
    units = pl.DataFrame({"sae": ["res"], "layer": [1], "feature": [1]})
    activations = {("res", 1): act_paths}

    by_shard = study.counted_by_shard(token_paths, include_bos=False)
    assert set(by_shard) == set(shards)
    for group, frame in by_shard.items():
        assert set(frame.collect()["text_id"].to_list()) == set(shards[group])
    everything = study.counted_positions(token_paths, include_bos=False)
    mine = [
        f.collect().sort("text_id", "token_pos")
        for f in study.unit_activations(activations, units, by_shard)
    ]
    whole = [
        f.collect().sort("text_id", "token_pos")
        for f in study.unit_activations(activations, units, everything)
    ]
    assert len(mine) == len(whole) == 3
    for a, b in zip(mine, whole, strict=True):
        assert a.equals(b) and a.height > 0 and (a["token_pos"] > 0).all()

    # a tokens shard of another layout: one entry with every position, the same rows again
    import shutil

    shutil.copy(token_paths[0], tmp_path / "tokens.parquet")
    flat = study.counted_by_shard([*token_paths, str(tmp_path / "tokens.parquet")], False)
    assert set(flat) == {None}
    # the maths shard's activations matched against the code shards' positions only: nothing
    swapped = {("maths", "00000"): by_shard[("code", "00000")]}
    maths = [
        f.collect() for f in study.unit_activations({("res", 1): act_paths[2:]}, units, swapped)
    ]
    assert [f.height for f in maths] == [0]

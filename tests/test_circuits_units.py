"""Circuits stage, unit level, on the demo model and SAEs: downstream edges, upstream attribution,
verification and completeness, each against an independent computation written out here with
TransformerLens's own ``run_with_hooks`` on one unpadded text at a time; the planted chain and dead
end against their planted amounts; the ranking on small hand-made tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
import yaml

from sae_specialists.circuits.edges import Root, freeze, make_sites, root_circuit
from sae_specialists.circuits.rank import (
    RankOptions,
    agreement,
    downstream_edges,
    spearman,
    summary,
    upstream_edges,
)
from sae_specialists.circuits.run import tables_of

N_TEXTS = 4  # texts per category in the unit tests (the demo run uses all of them)


@pytest.fixture(scope="module")
def demo(demo_assets, planted):
    from sae_lens import SAE

    from sae_specialists.extraction.models import load_local_model
    from sae_specialists.extraction.saes import LoadedSAE

    model = load_local_model(demo_assets / "model")
    loaded = []
    for family in ("res", "attn", "mlp"):
        for layer in range(4):
            sae = SAE.load_from_disk(str(demo_assets / f"saes/{family}/layer{layer}"))
            loaded.append(LoadedSAE(family, layer, sae, sae.cfg.metadata.hook_name, {}, None))
    sites = make_sites(model, loaded)
    freeze(model, sites)
    tok = model.tokenizer
    texts_dir = Path(__file__).resolve().parents[1] / "resources" / "demo_texts"

    def texts(category: str) -> list[list[int]]:
        items = yaml.safe_load((texts_dir / f"{category}.yaml").read_text("utf-8"))[:N_TEXTS]
        return [[tok.bos_token_id] + tok(t, add_special_tokens=False)["input_ids"] for t in items]

    saes = {(s.family, s.layer): s.sae for s in loaded}

    def only(*keys):
        """The sites of ``keys`` (a root's edges reach the sites it is given: fewer, faster)."""
        return [s for s in sites if s.key in keys]

    return model, only, saes, texts, planted["families"]["res"]


# -- independent computations (one text at a time, run_with_hooks) -----------------------------


def encode_all(sae, x):
    with torch.no_grad():
        return sae.encode(x)


def ablation_hook(sae, features):
    """x - sum_i a_i(x) W_dec[i] at every position but BOS (a_i from the activation arriving)."""

    def hook(act, hook):  # noqa: ARG001
        a = encode_all(sae, act[0, 1:])[:, features]
        out = act.clone()
        out[0, 1:] = act[0, 1:] - a @ sae.W_dec[features]
        return out

    return hook


def run_capture(model, ids, hooks, capture):
    cache = {}

    def grab(act, hook):
        cache[hook.name] = act.detach().clone()

    with torch.no_grad():
        model.run_with_hooks(torch.tensor([ids]), fwd_hooks=[*hooks, *[(h, grab) for h in capture]])
    return cache


def feature_sum(model, saes, texts, key, feature, hooks=()) -> float:
    """Sum over texts and non-BOS positions of (family, layer)'s feature, with ``hooks``."""
    sae = saes[key]
    hook = sae.cfg.metadata.hook_name
    total = 0.0
    for ids in texts:
        cache = run_capture(model, ids, list(hooks), [hook])
        total += float(encode_all(sae, cache[hook][0, 1:])[:, feature].sum())
    return total


def ablated_at_layer0(model, sae0, sae1, a, text):
    """(layer 0's clean activation, layer 1's SAE activations clean, and with A ablated at
    layer 0) for one text, BOS dropped."""
    clean = run_capture(model, text, [], ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre"])
    ablated = run_capture(
        model,
        text,
        [("blocks.0.hook_resid_pre", ablation_hook(sae0, [a]))],
        ["blocks.1.hook_resid_pre"],
    )
    x0 = clean["blocks.0.hook_resid_pre"][0, 1:]
    c1 = encode_all(sae1, clean["blocks.1.hook_resid_pre"][0, 1:])
    return x0, c1, encode_all(sae1, ablated["blocks.1.hook_resid_pre"][0, 1:])


# -- downstream -------------------------------------------------------------------------------


def test_downstream_edges_match_run_with_hooks_and_the_planted_chain(demo, planted):
    """urls layer 0 (A, decoder row along the all-ones direction) -> urls layer 1 (B): B reads
    the urls dimension, on which the unit all-ones row has 1/8 (d_model 64), so ablating A at a
    marker token lowers B by 2 * B's peak * (a_A / A's peak) / 8: a quarter where a_A is at its
    peak. The LayerNorms remove the all-ones direction, so no attention or MLP SAE sees it."""
    model, sites, saes, texts, res = demo
    chain = planted["circuits"]["detector_chain"]
    a, b = chain["a"]["feature"], chain["b"]["feature"]
    assert (a, b) == (res["0"]["urls"], res["1"]["urls"])
    ids = texts("urls")
    keys = [("res", 0), ("res", 1), ("attn", 1), ("mlp", 1), ("attn", 3), ("mlp", 3)]
    result = root_circuit(model, sites(*keys), Root("res", 0, a, "urls"), ids, verify=0)
    sae0, sae1 = saes[("res", 0)], saes[("res", 1)]
    expected = np.zeros(sae1.cfg.d_sae)
    planted_drop = 0.0
    for text in ids:
        x0, c1, a1 = ablated_at_layer0(model, sae0, sae1, a, text)
        expected += (a1 - c1).sum(0).double().numpy()
        a_act = encode_all(sae0, x0)[:, a]
        # planted: B's encoder column (2 x its peak on the urls dim) . A's decoder row
        gain = float(sae1.W_enc[:, b] @ sae0.W_dec[a])
        planted_drop += float((a_act * gain * (c1[:, b] > 0)).sum())
    got = result.downstream[("res", 1)].change
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)
    assert int(np.argmax(np.abs(got))) == b
    assert got[b] == pytest.approx(-planted_drop, rel=1e-4)
    # the planted amount, a quarter of B's peak where A is at its peak (peak = |W_enc col| / 2)
    share = float(sae1.W_enc[:, b] @ sae0.W_dec[a]) * float(sae0.W_enc[:, a].norm() / 2)
    share /= float(sae1.W_enc[:, b].norm() / 2)
    assert share == pytest.approx(chain["drop_share_at_peak"], rel=1e-5)
    assert chain["drop_share_at_peak"] == pytest.approx(0.25)
    for key in [("attn", 1), ("mlp", 1), ("attn", 3), ("mlp", 3)]:
        assert np.abs(result.downstream[key].change).max() / result.n_tokens < 1e-6


def test_the_planted_two_step_chain_math_layer_0_to_layer_1(demo, planted):
    """A = math at layer 0 gives back 0.48 of the math dimension it reads; B = math at layer 1
    reads that dimension with threshold 0.5 (encoder gain 2 x its peak): ablating A at its peak
    lowers B by 0.96 of B's peak, linearly, since B stays above its threshold. Against
    run_with_hooks: A -> B is A's top edge into layer 1 with the measured change; A is B's top
    upstream feature; its attribution equals its measured drop; the verified features ablated
    together leave less than a tenth of B (completeness >= 0.9)."""
    model, sites, saes, texts, res = demo
    chain = planted["circuits"]["chain"]
    a, b = chain["a"]["feature"], chain["b"]["feature"]
    assert (a, b) == (res["0"]["math"], res["1"]["math"])
    sae0, sae1 = saes[("res", 0)], saes[("res", 1)]
    # the planted amount: B's encoder column . A's decoder row, times A's peak, over B's peak
    share = float(sae1.W_enc[:, b] @ sae0.W_dec[a]) * float(sae0.W_enc[:, a].norm() / 2)
    share /= float(sae1.W_enc[:, b].norm() / 2)
    assert share == pytest.approx(chain["drop_share_at_peak"], rel=1e-5)
    assert chain["drop_share_at_peak"] == pytest.approx(0.96)
    ids = texts("math")

    down = root_circuit(model, sites(("res", 0), ("res", 1)), Root("res", 0, a, "math"), ids, 0)
    change, clean_b, linear = 0.0, 0.0, 0.0
    for text in ids:
        x0, c1, a1 = ablated_at_layer0(model, sae0, sae1, a, text)
        change += float((a1[:, b] - c1[:, b]).sum())
        clean_b += float(c1[:, b].sum())
        linear += float((encode_all(sae0, x0)[:, a] * (sae1.W_enc[:, b] @ sae0.W_dec[a])).sum())
    got = down.downstream[("res", 1)].change
    assert int(np.argmax(np.abs(got))) == b
    assert got[b] == pytest.approx(change, rel=1e-4)
    # linear: the drop is A's activation times the planted gain, up to block 0's reaction
    assert -change == pytest.approx(linear, rel=0.02)
    assert -change / clean_b >= 0.9

    keys = [("res", 0), ("attn", 0), ("mlp", 0)]
    up = root_circuit(model, sites(*keys, ("res", 1)), Root("res", 1, b, "math"), ids, verify=10)
    assert up.clean_sum == pytest.approx(clean_b, rel=1e-5)
    attributions = {key: up.upstream[key].attribution for key in keys}
    assert int(np.argmax(np.abs(attributions[("res", 0)]))) == a
    assert all(np.abs(attributions[k]).max() < attributions[("res", 0)][a] for k in keys[1:])
    v = up.verified
    assert v.nodes[0][:2] == (("res", 0), a)
    assert v.drop[0] == pytest.approx(-change, rel=1e-4)
    assert v.drop[0] == pytest.approx(attributions[("res", 0)][a], rel=0.02)
    by_hook: dict = {}
    for key, feature, _ in v.nodes:
        by_hook.setdefault(key, []).append(feature)
    joint = [
        (saes[k].cfg.metadata.hook_name, ablation_hook(saes[k], f)) for k, f in by_hook.items()
    ]
    remaining = feature_sum(model, saes, ids, ("res", 1), b, joint)
    assert v.joint_remaining[-1] == pytest.approx(remaining, rel=1e-3, abs=1e-2)
    assert 1 - remaining / clean_b >= chain["completeness_at_least"]


def test_dead_end_the_last_layer_detector_feeds_nothing(demo):
    """urls at layer 3: only attn/mlp of block 3 read the model after it, through a LayerNorm
    that removes its all-ones direction: no downstream edge above the floor. The python
    specialist at the same layer (a marker direction the LayerNorm keeps) does feed them."""
    model, sites, saes, texts, res = demo
    floor = RankOptions().floor
    block3 = sites(("res", 3), ("attn", 3), ("mlp", 3))
    dead = root_circuit(model, block3, Root("res", 3, res["3"]["urls"], "urls"), texts("urls"), 0)
    live = root_circuit(
        model, block3, Root("res", 3, res["3"]["python"], "python"), texts("python")[:2], 0
    )
    for r, is_dead in ((dead, True), (live, False)):
        frames = tables_of([r])
        ranked = summary(
            frames["roots"],
            downstream_edges(frames["downstream"], _no_specialists(), RankOptions()),
            frames["downstream"],
            upstream_edges(frames["upstream"], frames["verified"], frames["roots"], RankOptions()),
            frames["verified"],
            pl.DataFrame(),
            RankOptions(),
        )
        assert ranked["dead_end"][0] is is_dead
    for key, d in dead.downstream.items():
        assert key in {("attn", 3), ("mlp", 3)}
        assert np.abs(d.change).max() / dead.n_tokens < 1e-6
        assert np.all(np.abs(d.change) < floor * np.maximum(d.clean, 0) + 1e-6 * dead.n_tokens)


def _no_specialists() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "sae": pl.String,
            "layer": pl.Int64,
            "category": pl.String,
            "feature": pl.Int64,
            "has_specialist": pl.Boolean,
        }
    )


# -- upstream ---------------------------------------------------------------------------------


def test_upstream_attribution_is_the_gradient_and_the_top_edge_is_the_planted_one(demo):
    """B = urls layer 1: attribution of every res layer-0 feature against a finite-difference
    directional derivative (x + eps * a_i W_dec[i] at layer 0's hook, run_with_hooks); the top
    upstream feature is A = urls layer 0 and its attribution equals its measured drop (the path
    is linear: the LayerNorm does not see the all-ones row), which equals the planted drop."""
    model, sites, saes, texts, res = demo
    a, b = res["0"]["urls"], res["1"]["urls"]
    ids = texts("urls")[:2]
    layers01 = sites(("res", 0), ("attn", 0), ("mlp", 0), ("res", 1))
    result = root_circuit(model, layers01, Root("res", 1, b, "urls"), ids, verify=5)
    sae0 = saes[("res", 0)]
    up = result.upstream[("res", 0)]
    top = np.argsort(-np.abs(up.attribution))[:4]
    assert top[0] == a
    eps = 1e-2

    def scaled(feature, scale):
        def hook(act, hook):  # noqa: ARG001
            x = act[0, 1:]
            out = act.clone()
            out[0, 1:] = x + scale * encode_all(sae0, x)[:, [feature]] * sae0.W_dec[feature]
            return out

        return hook

    for f in top:
        plus = feature_sum(
            model, saes, ids, ("res", 1), b, [("blocks.0.hook_resid_pre", scaled(f, eps))]
        )
        minus = feature_sum(
            model, saes, ids, ("res", 1), b, [("blocks.0.hook_resid_pre", scaled(f, -eps))]
        )
        derivative = (plus - minus) / (2 * eps)
        assert up.attribution[f] == pytest.approx(derivative, rel=2e-2, abs=0.5)
    clean = feature_sum(model, saes, ids, ("res", 1), b)
    assert result.clean_sum == pytest.approx(clean, rel=1e-5)
    ablated = feature_sum(
        model, saes, ids, ("res", 1), b, [("blocks.0.hook_resid_pre", ablation_hook(sae0, [a]))]
    )
    v = result.verified
    assert v.nodes[0][:2] == (("res", 0), a)
    assert v.drop[0] == pytest.approx(clean - ablated, rel=1e-4)
    assert v.drop[0] == pytest.approx(up.attribution[a], rel=1e-4)
    assert v.drop[0] / clean == pytest.approx(0.25, abs=0.01)


def test_verification_and_completeness_match_joint_ablation_on_the_math_chain(demo):
    """math layer 2 reads the math dimension that math layer 1 reconstructs whole: each verified
    feature ablated alone and every prefix ablated together match run_with_hooks with the same
    features removed (each hook encodes the activation arriving at it; the stage's passes start
    at block 1, the reference runs the whole model); completeness of the chain >= 0.9."""
    model, sites, saes, texts, res = demo
    f = res["2"]["math"]
    ids = texts("math")[:3]
    result = root_circuit(
        model, sites(("res", 1), ("res", 2)), Root("res", 2, f, "math"), ids, verify=4
    )
    v = result.verified
    assert v.nodes[0][:2] == (("res", 1), res["1"]["math"])
    by_hook: dict = {}
    for r, (key, feature, _) in enumerate(v.nodes):
        alone = [(saes[key].cfg.metadata.hook_name, ablation_hook(saes[key], [feature]))]
        assert v.drop[r] == pytest.approx(
            result.clean_sum - feature_sum(model, saes, ids, ("res", 2), f, alone),
            rel=1e-4,
            abs=1e-2,
        )
        by_hook.setdefault(key, []).append(feature)
        joint = [
            (saes[k].cfg.metadata.hook_name, ablation_hook(saes[k], feats))
            for k, feats in by_hook.items()
        ]
        assert v.joint_remaining[r] == pytest.approx(
            feature_sum(model, saes, ids, ("res", 2), f, joint), rel=1e-4, abs=1e-2
        )
    completeness = 1 - v.joint_remaining[-1] / result.clean_sum
    assert completeness >= 0.9


def test_sliced_encoding_is_the_saes_own_encode(demo):
    """The stage computes a few features' activations from their encoder columns only."""
    from sae_specialists.circuits.edges import sliceable, sliced

    _, _, saes, _, _ = demo
    sae = saes[("res", 2)]
    rows = torch.randn(50, 64) * 2 + 0.5
    features = [3, 17, 90, 5]
    assert sliceable(sae)
    expected = encode_all(sae, rows)[:, features]
    torch.testing.assert_close(sliced(sae, rows, features), expected, rtol=1e-5, atol=1e-5)


def test_the_math_chain_is_a_path_through_every_layer(demo):
    """The math specialist's decoder row is the same direction at every layer: ablating it at
    layer L removes the next layer's math specialist most of all its layer's features."""
    model, sites, saes, texts, res = demo
    ids = texts("math")[:2]
    for layer in range(3):
        pair = sites(("res", layer), ("res", layer + 1))
        r = root_circuit(model, pair, Root("res", layer, res[str(layer)]["math"], "math"), ids, 0)
        change = r.downstream[("res", layer + 1)].change
        assert int(np.argmax(-change)) == res[str(layer + 1)]["math"]


# -- ranking (hand-made tables) -----------------------------------------------------------------


def _root(**extra):
    return {"family": "res", "layer": 0, "category": "c", "feature": 5, **extra}


def test_downstream_ranking_keeps_top_k_per_target_sae_and_marks_specialists():
    rows = [
        _root(
            target_family="res",
            target_layer=1,
            target_feature=j,
            n_tokens=10,
            clean_sum=100.0,
            change_sum=-float(v),
            abs_change_sum=abs(float(v)),
        )
        for j, v in [(1, 50), (2, -80), (3, 10), (4, 10)]
    ] + [
        _root(
            target_family="res",
            target_layer=2,
            target_feature=7,
            n_tokens=10,
            clean_sum=0.0,
            change_sum=3.0,
            abs_change_sum=3.0,
        )
    ]
    down = pl.DataFrame(rows)
    specialists = pl.DataFrame(
        {"sae": ["res"], "layer": [1], "category": ["c"], "feature": [1], "has_specialist": [True]}
    )
    ranked = downstream_edges(down, specialists, RankOptions(top_k=3))
    one = ranked.filter(pl.col("target_layer") == 1)
    assert one["target_feature"].to_list() == [2, 1, 3]  # |effect| desc; tie 3/4: lower id
    assert one["effect"].to_list() == pytest.approx([-8.0, 5.0, 1.0])
    assert one["relative"].to_list() == pytest.approx([-0.8, 0.5, 0.1])
    assert one["target_is_specialist"].to_list() == [False, True, False]
    two = ranked.filter(pl.col("target_layer") == 2)
    assert two["relative"][0] is None and two["effect"][0] == pytest.approx(-0.3)


def test_agreement_spearman_and_completeness_from_the_verified_table():
    attr = [10.0, 8.0, 3.0, -1.0, 0.5]
    drop = [9.0, 8.5, 2.0, -0.5, 0.7]
    verified = pl.DataFrame(
        {
            **{k: [v] * 5 for k, v in _root().items()},
            "rank": [1, 2, 3, 4, 5],
            "n_tokens": [10] * 5,
            "root_clean_sum": [40.0] * 5,
            "attribution_sum": attr,
            "ablation_drop_sum": drop,
            "joint_remaining_sum": [31.0, 22.0, 20.0, 21.0, 4.0],
        }
    )
    from scipy.stats import pearsonr, spearmanr

    out = agreement(verified, top_k=5).row(0, named=True)
    assert out["spearman"] == pytest.approx(spearmanr(attr, drop).statistic)
    assert out["pearson"] == pytest.approx(pearsonr(attr, drop).statistic)
    assert out["completeness"] == pytest.approx(1 - 4.0 / 40.0)
    top3 = agreement(verified, top_k=3).row(0, named=True)
    assert top3["completeness"] == pytest.approx(0.5) and top3["n_verified"] == 3
    assert spearman(np.array([1.0, 2.0]), np.array([2.0, 1.0])) is None  # too few points


def _circuit_numbers(result) -> dict[str, np.ndarray]:
    out = {"m": np.array([result.clean_sum])}
    for key, d in result.downstream.items():
        out[f"down {key}"] = np.concatenate([d.change, d.abs_change, d.clean])
    for key, u in result.upstream.items():
        out[f"up {key}"] = np.concatenate([u.activation, u.attribution, [u.error]])
    v = result.verified
    out["verified"] = np.concatenate([v.drop, v.joint_remaining])
    out["nodes"] = np.array([(k[1], f) for k, f, _ in v.nodes], dtype=float).ravel()
    return out


def test_circuits_repeat_exactly_at_one_thread_count_and_closely_across_counts(demo, planted):
    """The same texts and SAEs give the same circuit bit for bit at a given torch thread count
    (the SLURM-vs-local comparison relies on it), and the same up to float32 reduction order
    across thread counts: torch splits the gradients' sums by thread, so a run with other
    `threads` can differ in the last digits (docs/circuits.md), never in the edges chosen."""
    model, sites, _, texts, res = demo
    keys = [("res", 0), ("res", 1), ("attn", 1), ("res", 2)]
    root = Root("res", 1, res["1"]["urls"], "urls")
    ids = texts("urls")
    before = torch.get_num_threads()
    runs = []
    try:
        for threads in (1, 1, 2):
            torch.set_num_threads(threads)
            runs.append(_circuit_numbers(root_circuit(model, sites(*keys), root, ids, verify=3)))
    finally:
        torch.set_num_threads(before)
    one, again, two = runs
    assert one.keys() == again.keys() == two.keys()
    assert np.array_equal(one["nodes"], two["nodes"])  # the same upstream features verified
    for name in one:
        assert np.array_equal(one[name], again[name]), name
        np.testing.assert_allclose(two[name], one[name], rtol=1e-4, atol=1e-5, err_msg=name)

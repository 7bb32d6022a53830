"""Causal check, unit level: ablation Δloss, feature statistics, top tokens, statistics and
steering on the demo model, each against an independent computation written out here with
TransformerLens's own ``run_with_hooks`` / ``generate`` on one unpadded text at a time."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from sae_specialists.causal.ablation import (
    Ablation,
    FeatureSite,
    ablation_effects,
    feature_stats,
    iter_batches,
)
from sae_specialists.causal.board import cell_record
from sae_specialists.causal.stats import (
    bootstrap_effect,
    cell_effect,
    cell_rng,
    draw_controls,
)
from sae_specialists.causal.steering import steer

SETTINGS_MINIMAL = {
    "model": {"name": "m"},
    "saes": {"r": {"path": "p{layer}"}},
    "layers": [0],
    "texts": "t",
}
TEXTS = [
    ("python", "def main(self): return None  # import os"),
    ("python", "class A:\n    def run(self):\n        return self.x"),
    ("python", "import sys"),
    ("formal", "The parties hereby agree, pursuant to the Agreement, that the Party shall comply."),
    ("formal", "Whereas the Board approved the resolution"),
    ("math", "x^2 + y^2 = z^2, \\frac{a}{b} = c"),
    ("math", "+"),  # BOS + one token: no loss position
]


@pytest.fixture(scope="module")
def demo(demo_assets, planted):
    from sae_lens import SAE

    from sae_specialists.extraction.models import load_local_model

    model = load_local_model(demo_assets / "model")
    sae = SAE.load_from_disk(str(demo_assets / "saes/res/layer1"))
    tok = model.tokenizer
    ids = [[tok.bos_token_id] + tok(t, add_special_tokens=False)["input_ids"] for _, t in TEXTS]
    cats = [c for c, _ in TEXTS]
    return model, sae, ids, cats, planted["layers"]["1"]


def resid_mid_sae(sae):
    """The same SAE read at another (non-residual) hook: exercises the hooked forward path."""
    from sae_lens import StandardSAE

    other = StandardSAE(sae.cfg)
    other.load_state_dict(sae.state_dict())
    other.cfg.metadata.hook_name = "blocks.1.hook_resid_mid"
    return other


def manual_delta(model, sae, ids, feature, value=None):
    """Per-text Δloss by hand: one unpadded text per forward, run_with_hooks, the feature's
    activation set to ``value`` (None: 0) at positions >= 1, loss over predictions 1..n-2."""
    hook_name = sae.cfg.metadata.hook_name
    out = []
    for seq in ids:
        tokens = torch.tensor([seq])

        def edit(act, hook):
            x = act.clone()
            a = sae.encode(x[0, 1:])[:, feature]
            target = 0.0 if value is None else value
            x[0, 1:] = x[0, 1:] + (target - a)[:, None] * sae.W_dec[feature]
            return x

        with torch.inference_mode():
            clean = model(tokens, return_type="loss", loss_per_token=True)[0]
            abl = model.run_with_hooks(
                tokens, return_type="loss", loss_per_token=True, fwd_hooks=[(hook_name, edit)]
            )[0]
        diff = (abl - clean)[1:]
        out.append(float(diff.mean()) if len(diff) else np.nan)
    return np.array(out)


@pytest.mark.parametrize(
    "norm", ["layer_norm", "expected_average_only_in", "constant_norm_rescale"]
)
def test_saes_that_normalise_their_input_at_run_time_are_refused(demo, norm):
    """With normalize_activations other than none, a feature's contribution is not
    a_f * W_dec[f]: the causal check refuses the SAE (a clear SAEError) instead of ablating the
    wrong vector; the same SAE with 'none' is accepted."""
    import dataclasses

    from sae_lens import StandardSAE

    from sae_specialists.core.errors import SAEError

    model, sae, *_ = demo
    assert FeatureSite(model, sae).hook == "blocks.1.hook_resid_pre"  # 'none': accepted
    other = StandardSAE(dataclasses.replace(sae.cfg, normalize_activations=norm))
    other.load_state_dict(sae.state_dict())
    with pytest.raises(SAEError, match=f"normalize_activations='{norm}'"):
        FeatureSite(model, other)


@pytest.mark.parametrize("hook", ["resid_pre", "resid_mid"])
def test_delta_loss_matches_run_with_hooks(demo, hook):
    model, sae, ids, cats, roles = demo
    if hook == "resid_mid":
        sae = resid_mid_sae(sae)
    site = FeatureSite(model, sae)
    assert (site.resume is not None) == (hook == "resid_pre")
    stats = feature_stats(site, iter_batches(ids, 3, model.tokenizer.pad_token_id))
    feature = roles["python"]
    mean = float(stats.mean[feature])
    assert mean > 0
    result = ablation_effects(
        site,
        ids,
        [Ablation(feature, "zero"), Ablation(feature, "mean")],
        means={feature: mean},
        batch_size=3,
        pad_id=model.tokenizer.pad_token_id,
    )
    zero = manual_delta(model, sae, ids, feature)
    mean_abl = manual_delta(model, sae, ids, feature, mean)
    np.testing.assert_allclose(result.delta[Ablation(feature, "zero")], zero, atol=2e-5)
    np.testing.assert_allclose(result.delta[Ablation(feature, "mean")], mean_abl, atol=2e-5)
    assert np.isnan(result.delta[Ablation(feature, "zero")][-1])  # BOS + 1 token
    assert result.n_positions.tolist() == [max(len(s) - 2, 0) for s in ids]
    # the ablation changes the loss: not a vacuous comparison
    assert np.nanmax(np.abs(zero)) > 1e-4


def manual_top1_changed(model, sae, ids, feature):
    """Per text, by hand: the loss positions (predictions made at 1..n-2) whose argmax next
    token differs between the clean model and the one with the feature zero-ablated at
    positions >= 1 (run_with_hooks, one unpadded text per forward)."""
    hook_name = sae.cfg.metadata.hook_name

    def edit(act, hook):
        x = act.clone()
        a = sae.encode(x[0, 1:])[:, feature]
        x[0, 1:] = x[0, 1:] - a[:, None] * sae.W_dec[feature]
        return x

    out = []
    for seq in ids:
        tokens = torch.tensor([seq])
        with torch.inference_mode():
            clean = model(tokens)[0].argmax(-1)
            ablated = model.run_with_hooks(tokens, fwd_hooks=[(hook_name, edit)])[0].argmax(-1)
        out.append(int((clean != ablated)[1 : len(seq) - 1].sum()))
    return np.array(out)


@pytest.mark.parametrize("hook", ["resid_pre", "resid_mid"])
def test_top1_changes_match_run_with_hooks(demo, planted, hook):
    """The planted causal driver (python) and pure detector (urls): per text, the number of
    loss positions whose top-1 prediction zero ablation changes, equal to a hand-written
    run_with_hooks count (mixed lengths in one padded batch, ablations stacked)."""
    model, sae, ids, cats, roles = demo
    if hook == "resid_mid":
        sae = resid_mid_sae(sae)
    site = FeatureSite(model, sae)
    driver = roles[planted["causal"]["driver"]["category"]]
    detector = roles[planted["causal"]["detector"]["category"]]
    features = [driver, detector]
    result = ablation_effects(
        site,
        ids,
        [Ablation(f, "zero") for f in features],
        batch_size=4,
        pad_id=model.tokenizer.pad_token_id,
    )
    for feature in features:
        expected = manual_top1_changed(model, sae, ids, feature)
        assert result.top1_changed[Ablation(feature, "zero")].tolist() == expected.tolist()
        assert (expected <= result.n_positions).all()
    # the driver changes predictions (not a vacuous comparison); the detector changes none
    assert result.top1_changed[Ablation(driver, "zero")].sum() > 0
    assert result.top1_changed[Ablation(detector, "zero")].sum() == 0


def test_clean_loss_matches_model_loss(demo):
    model, sae, ids, cats, roles = demo
    site = FeatureSite(model, sae)
    result = ablation_effects(site, ids, [], batch_size=4, pad_id=model.tokenizer.pad_token_id)
    for i, seq in enumerate(ids):
        with torch.inference_mode():
            loss = model(torch.tensor([seq]), return_type="loss", loss_per_token=True)[0]
        expected = float(loss[1:].mean()) if len(seq) > 2 else np.nan
        np.testing.assert_allclose(result.clean_loss[i], expected, atol=1e-5)


def test_batching_and_stacking_do_not_change_results(demo):
    model, sae, ids, cats, roles = demo
    site = FeatureSite(model, sae)
    ablations = [Ablation(roles[c], "zero") for c in ("python", "formal", "math")]
    pad = model.tokenizer.pad_token_id
    one = ablation_effects(site, ids, ablations, batch_size=1, pad_id=pad, pass_tokens=1)
    many = ablation_effects(site, ids, ablations, batch_size=7, pad_id=pad, pass_tokens=10**6)
    for a in ablations:
        np.testing.assert_allclose(one.delta[a], many.delta[a], atol=2e-5)


def test_silent_feature_changes_nothing(demo):
    model, sae, ids, cats, roles = demo
    site = FeatureSite(model, sae)
    stats = feature_stats(site, iter_batches(ids, 4, model.tokenizer.pad_token_id))
    silent = int(np.flatnonzero(stats.density == 0)[0])
    result = ablation_effects(
        site, ids, [Ablation(silent, "zero")], batch_size=4, pad_id=model.tokenizer.pad_token_id
    )
    values = result.delta[Ablation(silent, "zero")]
    assert np.all(values[np.isfinite(values)] == 0.0)


def test_feature_stats_match_dense_encoding(demo):
    model, sae, ids, cats, roles = demo
    site = FeatureSite(model, sae)
    stats = feature_stats(site, iter_batches(ids, 2, model.tokenizer.pad_token_id))
    rows = []
    with torch.inference_mode():
        for seq in ids:
            _, cache = model.run_with_cache(torch.tensor([seq]), names_filter=[site.hook])
            rows.append(sae.encode(cache[site.hook][0, 1:]))
    dense = torch.cat(rows).numpy()
    assert stats.n_tokens == dense.shape[0] == sum(len(s) - 1 for s in ids)
    np.testing.assert_allclose(stats.density, (dense > 0).mean(0), atol=1e-12)
    np.testing.assert_allclose(stats.mean, dense.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stats.max, dense.max(0), rtol=1e-5, atol=1e-5)


def test_top_tokens_are_the_largest_position_effects(demo):
    model, sae, ids, cats, roles = demo
    feature = roles["python"]
    site = FeatureSite(model, sae)
    result = ablation_effects(
        site,
        ids,
        [Ablation(feature, "zero")],
        text_categories=cats,
        top_cells={feature: ["python"]},
        batch_size=3,
        top_k=5,
        pad_id=model.tokenizer.pad_token_id,
    )
    expected = []  # (Δ, text, t) by hand, python texts only
    for i, seq in enumerate(ids):
        if cats[i] != "python":
            continue
        tokens = torch.tensor([seq])

        def edit(act, hook):
            x = act.clone()
            a = sae.encode(x[0, 1:])[:, feature]
            x[0, 1:] -= a[:, None] * sae.W_dec[feature]
            return x

        with torch.inference_mode():
            clean = model(tokens, return_type="loss", loss_per_token=True)[0]
            abl = model.run_with_hooks(
                tokens, return_type="loss", loss_per_token=True, fwd_hooks=[(site.hook, edit)]
            )[0]
        expected += [(float(abl[t] - clean[t]), i, t) for t in range(1, len(seq) - 1)]
    expected = [r for r in expected if r[0] > 0]  # loss rises only
    expected.sort(key=lambda r: (-r[0], r[1], r[2]))
    top = result.top[(feature, "python")]
    assert [(int(r[0]), int(r[1])) for r in top.rows] == [(i, t) for _, i, t in expected[:5]]
    np.testing.assert_allclose(top.delta, [d for d, _, _ in expected[:5]], atol=2e-5)


def test_draw_controls_similar_density_excludes_specialists():
    density = np.array([0.0, 0.10, 0.11, 0.5, 0.09, 0.001, 0.2, 0.0])
    rng = np.random.default_rng(0)
    picked = draw_controls(density, feature=1, exclude=[2], draws=2, rng=rng, pool=2)
    assert picked == [4, 6]  # the two nearest in log density among 3, 4, 5, 6
    again = draw_controls(density, 1, [2], 1, np.random.default_rng(0), pool=3)
    assert again == draw_controls(density, 1, [2], 1, np.random.default_rng(0), pool=3)
    assert draw_controls(np.zeros(4), 0, [], 2, rng) == []


def test_cell_rng_independent_of_other_cells():
    a = cell_rng(0, "res", 3, "python").integers(0, 1 << 30, 4)
    b = cell_rng(0, "res", 3, "python").integers(0, 1 << 30, 4)
    c = cell_rng(0, "res", 3, "math").integers(0, 1 << 30, 4)
    assert a.tolist() == b.tolist() and a.tolist() != c.tolist()


def test_bootstrap_effect_point_and_interval():
    inside = np.array([1.0, 2.0, 3.0, np.nan])
    outside = np.array([0.1, 0.2, 0.3])
    out = bootstrap_effect(inside, outside, 2000, np.random.default_rng(1))
    assert out["n_in"] == 3 and out["n_out"] == 3
    assert out["in_mean"] == pytest.approx(2.0) and out["out_mean"] == pytest.approx(0.2)
    assert out["diff"] == pytest.approx(1.8) and out["ratio"] == pytest.approx(10.0)
    assert out["diff_low"] <= out["diff"] <= out["diff_high"]
    assert 1.0 - 0.3 <= out["diff_low"] and out["diff_high"] <= 3.0 - 0.1
    assert 1.0 / 0.3 <= out["ratio_low"] <= out["ratio"] <= out["ratio_high"] <= 3.0 / 0.1
    zero_out = bootstrap_effect(inside, np.zeros(3), 100, np.random.default_rng(1))
    assert zero_out["ratio"] is None and zero_out["ratio_low"] is None


def test_cell_effect_verdicts():
    in_cat = np.array([True] * 5 + [False] * 5)
    driver = np.array([1.0, 1.2, 0.9, 1.1, 1.0, 0.0, 0.01, 0.0, 0.02, 0.0])
    detector = np.zeros(10)
    control = np.array([0.0, 0.01, 0.0, 0.02, 0.0] * 2)
    rng = np.random.default_rng(0)
    d = cell_effect(driver, control, in_cat, 500, rng)
    assert d["verdict"] == "specific" and not d["detector_only"] and d["above_control"]
    assert d["control_in_mean"] == pytest.approx(0.006)
    det = cell_effect(detector, control, in_cat, 500, rng)
    assert det["detector_only"] and det["verdict"] == "detector only"
    flat = cell_effect(np.full(10, 1.0), control, in_cat, 500, rng)
    assert flat["verdict"] == "unspecific"
    # no control feature: a clear effect is neither "needed" nor "detector only"
    alone = cell_effect(driver, None, in_cat, 500, rng)
    assert alone["verdict"] == "no control" and alone["control_in_mean"] is None
    assert alone["detector_only"] is None and alone["above_control"] is None
    assert alone["above_zero"]
    record = cell_record({"sae": "res", "layer": 1, "category": "c", "feature": 3, **alone})
    assert record["ok"] is None and record["verdict"] == "no_control"
    assert record["label"] == "no control"
    # ... while a feature of no effect is a detector only, control or not
    still = cell_effect(detector, None, in_cat, 500, rng)
    assert still["detector_only"] and still["verdict"] == "detector only"
    assert (
        cell_record({"sae": "res", "layer": 1, "category": "c", "feature": 3, **still})["ok"]
        is False
    )
    # a harmless feature is not made "needed" by a control whose removal helps the model
    helpful_control = np.array([-0.05, -0.06, -0.04, -0.05, -0.05] + [0.0] * 5)
    noise = np.array([1e-9, -2e-9, 2e-9, -1e-9, 0.0] * 2)  # float noise around 0
    harmless = cell_effect(noise, helpful_control, in_cat, 500, rng)
    assert harmless["above_control"] and not harmless["above_zero"]
    assert harmless["verdict"] == "detector only"


def test_rounding_noise_does_not_make_a_detector_matter():
    """A pure detector whose per-text Δloss is float rounding (1e-9, all positive here, so
    every bootstrap lower bound is > 0): with the bare "> 0" rule (min_effect 0) it would
    "matter"; with causal.min_effect (its schema default, in nats) it stays "detector only",
    while a real effect of 0.01 nats still counts."""
    from sae_specialists.core.settings import load_settings, schema_path

    min_effect = load_settings(dict(SETTINGS_MINIMAL), schema_path()).causal.min_effect
    assert min_effect == 0.001
    in_cat = np.array([True] * 5 + [False] * 5)
    noise = np.array([2e-9, 1e-9, 3e-9, 2e-9, 1e-9] + [0.0] * 5)
    control = np.array([0.0, -1e-10, 0.0, 0.0, -1e-10] * 2)
    bare = cell_effect(noise, control, in_cat, 500, np.random.default_rng(0), min_effect=0.0)
    assert bare["above_zero"] and bare["above_control"] and not bare["detector_only"]
    det = cell_effect(noise, control, in_cat, 500, np.random.default_rng(0), min_effect=min_effect)
    assert det["in_low"] > 0 and det["vs_control_low"] > 0  # the intervals alone would pass
    assert not det["above_zero"] and not det["above_control"]
    assert det["detector_only"] and det["verdict"] == "detector only"
    real = cell_effect(
        noise + 0.01 * in_cat, control, in_cat, 500, np.random.default_rng(0), min_effect=min_effect
    )
    assert real["above_zero"] and real["above_control"] and real["verdict"] == "specific"


def test_layer_effects_apply_min_effect():
    import polars as pl

    from sae_specialists.causal.effects import layer_effects

    texts = [(f"t{i}", "a" if i < 5 else "b") for i in range(10)]
    rows = [
        (feature, role, "zero", t, c, (0.004 if feature == 7 and c == "a" else 0.0))
        for feature, role in ((7, "specialist"), (9, "control"))
        for t, c in texts
    ]
    per_text = pl.DataFrame(
        rows, schema=["feature", "role", "mode", "text_id", "category", "delta_loss"], orient="row"
    ).with_columns(
        pl.lit("res").alias("sae"),
        pl.lit(2).cast(pl.Int64).alias("layer"),
        pl.lit(4).cast(pl.Int64).alias("n_positions"),
        pl.lit(0).cast(pl.Int64).alias("top1_changed"),
    )
    cells = pl.DataFrame(
        {"sae": ["res"], "layer": [2], "category": ["a"], "feature": [7], "controls": [[9]]}
    )
    below = layer_effects(cells, per_text, 200, 0, 0.95, min_effect=0.005).row(0, named=True)
    above = layer_effects(cells, per_text, 200, 0, 0.95, min_effect=0.001).row(0, named=True)
    assert below["in_mean"] == pytest.approx(0.004) == above["in_mean"]
    assert below["verdict"] == "detector only" and above["verdict"] == "specific"


def greedy_by_hand(model, sae, hook_name, prompt, clamp, n):
    """Greedy continuation of one unpadded prompt, no KV cache, the clamp written out."""
    seq = list(prompt)
    for _ in range(n):

        def edit(act, hook, c=clamp):
            if c is None:
                return act
            feature, value = c
            x = act.clone()
            a = sae.encode(x[0, 1:])[:, feature]
            x[0, 1:] += (value - a)[:, None] * sae.W_dec[feature]
            return x

        with torch.inference_mode():
            logits = model.run_with_hooks(torch.tensor([seq]), fwd_hooks=[(hook_name, edit)])
        seq.append(int(logits[0, -1].argmax()))
    return seq[len(prompt) :]


def test_steering_matches_a_hand_written_greedy_loop(demo):
    """Prompts of different lengths in one left-padded generate call, each row against its
    prompt alone, by hand."""
    model, sae, ids, cats, roles = demo
    site = FeatureSite(model, sae)
    formal, python = roles["formal"], roles["python"]
    prompts = [ids[4], ids[2]]
    assert len(prompts[0]) != len(prompts[1])
    clamps = [None, (formal, 0.0), (formal, 300.0), (python, 300.0)]
    out = steer(site, prompts, clamps, 6)
    for prompt, rows in zip(prompts, out, strict=True):
        for row, clamp in zip(rows, clamps, strict=True):
            assert row == greedy_by_hand(model, sae, site.hook, prompt, clamp, 6)
        assert rows[0] != rows[2] and rows[2] != rows[3]  # each clamp changes the continuation


def test_effects_table_reproduced_independently():
    """layer_effects' numbers from the per-text table, recomputed here with numpy alone
    (documented seeding: one generator per cell and mode)."""
    import polars as pl

    from sae_specialists.causal.effects import layer_effects

    rng = np.random.default_rng(5)
    texts = [(f"t{i}", "a" if i < 6 else "b") for i in range(15)]
    rows = []
    for feature, role in ((7, "specialist"), (9, "control"), (11, "control")):
        for mode in ("zero", "mean"):
            for text_id, category in texts:
                value = rng.normal(0.5 if (feature == 7 and category == "a") else 0.05, 0.1)
                rows.append((feature, role, mode, text_id, category, value))
    rows[3] = (*rows[3][:5], None)  # a text without loss position
    n_positions = rng.integers(3, 40, len(rows))
    n_positions[3] = 0
    changed = rng.integers(0, n_positions + 1)
    per_text = pl.DataFrame(
        rows, schema=["feature", "role", "mode", "text_id", "category", "delta_loss"], orient="row"
    ).with_columns(
        pl.lit("res").alias("sae"),
        pl.lit(2).cast(pl.Int64).alias("layer"),
        pl.Series("n_positions", n_positions, dtype=pl.Int64),
        pl.Series("top1_changed", changed, dtype=pl.Int64),
    )
    cells = pl.DataFrame(
        {"sae": ["res"], "layer": [2], "category": ["a"], "feature": [7], "controls": [[9, 11]]}
    )
    effects = layer_effects(cells, per_text, 300, 4, 0.9, min_effect=0.0)
    assert effects["mode"].to_list() == ["mean", "zero"]
    for row in effects.iter_rows(named=True):

        def values(f, mode=row["mode"]):
            sub = per_text.filter((pl.col("feature") == f) & (pl.col("mode") == mode))
            return np.array([np.nan if v is None else v for v in sub["delta_loss"]])

        inside = np.array([c == "a" for _, c in texts])
        spec = values(7)
        ctrl = (values(9) + values(11)) / 2
        gen = cell_rng(4, "res", 2, "a", f"bootstrap {row['mode']}")
        a, b = spec[inside & np.isfinite(spec)], spec[~inside & np.isfinite(spec)]
        assert row["n_in"] == len(a) == (5 if row["mode"] == "zero" else 6)
        assert row["n_out"] == len(b) == 9
        assert row["in_mean"] == pytest.approx(a.mean()) and row["out_mean"] == pytest.approx(
            b.mean()
        )
        boot_a = a[gen.integers(0, len(a), (300, len(a)))].mean(1)
        boot_b = b[gen.integers(0, len(b), (300, len(b)))].mean(1)
        assert (row["in_low"], row["in_high"]) == pytest.approx(
            tuple(np.percentile(boot_a, [5, 95]))
        )
        low, high = np.percentile(boot_a - boot_b, [5, 95])
        assert (row["diff_low"], row["diff_high"]) == pytest.approx((low, high))
        ok = boot_b > 0
        low, high = np.percentile(boot_a[ok] / boot_b[ok], [5, 95])
        assert (row["ratio_low"], row["ratio_high"]) == pytest.approx((low, high))
        ca, cb = ctrl[inside & np.isfinite(ctrl)], ctrl[~inside & np.isfinite(ctrl)]
        assert row["control_in_mean"] == pytest.approx(ca.mean())
        gen.integers(0, len(ca), (300, len(ca)))  # the control's own intervals
        gen.integers(0, len(cb), (300, len(cb)))
        paired = (spec - ctrl)[inside]
        paired = paired[np.isfinite(paired)]
        boot = paired[gen.integers(0, len(paired), (300, len(paired)))].mean(1)
        low, high = np.percentile(boot, [5, 95])
        assert row["vs_control"] == pytest.approx(paired.mean())
        assert (row["vs_control_low"], row["vs_control_high"]) == pytest.approx((low, high))
        assert row["detector_only"] == (not (low > 0 and row["in_low"] > 0))
        # top-1 changes: summed over the category's texts of the specialist and this mode
        mine = [i for i, r in enumerate(rows) if r[0] == 7 and r[2] == row["mode"] and r[4] == "a"]
        assert row["top1_positions"] == int(n_positions[mine].sum())
        assert row["top1_changed_share"] == changed[mine].sum() / n_positions[mine].sum()
        # the controls' share: pooled over both controls, the same texts and mode
        ctrl = [i for i, r in enumerate(rows) if r[0] in (9, 11) and r[2] == row["mode"]]
        ctrl = [i for i in ctrl if rows[i][4] == "a"]
        assert len(ctrl) == 12
        share = changed[ctrl].sum() / n_positions[ctrl].sum()
        assert row["control_top1_changed_share"] == share
    zero = effects.filter(pl.col("mode") == "zero").row(0, named=True)
    assert zero["verdict"] == "specific" and zero["controls"] == "9 11"


def test_specialist_sets_and_texts_from_shards(tmp_path):
    import polars as pl
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sae_specialists.causal.entry import read_texts, specialist_sets
    from sae_specialists.core.contract import TOKENS_SCHEMA

    spec = pl.DataFrame(
        {
            "sae": ["res", "res", "res", "other"],
            "layer": [1, 1, 3, 1],
            "category": ["math", "code", "math", "math"],
            "feature": [5, 9, None, 2],
            "has_specialist": [True, True, False, True],
        }
    )
    sets = specialist_sets(spec, [["res", 1], ["res", 3]])
    assert sets == {"res/1": [["code", 9], ["math", 5]], "res/3": []}
    assert specialist_sets(spec, [["res", 1], ["other", 1]], families=["other"]) == {
        "res/1": [],
        "other/1": [["math", 2]],
    }
    # two texts, rows of the second one stored out of position order
    rows = {
        "text_id": ["b", "b", "b", "a", "a"],
        "category": ["x", "x", "x", "y", "y"],
        "token_pos": [0, 2, 1, 0, 1],
        "token_id": [0, 12, 11, 0, 21],
    }
    filler = {pa.string(): "", pa.binary(): b"", pa.bool_(): False}  # columns not read
    table = pa.table(
        {f.name: rows.get(f.name, [filler.get(f.type)] * 5) for f in TOKENS_SCHEMA},
        schema=TOKENS_SCHEMA,
    )
    pq.write_table(table, tmp_path / "tokens.parquet")
    texts = read_texts([tmp_path / "tokens.parquet"])
    assert [(t.text_id, t.category, t.ids) for t in texts] == [
        ("b", "x", (0, 11, 12)),
        ("a", "y", (0, 21)),
    ]


def word_level_tokenizer(size: int):
    """A real word-level tokenizer (tokenizers WordLevel, whitespace split, no decoder) over
    ``size`` words ``w0`` ... : its decode puts a space between words."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"w{i}": i for i in range(size)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, **dict.fromkeys(("bos_token", "pad_token", "unk_token"), "w0")
    )


def test_steering_continuations_are_decoded_by_the_tokenizer(demo_assets, planted):
    """With a word-level tokenizer the continuation is its words separated by spaces (the
    tokenizer's decode), not their strings run together ("w3w7..."), and its token ids are a
    list of ints."""
    from sae_lens import SAE

    from sae_specialists.causal.run import Cell, LayerOptions, TextTokens, run_layer
    from sae_specialists.core.tokens import Decoder
    from sae_specialists.extraction.models import load_local_model

    model = load_local_model(demo_assets / "model")
    sae = SAE.load_from_disk(str(demo_assets / "saes/res/layer1"))
    tok = model.tokenizer
    ids = [[tok.bos_token_id] + tok(t, add_special_tokens=False)["input_ids"] for _, t in TEXTS]
    model.tokenizer = word_level_tokenizer(model.cfg.d_vocab)
    texts = [
        TextTokens(f"t{i}", c, tuple(s))
        for i, ((c, _), s) in enumerate(zip(TEXTS, ids, strict=True))
    ]
    python = planted["layers"]["1"]["python"]
    options = LayerOptions(
        steer_scales=(5.0,), prompts=("p",), steer_tokens=6, top_tokens=2, modes=("zero",)
    )
    result = run_layer(
        FeatureSite(model, sae),
        "res",
        1,
        texts,
        [Cell("python", python)],
        options,
        decode=Decoder(model.tokenizer),
        prompt_ids=[ids[2]],
    )
    steering = result.steering
    assert steering.schema["token_ids"] == pl.List(pl.Int64)
    assert steering.height == 2  # unsteered + one scale
    for row in steering.iter_rows(named=True):
        assert len(row["token_ids"]) == 6
        assert row["continuation"] == " ".join(f"w{t}" for t in row["token_ids"])

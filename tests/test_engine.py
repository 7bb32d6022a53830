"""The extraction engine's fast paths against SAELens and TransformerLens computed directly:
fused sparse encoders, fused module swaps, the resid_pre -> resid_post capture, windows."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch
from conftest import resource_texts

import sae_specialists.extraction.engine as engine
from sae_specialists.extraction.encode import Encoder
from sae_specialists.extraction.engine import extract
from sae_specialists.extraction.hooks import _gelu_tanh, capture_hooks, fast_modules, stop_layer
from sae_specialists.extraction.models import load_local_model
from sae_specialists.extraction.saes import LoadedSAE
from sae_specialists.extraction.texts import Text
from sae_specialists.extraction.tokenize import tokenize_texts, tokenized_windows


def make_sae(
    kind: str, d_in: int = 64, d_sae: int = 96, hook: str = "blocks.1.hook_resid_pre", seed: int = 0
) -> LoadedSAE:
    from sae_lens import (
        JumpReLUSAE,
        JumpReLUSAEConfig,
        StandardSAE,
        StandardSAEConfig,
        TopKSAE,
        TopKSAEConfig,
    )

    torch.manual_seed(seed)
    extra = {"reshape_activations": "hook_z"} if hook.endswith("hook_z") else {}
    if kind.startswith("standard"):
        cfg = StandardSAEConfig(
            d_in=d_in, d_sae=d_sae, apply_b_dec_to_input=kind != "standard_no_bdec", **extra
        )
        cls = StandardSAE
    elif kind == "jumprelu":
        cfg, cls = JumpReLUSAEConfig(d_in=d_in, d_sae=d_sae, **extra), JumpReLUSAE
    else:
        cfg, cls = TopKSAEConfig(d_in=d_in, d_sae=d_sae, k=8, **extra), TopKSAE
    cfg.metadata.hook_name = hook
    sae = cls(cfg)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(d_in, d_sae) / d_in**0.5)
        sae.b_enc.copy_(torch.randn(d_sae) * 0.3 - 0.4)
        sae.b_dec.copy_(torch.randn(d_in) * 0.2)
        if kind == "jumprelu":
            sae.threshold.copy_(torch.rand(d_sae) * 0.5 - 0.1)  # some negative: clamped to 0
    sae.eval()
    return LoadedSAE("f", 1, sae, hook, {"path": "x"}, None)


@pytest.mark.parametrize("kind", ["standard", "standard_no_bdec", "jumprelu", "topk"])
def test_sparse_encoder_equals_sae_encode(kind):
    s = make_sae(kind)
    x = torch.randn(300, 64) * 2
    enc = Encoder(s, {})
    assert enc.fast == (kind != "topk")  # TopK takes sae.encode
    with torch.inference_mode():
        rows, feats, values = enc(x)
        dense = s.sae.encode(x)
    assert values.dtype == torch.float32 and (values > 0).all()
    got = torch.zeros_like(dense)
    got[rows, feats] = values
    torch.testing.assert_close(got, dense, atol=1e-5, rtol=1e-5)
    positive = set(map(tuple, (dense > 0).nonzero().tolist()))
    assert set(zip(rows.tolist(), feats.tolist(), strict=True)) == positive


@pytest.fixture(scope="module")
def model(demo_assets):
    return load_local_model(demo_assets / "model")


def test_fast_modules_compute_the_same_and_are_restored(model):
    hooks = [f"blocks.{layer}.hook_resid_pre" for layer in (1, 2, 3)]
    captured = sorted(set(capture_hooks(model, hooks).values()))
    assert captured == [
        "blocks.0.hook_resid_post",
        "blocks.1.hook_resid_post",
        "blocks.2.hook_resid_post",
    ]
    assert stop_layer(model, captured) == 3  # block 3 never runs for resid_pre of layer 3
    tokens = torch.randint(1, model.cfg.d_vocab, (3, 30))
    mask = torch.ones_like(tokens)
    mask[1, 20:] = 0
    mask[2, 5:] = 0
    real = mask.bool()
    with torch.inference_mode():
        _, ref = model.run_with_cache(tokens, attention_mask=mask, names_filter=hooks)
        with fast_modules(model, captured):
            patched = [n for n, m in model.named_modules() if "forward" in vars(m)]
            swapped = [
                n for n, m in model.named_modules() if getattr(m, "act_fn", None) is _gelu_tanh
            ]
            _, got = model.run_with_cache(
                tokens, attention_mask=mask, names_filter=captured, stop_at_layer=3
            )
    assert any(n.endswith("attn") for n in patched) and any("ln" in n for n in patched)
    assert len(swapped) == model.cfg.n_layers
    for hook, cap in capture_hooks(model, hooks).items():
        torch.testing.assert_close(got[cap][real], ref[hook][real], atol=1e-5, rtol=1e-5)
    assert not [n for n, m in model.named_modules() if "forward" in vars(m)]
    assert not any(getattr(m, "act_fn", None) is _gelu_tanh for m in model.modules())


def test_a_module_whose_hook_is_read_keeps_its_code(model, demo_assets):
    """An SAE on blocks.1.attn.hook_z: that attention keeps TransformerLens's forward."""
    s = make_sae("standard", d_in=model.cfg.n_heads * model.cfg.d_head, hook="blocks.1.attn.hook_z")
    texts = [
        Text(f"t-{i}", "x", t)
        for i, t in enumerate(resource_texts(("python", "social"), n=3)["python"])
    ]
    with fast_modules(model, ["blocks.1.attn.hook_z"]):
        patched = {n for n, m in model.named_modules() if "forward" in vars(m)}
    assert "blocks.1.attn" not in patched and "blocks.0.attn" in patched
    _, tables = extract(model, [s], tokenize_texts(model, texts), batch_size=2)
    stored = pl.from_arrow(tables[("f", 1)])
    for text in texts:
        _, cache = model.run_with_cache(model.to_tokens(text.text))
        dense = s.sae.encode(cache["blocks.1.attn.hook_z"][0]).detach().numpy()
        got = np.zeros_like(dense)
        rows = stored.filter(pl.col("text_id") == text.text_id)
        got[rows["token_pos"].to_numpy(), rows["feature"].to_numpy()] = rows["activation"]
        np.testing.assert_allclose(got, dense, atol=1e-5, rtol=1e-5)


def test_windows_do_not_change_results(model, demo_assets, monkeypatch):
    from sae_specialists.extraction.saes import load_sae

    saes = [load_sae("res", 3, {"path": str(demo_assets / "saes/res/layer3")})]
    items = resource_texts(("python", "math", "urls"), n=5)
    texts = [Text(f"{c}-{i}", c, t) for c, ts in items.items() for i, t in enumerate(ts)]
    tokenized = tokenize_texts(model, texts)
    tokens, tables = extract(model, saes, tokenized, batch_size=4)
    monkeypatch.setattr(engine, "WINDOW_TOKENS", 40)  # many small windows
    windows = list(tokenized_windows(model, texts, window_tokens=40))
    assert [t.text for w in windows for t in w] == texts
    assert all(sum(len(t.ids) for t in w) >= 40 for w in windows[:-1]) and len(windows) > 3
    tokens_small, tables_small = extract(model, saes, tokenized, batch_size=3)
    assert tokens_small.equals(tokens)
    a, b = pl.from_arrow(tables[("res", 3)]), pl.from_arrow(tables_small[("res", 3)])
    assert a.select("text_id", "token_pos", "feature").equals(
        b.select("text_id", "token_pos", "feature")
    )
    order = a.with_row_index().group_by("text_id").agg(pl.col("index").min()).sort("index")
    assert order["text_id"].to_list() == [t.text_id for t in texts]  # file order


def test_a_bfloat16_run_matches_the_float32_one(demo_assets, planted):
    """`dtype: bfloat16`: the job's loader (ModelAndSAEs.load) puts the model and the SAEs in
    bfloat16; the shards still store float32 activations, and they are the float32 run's up to
    bfloat16 rounding (8-bit mantissa, a few layers deep): the same (position, feature) pairs
    except near zero, each activation within 3% of the SAE's largest, the planted python
    specialist's per-text sums (the numerators of the
    study's means) within 3%."""
    from sae_specialists.extraction.loading import ModelAndSAEs

    items = resource_texts(("python", "math", "urls"), n=3)
    texts = [Text(f"{c}-{i}", c, t) for c, ts in items.items() for i, t in enumerate(ts)]
    saes = {
        ("res", 1): {"path": str(demo_assets / "saes/res/layer1")},
        ("attn", 0): {"path": str(demo_assets / "saes/attn/layer0")},
    }
    runs = {}
    for dtype in ("float32", "bfloat16"):
        model, loaded, _ = ModelAndSAEs(
            {"path": str(demo_assets / "model")}, saes, "cpu", dtype
        ).load()
        assert next(model.parameters()).dtype == getattr(torch, dtype)
        assert {s.sae.W_dec.dtype for s in loaded} == {getattr(torch, dtype)}
        _, tables = extract(model, loaded, tokenize_texts(model, texts), batch_size=4)
        runs[dtype] = {key: pl.from_arrow(table) for key, table in tables.items()}
    for key in saes:
        full, half = runs["float32"][key], runs["bfloat16"][key]
        assert half.schema["activation"] == pl.Float32
        top = float(full["activation"].max())
        joined = full.join(half, on=["text_id", "token_pos", "feature"], how="full", coalesce=True)
        one_sided = joined.filter(
            pl.col("activation").is_null() | pl.col("activation_right").is_null()
        )
        assert one_sided.height < 0.05 * full.height, key
        assert (
            one_sided.select(pl.max_horizontal("activation", "activation_right")).max().item()
            < 0.05 * top
        )
        both = joined.drop_nulls()
        assert (both["activation"] - both["activation_right"]).abs().max() < 0.03 * top, key
    python = planted["layers"]["1"]["python"]

    def python_sums(table):
        return (
            table.filter(pl.col("feature") == python, pl.col("token_pos") > 0)
            .group_by("text_id")
            .agg(pl.col("activation").sum())
            .sort("text_id")
        )

    full, half = (python_sums(runs[d][("res", 1)]) for d in ("float32", "bfloat16"))
    assert full["text_id"].to_list() == half["text_id"].to_list()
    assert len(full) >= 3  # the python texts at least
    np.testing.assert_allclose(half["activation"], full["activation"], rtol=0.03)

"""Extraction against an independent computation: model.run_with_cache + sae.encode per text."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from conftest import resource_texts

from sae_specialists.extraction.engine import extract
from sae_specialists.extraction.hooks import stop_layer
from sae_specialists.extraction.models import load_local_model
from sae_specialists.extraction.saes import load_sae
from sae_specialists.extraction.texts import Text
from sae_specialists.extraction.tokenize import tokenize_texts


@pytest.fixture(scope="module")
def model(demo_assets):
    return load_local_model(demo_assets / "model")


@pytest.fixture(scope="module")
def saes(demo_assets):
    return [
        load_sae("res", layer, {"path": str(demo_assets / f"saes/res/layer{layer}")})
        for layer in (1, 3)
    ]


@pytest.fixture(scope="module")
def texts():
    items = resource_texts(("python", "social", "non_english"), n=4)
    return [Text(f"{c}-{i}", c, t) for c, ts in items.items() for i, t in enumerate(ts)]


@pytest.fixture(scope="module")
def extracted(model, saes, texts):
    return extract(model, saes, tokenize_texts(model, texts), batch_size=8)


def test_every_activation_equals_direct_encode_of_run_with_cache(model, saes, texts, extracted):
    tokens, tables = extracted
    tokens = pl.from_arrow(tokens)
    for s in saes:
        stored = pl.from_arrow(tables[(s.family, s.layer)])
        for text in texts:
            ids = model.to_tokens(text.text, prepend_bos=True)  # TransformerLens's own BOS
            _, cache = model.run_with_cache(ids)
            dense = s.sae.encode(cache[s.hook_name][0]).detach().numpy()
            got = np.zeros_like(dense)
            rows = stored.filter(pl.col("text_id") == text.text_id)
            got[rows["token_pos"].to_numpy(), rows["feature"].to_numpy()] = rows["activation"]
            np.testing.assert_allclose(got, dense, atol=1e-5, rtol=1e-5)
            assert (rows["activation"] > 0).all()
            n_positions = tokens.filter(pl.col("text_id") == text.text_id).height
            assert n_positions == ids.shape[1]


def test_bos_flagged_and_no_padding_stored(model, texts, extracted):
    tokens = pl.from_arrow(extracted[0])
    first = tokens.group_by("text_id").agg(pl.col("bos").first(), pl.col("bos").sum().alias("n"))
    assert first["bos"].all() and (first["n"] == 1).all()
    assert (tokens.filter(pl.col("bos"))["token_id"] == model.tokenizer.bos_token_id).all()
    lengths = tokens.group_by("text_id").agg(pl.len(), pl.col("token_pos").max())
    assert (lengths["len"] == lengths["token_pos"] + 1).all()
    for table in extracted[1].values():
        acts = pl.from_arrow(table).join(lengths, on="text_id")
        assert (acts["token_pos"] < acts["len"]).all()  # never a padded position


def test_batch_size_does_not_change_shards(model, saes, texts, extracted):
    """Batch size 1 vs 8: same rows (text, position, feature); values equal to float32 BLAS
    rounding (kernels block differently for different batch shapes; docs/data-contract.md,
    'Determinism')."""
    tokens1, tables1 = extract(model, saes, tokenize_texts(model, texts), batch_size=1)
    assert tokens1.equals(extracted[0])
    for key, table in extracted[1].items():
        a, b = pl.from_arrow(tables1[key]), pl.from_arrow(table)
        assert a.select("text_id", "token_pos", "feature").equals(
            b.select("text_id", "token_pos", "feature")
        )
        np.testing.assert_allclose(a["activation"], b["activation"], rtol=1e-5, atol=1e-5)


def test_forward_stops_after_deepest_hook(model, saes):
    assert stop_layer(model, [s.hook_name for s in saes]) == 4
    assert stop_layer(model, ["blocks.1.hook_resid_pre"]) == 2
    assert stop_layer(model, ["ln_final.hook_normalized"]) is None


def test_planted_specialists_fire_on_their_markers(model, saes, texts, extracted, planted):
    tokens = pl.from_arrow(extracted[0])
    layer3 = next(s for s in saes if s.layer == 3)
    acts = pl.from_arrow(extracted[1][("res", 3)])
    python_feature = planted["layers"]["3"]["python"]
    fired = acts.filter(pl.col("feature") == python_feature).join(
        tokens, on=["text_id", "token_pos"]
    )
    assert set(fired["category"]) == {"python"}
    assert {" def", " return"} <= set(fired["token"])
    bos_feature = planted["layers"]["3"]["bos"]
    bos_rows = acts.filter(pl.col("feature") == bos_feature)
    assert (bos_rows["token_pos"] == 0).all() and bos_rows.height == len(texts)
    assert layer3.hook_name == "blocks.3.hook_resid_pre"


def test_long_texts_are_truncated_with_a_warning_or_rejected(model, caplog):
    long = Text("long-1", "x", "word " * 600)
    with caplog.at_level("WARNING"):
        (tok,) = tokenize_texts(model, [long], max_tokens=None, long_texts="truncate")
    assert len(tok.ids) == model.cfg.n_ctx and "long-1" in caplog.text
    from sae_specialists.core.errors import TextsError

    with pytest.raises(TextsError, match="long-1"):
        tokenize_texts(model, [long], max_tokens=64, long_texts="error")

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


def _tokenizer_dir(demo_assets, tmp_path, kind: str):
    """The demo model with another tokenizer: byte-level BPE with a BOS token, the same without
    one (TransformerLens fills BOS in from EOS), and one trained with add_bos_token set."""
    import shutil

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    path = tmp_path / kind
    shutil.copytree(demo_assets / "model", path)
    if kind == "demo":
        return path
    for old in path.glob("tokenizer*"):
        old.unlink()
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=120,  # within the demo model's vocabulary
        special_tokens=["<|endoftext|>", "<s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(["def f(x): return x + 1", "le café est prêt 🙂"] * 10, trainer)
    special = {
        "bpe_bos": {"bos_token": "<s>", "eos_token": "<|endoftext|>"},
        "bpe_no_bos": {"eos_token": "<|endoftext|>"},
    }[kind]
    PreTrainedTokenizerFast(tokenizer_object=tok, **special).save_pretrained(path)
    return path


@pytest.mark.parametrize("kind", ["demo", "bpe_bos", "bpe_no_bos"])
def test_the_tokens_job_without_transformer_lens_writes_the_shard_transformer_lens_would(
    demo_assets, tmp_path, texts, kind
):
    """extract_tokens of a local model reads its tokenizer alone (load_local_tokenizer): the
    token table must equal the one from TransformerLens's model.tokenizer, byte for byte."""
    from sae_specialists.extraction.engine import tokens_table
    from sae_specialists.extraction.models import load_local_tokenizer

    path = _tokenizer_dir(demo_assets, tmp_path, kind)
    with_tl = load_local_model(path)
    alone = load_local_tokenizer(path)
    assert alone.cfg.n_ctx == with_tl.cfg.n_ctx
    assert alone.tokenizer.bos_token_id == with_tl.tokenizer.bos_token_id is not None
    odd = [
        Text("odd-0", "odd", " \t leading space\n\nand\r\nnewlines  "),
        Text("odd-1", "odd", "x"),
    ]
    for sample in (texts, odd, [Text("long", "odd", "word " * 200)]):
        left = tokens_table(with_tl, tokenize_texts(with_tl, sample, max_tokens=64))
        right = tokens_table(alone, tokenize_texts(alone, sample, max_tokens=64))
        assert left.equals(right), kind

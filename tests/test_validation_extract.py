"""Pooled-residual shards (validation baselines): the extraction engine's per-text means of each
SAE's input against TransformerLens run text by text, and the reader's BOS handling."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch
from conftest import resource_texts

from sae_specialists.extraction.engine import Extractor
from sae_specialists.extraction.models import load_local_model
from sae_specialists.extraction.saes import LoadedSAE
from sae_specialists.extraction.texts import Text
from sae_specialists.extraction.tokenize import tokenize_texts


def _sae(d_in: int, hook: str, family: str, layer: int) -> LoadedSAE:
    from sae_lens import StandardSAE, StandardSAEConfig

    cfg = StandardSAEConfig(
        d_in=d_in, d_sae=32, **({"reshape_activations": "hook_z"} if hook.endswith("z") else {})
    )
    cfg.metadata.hook_name = hook
    torch.manual_seed(layer)
    sae = StandardSAE(cfg)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(d_in, 32) / d_in**0.5)
    return LoadedSAE(family, layer, sae.eval(), hook, {"path": "x"}, None)


@pytest.fixture(scope="module")
def model(demo_assets):
    return load_local_model(demo_assets / "model")


def test_pooled_means_equal_run_with_cache_text_by_text(model, tmp_path):
    d = model.cfg.d_model
    saes = [
        _sae(d, "blocks.2.hook_resid_pre", "res", 2),
        _sae(d, "blocks.2.hook_resid_pre", "other", 2),  # same hook: same vectors
        _sae(model.cfg.n_heads * model.cfg.d_head, "blocks.1.attn.hook_z", "z", 1),
    ]
    raw = resource_texts(("python", "social"), n=4)
    texts = [Text(f"{c}-{i}", c, t) for c, items in raw.items() for i, t in enumerate(items)]
    tokenized = tokenize_texts(model, texts)
    engine = Extractor(model, saes, batch_size=3)  # several batches, padded
    result = engine.run(tokenized)
    res = pl.from_arrow(result.pooled[("res", 2)])
    assert res.equals(pl.from_arrow(result.pooled[("other", 2)]))
    z = pl.from_arrow(result.pooled[("z", 1)])
    assert res["text_id"].to_list() == [t.text_id for t in texts]
    for i, tok in enumerate(tokenized):
        ids = torch.tensor([tok.ids])
        with torch.inference_mode():
            _, cache = model.run_with_cache(
                ids, names_filter=["blocks.2.hook_resid_pre", "blocks.1.attn.hook_z"]
            )
        resid = cache["blocks.2.hook_resid_pre"][0].double().numpy()
        hz = cache["blocks.1.attn.hook_z"][0].reshape(len(tok.ids), -1).double().numpy()
        assert res["n_counted"][i] == len(tok.ids) - 1
        np.testing.assert_allclose(
            res["resid_mean"][i].to_numpy(), resid[1:].mean(axis=0), rtol=1e-4, atol=1e-4
        )
        np.testing.assert_allclose(res["resid_bos"][i].to_numpy(), resid[0], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(
            z["resid_mean"][i].to_numpy(), hz[1:].mean(axis=0), rtol=1e-4, atol=1e-4
        )


def test_read_pooled_orders_texts_and_counts_bos_when_asked(tmp_path):
    import pyarrow as pa

    from sae_specialists.core.contract import POOLED_SCHEMA
    from sae_specialists.core.errors import ShardError
    from sae_specialists.core.io import write_table_atomic
    from sae_specialists.validation.residuals import read_pooled

    table = pa.table(
        {
            "text_id": ["b", "a"],
            "category": ["x", "x"],
            "n_counted": pa.array([3, 1], pa.int32()),
            "resid_mean": pa.array([[1.0, 2.0], [4.0, 0.0]], pa.list_(pa.float32())),
            "resid_bos": pa.array([[5.0, 6.0], None], pa.list_(pa.float32())),
        },
        schema=POOLED_SCHEMA,
    )
    path = tmp_path / "pooled.parquet"
    write_table_atomic(table, path)
    np.testing.assert_array_equal(read_pooled([path], ["a", "b"], False), [[4, 0], [1, 2]])
    # BOS counted: b = (3 * (1, 2) + (5, 6)) / 4; a has no BOS vector
    np.testing.assert_array_equal(read_pooled([path], ["a", "b"], True), [[4, 0], [2, 3]])
    with pytest.raises(ShardError, match="no row for 1 text"):
        read_pooled([path], ["a", "b", "c"], False)

"""The documented configurations under config/examples/ pass the startup checks offline: every
SAELens release and id exists in the registry shipped with sae_lens, each release was trained on
the configured model, and every family's layers and SAE hooks exist in that model."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from sae_specialists.core.errors import ConfigError, SAEError
from sae_specialists.startup import (
    HUB_MODEL_SHAPES,
    hub_model_shape,
    sae_lens_directory,
    startup_checks,
)

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow/schemas/config.schema.yaml"
# datasets-*.yaml draw their categories from datasets: tests/test_dataset_examples.py
EXAMPLES = sorted(
    p for p in (REPO / "config/examples").glob("*.yaml") if not p.stem.startswith("datasets-")
)


def load(path: Path) -> dict:
    config = yaml.safe_load(path.read_text())
    config["texts"] = str(REPO / config["texts"])
    return config


def test_there_is_an_example_for_each_documented_setup():
    names = {p.stem for p in EXAMPLES}
    assert names == {
        "gpt2-small-components",
        "gpt2-small-width-ladder",
        "gemma-2-2b-res",
        "pythia-70m-deduped",
    }


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_passes_the_startup_checks_offline(path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings = startup_checks(load(path), SCHEMA)
    directory = sae_lens_directory()
    _, shape = hub_model_shape(settings.model.name)
    for (_family, layer), source in settings.sae_sources().items():
        release = directory[source["release"]]
        assert source["sae_id"] in [s["id"] for s in release["saes"]]
        assert layer < shape["n_layers"]
    assert settings.comparison.enabled


def test_width_ladder_example_lists_every_rung_at_layer_8():
    settings = startup_checks(load(REPO / "config/examples/gpt2-small-width-ladder.yaml"), SCHEMA)
    ladder = {
        s.id_template: s.layers
        for s in settings.saes.values()
        if s.release == "gpt2-small-res-jb-feature-splitting"
    }
    widths = [768 * 2**i for i in range(8)]
    assert ladder == {f"blocks.8.hook_resid_pre_{w}": (8,) for w in widths}
    assert settings.saes["res"].layers == (6, 8, 10)


def test_gemma_example_is_bfloat16_on_a_gpu():
    settings = startup_checks(load(REPO / "config/examples/gemma-2-2b-res.yaml"), SCHEMA)
    assert (settings.device, settings.dtype) == ("cuda", "bfloat16")
    assert settings.saes["res"].source(12) == {
        "release": "gemma-scope-2b-pt-res-canonical",
        "sae_id": "layer_12/width_16k/canonical",
    }


def test_the_startup_checks_catch_a_layer_or_model_mismatch():
    config = load(REPO / "config/examples/pythia-70m-deduped.yaml")
    too_deep = copy.deepcopy(config)
    too_deep["saes"]["mlp"]["layers"] = [5, 6]
    with pytest.raises(ConfigError, match=r"saes.mlp layers \[6\] do not exist"):
        startup_checks(too_deep, SCHEMA)
    other_model = copy.deepcopy(config)
    other_model["saes"]["res"] = {
        "release": "gpt2-small-res-jb",
        "id": "blocks.{layer}.hook_resid_pre",
    }
    with pytest.raises(SAEError, match="trained on 'gpt2-small'"):
        startup_checks(other_model, SCHEMA)
    fixed_id = load(REPO / "config/examples/gpt2-small-width-ladder.yaml")
    del fixed_id["saes"]["w768"]["layers"]  # a fixed id at the three top-level layers
    with pytest.raises(ConfigError, match="has no '{layer}' but 3 layers"):
        startup_checks(fixed_id, SCHEMA)


def test_hub_model_shapes_agree_with_independent_sources():
    """gemma-2-2b: TransformerLens builds its config offline (name-based); gpt2-small:
    transformers' GPT2Config defaults are GPT-2 small; pythia-70m-deduped: SAELens's
    registry has SAEs at blocks 0-5 and no deeper."""
    from transformer_lens.loading_from_pretrained import get_pretrained_model_config
    from transformers import GPT2Config

    cfg = get_pretrained_model_config("gemma-2-2b")
    gemma = HUB_MODEL_SHAPES["gemma-2-2b"]
    assert (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_mlp) == tuple(
        gemma[k] for k in ("n_layers", "d_model", "n_heads", "d_head", "d_mlp")
    )
    gpt2 = GPT2Config()
    assert HUB_MODEL_SHAPES["gpt2-small"] == {
        "n_layers": gpt2.n_layer,
        "d_model": gpt2.n_embd,
        "n_heads": gpt2.n_head,
        "d_head": gpt2.n_embd // gpt2.n_head,
        "d_mlp": 4 * gpt2.n_embd,
    }
    directory = sae_lens_directory()
    blocks = {
        int(s["id"].split(".")[1])
        for r in ("pythia-70m-deduped-res-sm", "pythia-70m-deduped-mlp-sm")
        for s in directory[r]["saes"]
    }
    assert max(blocks) + 1 == HUB_MODEL_SHAPES["pythia-70m-deduped"]["n_layers"]

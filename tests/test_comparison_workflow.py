"""Rerun behaviour of per-family extraction (issue 19), on the smallest config: adding an SAE
family, or changing one family's layers, extracts that family only; removing one extracts
nothing. One real run per state, checked with `snakemake -n`."""

from __future__ import annotations

import re

from conftest import demo_config, resource_texts, run_snakemake, scheduled_jobs, write_texts

from sae_specialists.core.layout import Layout


def shard_targets(config: dict, categories: list[str]) -> list[str]:
    layers = config["layers"]
    family_layers = {name: spec.get("layers", layers) for name, spec in config["saes"].items()}
    all_layers = sorted({layer for ls in family_layers.values() for layer in ls})
    layout = Layout.of(
        config["results_dir"], config["saes"], all_layers, categories, None, family_layers
    )
    return layout.extraction_outputs()


def extracted_families(dry_run) -> set[str]:
    """The `family` wildcard of every extraction job a dry run lists."""
    text = dry_run.stdout + dry_run.stderr
    return set(re.findall(r"wildcards: [^\n]*family=([A-Za-z0-9_-]+)", text))


def test_families_and_layers_extract_only_what_changed(tmp_path, demo_assets):
    categories = ["math", "python"]
    texts = write_texts(tmp_path / "texts", resource_texts(tuple(categories), n=2))
    work = tmp_path / "run"
    res = str(demo_assets / "saes/res/layer{layer}")
    one = demo_config(demo_assets, texts, work / "results", layers=[1, 3])

    def run(config, *args):
        return run_snakemake(work, *args, *shard_targets(config, categories), config=config)

    done = run(one, "--cores", "2")
    assert "extract_tokens" in done.stdout + done.stderr

    # a second family at its own layer: only its extraction (no tokens, nothing of res)
    two = {**one, "saes": {**one["saes"], "twin": {"path": res, "layers": [1]}}}
    dry = run(two, "-n")
    assert scheduled_jobs(dry) == {"extract_activations_layers_1": 2}
    assert extracted_families(dry) == {"twin"}
    run(two, "--cores", "2")
    assert scheduled_jobs(run(two, "-n")) == {}

    # the twin moves to the top-level layers: it joins res's rule, res is not re-extracted
    moved = {**one, "saes": {**one["saes"], "twin": {"path": res}}}
    dry = run(moved, "-n")
    assert scheduled_jobs(dry) == {"extract_activations": 2}
    assert extracted_families(dry) == {"twin"}

    # dropping the twin again extracts nothing: res's shards are untouched
    assert scheduled_jobs(run(one, "-n")) == {}

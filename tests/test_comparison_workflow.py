"""Rerun behaviour of per-family extraction, on the smallest config: adding an SAE family, or
changing one family's layers, extracts that family only; removing one extracts nothing. One real
run per state, checked with `snakemake -n`. The other job layouts (extraction.jobs:
per_category, single) write the same shards."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
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


CATEGORIES = ["math", "python"]


@pytest.fixture(scope="module")
def per_family_run(tmp_path_factory, demo_assets) -> SimpleNamespace:
    """The per-family runs of the first test (the default extraction.jobs): `res` at layers 1
    and 3, then a second family `twin` at its own layer 1 (planned first, then run). Its shards
    are also the reference the other job layouts are compared with (the second test)."""
    root = tmp_path_factory.mktemp("per_family")
    texts = write_texts(root / "texts", resource_texts(tuple(CATEGORIES), n=2))
    work = root / "run"
    res = str(demo_assets / "saes/res/layer{layer}")
    one = demo_config(demo_assets, texts, work / "results", layers=[1, 3])
    two = {**one, "saes": {**one["saes"], "twin": {"path": res, "layers": [1]}}}

    def run(config, *args):
        return run_snakemake(work, *args, *shard_targets(config, CATEGORIES), config=config)

    steps = {"one": run(one, "--cores", "2"), "two planned": run(two, "-n")}
    steps["two"] = run(two, "--cores", "2")
    return SimpleNamespace(work=work, res=res, one=one, two=two, run=run, steps=steps)


def test_families_and_layers_extract_only_what_changed(per_family_run):
    r = per_family_run
    done = r.steps["one"]
    assert "extract_tokens" in done.stdout + done.stderr

    # a second family at its own layer: only its extraction (no tokens, nothing of res)
    dry = r.steps["two planned"]
    assert scheduled_jobs(dry) == {"extract_activations_layers_1": 2}
    assert extracted_families(dry) == {"twin"}
    assert scheduled_jobs(r.run(r.two, "-n")) == {}

    # the twin moves to the top-level layers: it joins res's rule, res is not re-extracted
    moved = {**r.one, "saes": {**r.one["saes"], "twin": {"path": r.res}}}
    dry = r.run(moved, "-n")
    assert scheduled_jobs(dry) == {"extract_activations": 2}
    assert extracted_families(dry) == {"twin"}

    # dropping the twin again extracts nothing: res's shards are untouched
    assert scheduled_jobs(r.run(r.one, "-n")) == {}


def test_per_category_and_single_jobs_write_the_same_shards(tmp_path, demo_assets, per_family_run):
    """extraction.jobs: per_category: one job per category chunk writes the tokens and every
    family's shards (two families, one at its own layer); single: one job for every category
    chunk. Both write the same tables as the per-family jobs (the first test's runs, the same
    texts and families); analysis settings still rerun no extraction, an SAE change
    re-extracts every family (single: every category too)."""
    import polars as pl

    categories = CATEGORIES
    texts = write_texts(tmp_path / "texts", resource_texts(tuple(categories), n=2))
    res = per_family_run.res
    runs = {}
    for jobs in ("per_category", "single"):
        config = demo_config(
            demo_assets,
            texts,
            tmp_path / jobs / "results",
            layers=[1, 3],
            extraction={"jobs": jobs},
        )
        config["saes"] = {**config["saes"], "twin": {"path": res, "layers": [1]}}
        targets = shard_targets(config, categories)
        done = run_snakemake(tmp_path / jobs, "--cores", "2", *targets, config=config)
        runs[jobs] = (config, targets, done)

    def ran(jobs):
        done = runs[jobs][2]
        return sorted(re.findall(r"^(?:local)?rule (\w+):", done.stdout + done.stderr, re.M))

    assert ran("per_category") == ["extract_category"] * len(categories), ran("per_category")
    assert ran("single") == ["extract_all"], ran("single")

    by_family = per_family_run.work / "results"
    files = sorted(p.relative_to(by_family) for p in by_family.rglob("*.parquet"))
    assert len(files) == len(categories) * (1 + 2 * 3)  # tokens + (activations, pooled) x 3
    for jobs in ("per_category", "single"):
        other = tmp_path / jobs / "results"
        assert files == sorted(p.relative_to(other) for p in other.rglob("*.parquet")), jobs
        for name in files:
            left, right = pl.read_parquet(by_family / name), pl.read_parquet(other / name)
            assert left.equals(right), (jobs, name)

    for jobs, rule, count in (
        ("per_category", "extract_category", len(categories)),
        ("single", "extract_all", 1),
    ):
        config, targets, _ = runs[jobs]
        work = tmp_path / jobs
        threshold = {**config, "analysis": {**config["analysis"], "threshold": 1.0}}
        assert scheduled_jobs(run_snakemake(work, "-n", *targets, config=threshold)) == {}
        moved = {**config, "saes": {**config["saes"], "twin": {"path": res}}}
        dry = run_snakemake(work, "-n", *shard_targets(moved, categories), config=moved)
        assert scheduled_jobs(dry) == {rule: count}, jobs
    # single: a text added to one category re-extracts every category, in its one job
    config, targets, _ = runs["single"]
    (texts / "math.yaml").write_text(
        (texts / "math.yaml").read_text("utf-8") + "- x squared plus one\n", encoding="utf-8"
    )
    assert scheduled_jobs(run_snakemake(tmp_path / "single", "-n", *targets, config=config)) == {
        "extract_all": 1
    }

"""Causal stage in the real Snakefile, rerun behaviour (docs/causal.md), on the smallest config:
one SAE layer, two categories of two texts. Changing causal.* never reruns extraction or
analysis; a threshold change reruns a layer's model job only when its specialist set changed."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from conftest import demo_config, resource_texts, run_snakemake, scheduled_jobs, write_texts

CAUSAL = {
    "enabled": True,
    "steer_tokens": 3,
    "prompts": ["The weather today is"],
    "bootstrap_resamples": 50,
}


def executed(proc) -> list[str]:
    """Rules a Snakemake run executed, from its log lines ('localrule X:', 'rule X:', ...)."""
    names = []
    for line in (proc.stdout + proc.stderr).splitlines():
        words = line.strip().rstrip(":").split()
        if (
            len(words) == 2
            and line.strip().endswith(":")
            and words[0]
            in (
                "rule",
                "localrule",
                "checkpoint",
                "localcheckpoint",
            )
        ):
            names.append(words[1])
    return names


@pytest.fixture(scope="module")
def causal_run(demo_assets, tmp_path_factory):
    work = tmp_path_factory.mktemp("causal_wf")
    texts = write_texts(work / "texts", resource_texts(("python", "formal"), n=2))
    # paths relative to the run directory, so that a copy of it is the same workflow state
    config = demo_config(
        demo_assets,
        Path(texts.name),
        Path("results"),
        layers=[3],
        causal=CAUSAL,
        extraction={"jobs": "single"},  # one extraction job for both categories: fewer imports
    )
    run_snakemake(work, "--cores", "2", "causal", config=config)
    return work, config


def with_causal(config, **changes):
    return {**config, "causal": {**config["causal"], **changes}}


def test_outputs_and_one_layer_job(causal_run):
    work, config = causal_run
    results = work / "results"
    cells = json.loads((results / "causal/cells.json").read_text())
    specialists = pl.read_parquet(results / "tables/specialists.parquet").filter("has_specialist")
    expected = sorted([r["category"], r["feature"]] for r in specialists.iter_rows(named=True))
    assert cells == {"res/3": expected} and expected
    effects = pl.read_parquet(results / "causal/effects.parquet")
    assert effects.height == 2 * len(expected)  # zero and mean per cell
    assert (results / "causal/pages/index.html").is_file()
    for category, _ in expected:
        assert (results / f"causal/pages/sae=res/layer=3/{category}.html").is_file()
    verdicts = json.loads((results / "causal/verdicts.json").read_text())
    assert sorted(verdicts) == [f"res/3/{c}" for c, _ in expected]


def test_causal_settings_never_rerun_extraction_or_analysis(causal_run):
    work, config = causal_run
    model_settings = scheduled_jobs(
        run_snakemake(work, "-n", "causal", config=with_causal(config, steer_tokens=4))
    )
    assert model_settings.get("causal_layer") == 1
    stats_only = scheduled_jobs(
        run_snakemake(work, "-n", "causal", config=with_causal(config, bootstrap_resamples=60))
    )
    assert stats_only.get("causal_tables") == 1 and "causal_layer" not in stats_only
    for jobs in (model_settings, stats_only):
        assert not [r for r in jobs if r.startswith(("extract", "analysis"))], jobs
    nothing = run_snakemake(work, "-n", "causal", config=with_causal(config, batch_size=3))
    assert "Nothing to be done" in nothing.stdout + nothing.stderr


def test_threshold_reruns_the_layer_job_only_when_its_set_changes(causal_run, tmp_path, copy_tree):
    work, config = causal_run
    copy = copy_tree(work, tmp_path / "copy")
    before = (copy / "results/causal/cells.json").read_text()
    same_set = {**config, "analysis": {**config["analysis"], "threshold": 6.0}}
    ran = executed(run_snakemake(copy, "--cores", "2", "causal", config=same_set))
    assert "analysis_specialist_tables" in ran and "causal_cells" in ran
    assert "causal_layer" not in ran and "causal_tables" not in ran
    assert (copy / "results/causal/cells.json").read_text() == before
    no_specialist = {**config, "analysis": {**config["analysis"], "threshold": 1e9}}
    proc = run_snakemake(copy, "--cores", "2", "causal", config=no_specialist)
    ran = executed(proc)
    assert ran.count("causal_layer") == 1 and "causal_tables" in ran
    assert json.loads((copy / "results/causal/cells.json").read_text()) == {"res/3": []}
    assert pl.read_parquet(copy / "results/causal/effects.parquet").height == 0
    log = (copy / "results/logs/causal/layer_sae=res_layer=3.log").read_text()
    assert "model not loaded" in log

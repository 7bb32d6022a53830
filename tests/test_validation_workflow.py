"""The validation stage in the session's shared demo run (config/demo.yaml, tests/conftest.py):
outputs agree with the analysis and with each other, the report / heatmap / dashboards show the
verdicts, and rerun behaviour (dry runs on a copy): a validation setting never reruns extraction
or analysis; shards without pooled residuals (made elsewhere) still get held-out, null and
verdicts; the optional test set is extracted by the extraction rule into its own tree."""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import polars as pl
import pytest
import yaml
from conftest import md_escaped, scheduled_jobs, write_texts

EXTRACT_OR_ANALYSIS = ("extract", "analysis_", "logit", "methodology")
# the run's overview page (report/overview.py) is rebuilt after any job: not analysis
ALWAYS = {"all", "report_index"}


@pytest.fixture(scope="module")
def results(demo_run):
    return demo_run.results


@pytest.fixture
def copy(demo_run, tmp_path):
    return demo_run.copy(tmp_path / "demo")


def _with(config: dict, **validation) -> dict:
    return {**config, "validation": {**config.get("validation", {}), **validation}}


def test_every_cell_and_the_analysis_agree(results, demo_run):
    cells = pl.read_parquet(results / "validation" / "cells.parquet")
    spec = pl.read_parquet(results / "tables" / "specialists.parquet")
    families = demo_run.config["validation"].get("families")  # the demo: res only
    if families:
        spec = spec.filter(pl.col("sae").is_in(families))
    joined = spec.join(cells, on=["sae", "layer", "category"], how="full", coalesce=True)
    assert joined.height == spec.height == cells.height
    # the full-data specialist of the stage is the analysis' specialist, cell by cell
    assert (
        joined["feature"].cast(pl.Int64).fill_null(-1) == joined["feature_right"].fill_null(-1)
    ).all()
    assert (joined["score"].cast(pl.Int64).fill_null(0) == joined["score_right"].fill_null(0)).all()
    folds = pl.read_parquet(results / "validation" / "folds.parquet")
    sizes = pl.read_parquet(results / "per_text" / "texts.parquet").group_by("category").len()
    per_cell = folds.group_by("sae", "layer", "category").agg(pl.col("n_test_in").sum())
    check = per_cell.join(sizes, on="category")
    assert (check["n_test_in"] == check["len"]).all()  # every text held out exactly once
    null = pl.read_parquet(results / "validation" / "null" / "null.parquet")
    n_perm = demo_run.config["validation"]["permutations"]
    counts = null.group_by("sae", "layer", "category").len()["len"].unique().to_list()
    assert counts == [n_perm]
    verdicts = json.loads((results / "validation" / "verdicts.json").read_text())
    assert len(verdicts) == cells.height
    for r in cells.iter_rows(named=True):
        v = verdicts[f"{r['sae']}/{r['layer']}/{r['category']}"]
        assert (v["verdict"], v["verdict_text"]) == (r["verdict"], r["verdict_text"])


def test_report_heatmap_and_dashboards_show_the_verdicts(results):
    cells = pl.read_parquet(results / "validation" / "cells.parquet")
    summary = (results / "summary.md").read_text()
    assert "## Validation" in summary and "validation/summary.md" in summary
    # analysis.html: the charts and the specialist table; index.html: every output by stage
    page = (results / "analysis.html").read_text()
    assert "validation/charts/heldout_auroc_sae=res.html" in page
    failing = cells.filter(pl.col("fails_heldout"))
    # the token-view grid marks every cell the validation speaks against (findings board
    # records: ok false, failing cells and those a probe beats), with its label
    against = pl.read_parquet(results / "validation" / "verdicts.parquet").filter(~pl.col("ok"))
    assert against.height >= failing.height
    assert page.count('<span class="fails" title="validation: ') == against.height
    assert 'id="stage-validation"' in (results / "index.html").read_text()
    for r in failing.iter_rows(named=True):
        assert md_escaped(r["verdict_text"]) in summary
    heatmap = (results / "validation" / "charts" / "specialist_scores_sae=res.html").read_text()
    # no network: Vega comes from the run's one shared script (assets/vega/vega.js)
    assert re.findall(r"<script src=\"([^\"]+)\"", heatmap) == ["../../assets/vega/vega.js"]
    # the inlined dataset marks exactly the failing cells (their labels end in ✗)
    marks = re.findall(r'"fails_heldout": *(true|false)', heatmap)
    assert marks.count("true") == failing.height
    assert len(marks) == cells.filter(pl.col("sae") == "res").height
    shown = 0
    for r in cells.filter(pl.col("has_specialist")).iter_rows(named=True):
        page = (
            results
            / "dashboards"
            / f"sae={r['sae']}"
            / f"layer={r['layer']}"
            / f"feature={r['feature']}.html"
        )
        text = page.read_text()
        assert "<th>validation</th>" in text and html.escape(r["verdict_text"]) in text
        shown += 1
    assert shown


def test_validation_settings_rerun_only_validation_jobs(copy):
    cfg = copy.config
    # the verdicts rewrite the findings board's records, so the two pages that draw the board
    # from the model-free stages' records (analysis.html, the dashboards index) are planned too
    shows = {"analysis_report", "dashboards_index"}
    # validation/summary.md has a job of its own, and surface/summary.md shows the validation
    # verdicts (the summaries are cross-linked: core/crosslinks.py)
    summaries = {"validation_summary", "surface_summary"}
    expected = {
        "permutations": {
            "validation_null",
            "validation_verdicts",
            "validation_charts",
            *shows,
            *summaries,
        },
        # the surface stage's token R² uses the validation folds: it reruns too, and what shows
        # it (the dashboards' "What it detects" block, the circuits pages linking them)
        "folds": {
            "validation_heldout",
            "validation_baselines",
            "validation_verdicts",
            "validation_charts",
            *shows,
            "surface_layer",
            "surface_verdicts",
            "dashboards_layer",
            "circuits_tables",
            *summaries,
            "causal_pages",  # they show the surface verdicts
        },
        "alpha": {"validation_verdicts", "validation_charts", *shows, *summaries},
        "probe_k": {
            "validation_baselines",
            "validation_verdicts",
            "validation_charts",
            *shows,
            *summaries,
        },
    }
    values = {"permutations": 200, "folds": 3, "alpha": 0.01, "probe_k": [1, 3]}
    for key, rules in expected.items():
        dry = copy.snakemake("-n", config=_with(cfg, **{key: values[key]}))
        jobs = scheduled_jobs(dry)
        assert set(jobs) - ALWAYS == rules, (key, jobs)
    # max_dense_gb changes no result: nothing reruns
    assert scheduled_jobs(copy.snakemake("-n", config=_with(cfg, max_dense_gb=8.0))) == {}
    # baselines off: no baseline job, the verdicts (and what shows them) only
    jobs = scheduled_jobs(copy.snakemake("-n", config=_with(cfg, baselines=False)))
    assert "validation_baselines" not in jobs and "validation_verdicts" in jobs
    assert not [j for j in jobs if j.startswith(EXTRACT_OR_ANALYSIS) and j not in shows], jobs


def test_shards_without_pooled_residuals_still_validate(copy):
    """Shards made elsewhere (no pooled residuals): the baselines are skipped with a warning,
    held-out, null and verdicts run, and nothing is re-extracted."""
    shutil.rmtree(copy.results / "pooled")
    proc = copy.snakemake("--cores", "2", "validation")
    out = proc.stdout + proc.stderr
    assert "probe baselines are skipped" in out
    assert "rule extract" not in out and "rule analysis_" not in out
    cells = pl.read_parquet(copy.results / "validation" / "cells.parquet")
    assert not [c for c in cells.columns if c.startswith(("dense_probe", "diffmean"))]
    assert cells["heldout_auroc"].null_count() == 0
    assert cells.filter(pl.col("has_specialist"))["verdict_text"].str.contains("probe").sum() == 0


def test_test_set_is_extracted_into_its_own_tree(copy, tmp_path):
    texts_dir = copy.config["texts"]
    study = {p.stem: yaml.safe_load(p.read_text()) for p in Path(texts_dir).glob("*.yaml")}
    test_dir = write_texts(tmp_path / "test_texts", {c: items[:2] for c, items in study.items()})
    families = copy.config["validation"].get("families") or sorted(copy.config["saes"])
    dry = copy.snakemake("-n", "validation", config=_with(copy.config, test_texts=str(test_dir)))
    jobs = scheduled_jobs(dry)
    # the extraction rules' twins: tokens per category, activations per validated family
    assert jobs["validation_test_tokens"] == len(study)
    assert jobs["validation_test_extract"] == len(study) * len(families)
    assert jobs["validation_test_per_text"] == sum(
        len(copy.config["saes"][f].get("layers", copy.config["layers"])) for f in families
    )
    assert {"validation_test_texts", "validation_test_set"} <= set(jobs)
    assert not [j for j in jobs if j.startswith(EXTRACT_OR_ANALYSIS)], jobs
    assert "validation/test_set/tokens/category=" in dry.stdout + dry.stderr
    # a test set without one of the study's categories: one clear error before any job
    (test_dir / f"{sorted(study)[0]}.yaml").unlink()
    bad = copy.snakemake("-n", config=_with(copy.config, test_texts=str(test_dir)), check=False)
    assert bad.returncode != 0
    assert "validation.test_texts" in bad.stderr and "missing: " + sorted(study)[0] in bad.stderr

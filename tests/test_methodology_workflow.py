"""The methodology rules through the real Snakefile on the demo model: outputs, the join of the
stability columns onto the specialists table, and what reruns when a methodology setting
changes (never extraction, never the model-needing variants unless the model/texts change)."""

from __future__ import annotations

import re

import polars as pl
import pytest
from conftest import demo_config, resource_texts, run_snakemake, scheduled_jobs, write_texts

METHODOLOGY = {
    "enabled": True,
    "model_variants": True,
    "thresholds": [1.0, 5.0, 20.0],
    "bootstrap_resamples": 200,
    "seed": 0,
    "ci": 0.9,
}


def targets(work):
    return ("methodology", str(work / "results" / "tables" / "specialists.parquet"))


@pytest.fixture(scope="module")
def meth_run(demo_assets, tmp_path_factory):
    """`snakemake methodology` + the specialists table, 2 categories x 3 texts, layers 1, 3."""
    work = tmp_path_factory.mktemp("meth")
    texts = write_texts(work / "texts", resource_texts(("python", "social"), n=3))
    config = demo_config(
        demo_assets,
        texts,
        work / "results",
        methodology=dict(METHODOLOGY),
        extraction={"jobs": "single"},  # one extraction job for both categories: fewer imports
    )
    run_snakemake(work, "--cores", "2", *targets(work), config=config)
    return work, config


def test_outputs(meth_run):
    work, _ = meth_run
    m = work / "results" / "methodology"
    summary = pl.read_parquet(m / "ablation_summary.parquet")
    assert summary.height == 16 * 2  # 16 methods x 2 layers
    assert summary.filter(pl.col("reference")).height == 2
    rows = pl.read_parquet(m / "ablation.parquet")
    assert rows.height == 16 * 2 * 2  # x 2 categories
    sweep = pl.read_parquet(m / "threshold_sweep.parquet")
    assert sorted(sweep["threshold"].unique()) == [1.0, 5.0, 20.0]
    assert set(sweep["rule"]) == {"top_k", "all_features"}
    boot = pl.read_parquet(m / "bootstrap.parquet")
    assert boot["resamples"].unique().to_list() == [200]
    for name in ("auroc", "all_features", "missed_by_topk"):
        assert (m / f"{name}.csv").is_file()
    text = (m / "summary.md").read_text()
    assert "Method ablation" in text and "Bootstrap stability" in text
    charts = [
        m / "charts" / f"{n}.html" for n in ("ablation", "threshold_sweep", "auroc", "topk_vs_all")
    ]
    charts.append(work / "results" / "charts" / "specialist_stability_sae=res.html")
    for html in charts:
        page = html.read_text()
        assert not re.search(r"<script[^>]+src=[\"']?https?:", page), html
        assert html.with_suffix(".png").stat().st_size > 1000


def test_reference_method_is_the_specialists_table_and_stability_joins(meth_run):
    work, _ = meth_run
    results = work / "results"
    spec = pl.read_parquet(results / "tables" / "specialists.parquet")
    ref = pl.read_parquet(results / "methodology" / "ablation.parquet").filter(pl.col("reference"))
    key = ["sae", "layer", "category"]
    assert (
        ref.select(*key, "feature", "score", "has_specialist")
        .sort(key)
        .equals(spec.select(*key, "feature", "score", "has_specialist").sort(key))
    )
    stab = pl.read_parquet(results / "tables" / "specialists_stability.parquet")
    assert stab.schema["feature"] == spec.schema["feature"]
    joined = spec.join(stab, on=[*key, "feature"], how="left", nulls_equal=True)
    assert joined.height == spec.height
    has = joined.filter(pl.col("feature").is_not_null())
    assert has["stability"].is_not_null().all() and has["score_ci_low"].is_not_null().all()
    assert has["stability"].is_between(0, 1).all()


def _jobs(work, config, *args):
    return scheduled_jobs(run_snakemake(work, "-n", *args, config=config))


def test_grid_resamples_and_seed_rerun_only_their_rules(meth_run):
    work, config = meth_run
    tg = targets(work)
    assert _jobs(work, config, *tg) == {}
    grid = {**config, "methodology": {**METHODOLOGY, "thresholds": [2.0, 7.0]}}
    assert _jobs(work, grid, *tg) == {
        "methodology_sweep": 1,
        "methodology_summary": 1,
        "methodology": 1,
    }
    resamples = {
        **config,
        "methodology": {**METHODOLOGY, "bootstrap_resamples": 50, "seed": 3, "ci": 0.8},
    }
    # the specialists table carries the bootstrap stability columns, so it reruns too
    assert _jobs(work, resamples, *tg) == {
        "methodology_bootstrap": 1,
        "methodology_summary": 1,
        "methodology": 1,
        "analysis_specialist_tables": 1,
    }
    # an analysis threshold change reruns the threshold-dependent tables, never extraction,
    # per-text values or the model-needing variants
    thr = {**config, "analysis": {**config["analysis"], "threshold": 3.0}}
    jobs = _jobs(work, thr, *tg)
    assert not [j for j in jobs if j.startswith("extract")] and "methodology_variants" not in jobs
    assert "analysis_per_text" not in jobs
    assert jobs["methodology_ablation"] == 1 and jobs["methodology_bootstrap"] == 1


def test_enabled_switches_rule_all_only(demo_assets, tmp_path):
    texts = write_texts(tmp_path / "texts", resource_texts(("python",), n=1))
    on = demo_config(demo_assets, texts, tmp_path / "results", methodology=dict(METHODOLOGY))
    jobs = _jobs(tmp_path, on)
    assert jobs["methodology_variants"] == 1 and jobs["methodology_bootstrap"] == 1
    # no section at all (or enabled: false): off; `snakemake methodology` still builds everything
    bare = demo_config(demo_assets, texts, tmp_path / "results")
    assert not [j for j in _jobs(tmp_path, bare) if j.startswith("methodology")]
    assert _jobs(tmp_path, bare, "methodology")["methodology_variants"] == 1
    shard_only = demo_config(
        demo_assets,
        texts,
        tmp_path / "results",
        methodology={**METHODOLOGY, "model_variants": False},
    )
    jobs = _jobs(tmp_path, shard_only)
    assert "methodology_variants" not in jobs and jobs["methodology_ablation"] == 1

"""Causal stage on the shared demo run (config/demo.yaml, every stage of rule all): every
reported specialist is checked, the tables agree with each other and with independent
computations, and the verdicts reach summary.md, analysis.html and the dashboards."""

from __future__ import annotations

import json

import polars as pl
import pytest


@pytest.fixture(scope="module")
def causal(demo_run):
    results = demo_run.results
    return {
        "results": results,
        "effects": pl.read_parquet(results / "causal/effects.parquet"),
        "per_text": pl.read_parquet(results / "causal/per_text.parquet"),
        "top": pl.read_parquet(results / "causal/top_tokens.parquet"),
        "steering": pl.read_parquet(results / "causal/steering.parquet"),
        "specialists": pl.read_parquet(results / "tables/specialists.parquet").filter(
            "has_specialist"
        ),
    }


def test_every_reported_specialist_is_checked(causal, demo_run):
    cells = (
        causal["specialists"]
        .select("sae", "layer", "category", "feature")
        .sort("sae", "layer", "category")
    )
    assert cells.height > 0
    for mode in demo_run.config["causal"]["modes"]:
        got = (
            causal["effects"]
            .filter(pl.col("mode") == mode)
            .select("sae", "layer", "category", "feature")
            .sort("sae", "layer", "category")
        )
        assert got.to_dicts() == cells.to_dicts()
    verdicts = json.loads((causal["results"] / "causal/verdicts.json").read_text())
    zero = causal["effects"].filter(pl.col("mode") == "zero")
    assert {k: v["verdict"] for k, v in verdicts.items()} == {
        f"{r['sae']}/{r['layer']}/{r['category']}": r["verdict"] for r in zero.to_dicts()
    }
    pages = causal["results"] / "causal/pages"
    assert (pages / "index.html").is_file()
    for r in cells.iter_rows(named=True):
        assert (pages / f"sae={r['sae']}/layer={r['layer']}/{r['category']}.html").is_file()


def test_tables_agree(causal, demo_run):
    """Per-text rows: every text once per ablation; means in the effects table are the means
    of the per-text table; steering has every prompt x (unsteered + scales) per specialist."""
    per_text, effects = causal["per_text"], causal["effects"]
    n_texts = pl.read_parquet(causal["results"] / "per_text/texts.parquet").height
    counts = per_text.group_by("sae", "layer", "feature", "mode").len()
    assert counts["len"].unique().to_list() == [n_texts]
    for row in effects.filter(pl.col("mode") == "zero").iter_rows(named=True):
        sub = per_text.filter(
            (pl.col("sae") == row["sae"])
            & (pl.col("layer") == row["layer"])
            & (pl.col("feature") == row["feature"])
            & (pl.col("mode") == "zero")
            & pl.col("delta_loss").is_not_null()
        )
        inside = sub.filter(pl.col("category") == row["category"])["delta_loss"]
        outside = sub.filter(pl.col("category") != row["category"])["delta_loss"]
        assert row["in_mean"] == pytest.approx(inside.mean(), abs=1e-12)
        assert row["out_mean"] == pytest.approx(outside.mean(), abs=1e-12)
        top = causal["top"].filter(
            (pl.col("sae") == row["sae"])
            & (pl.col("layer") == row["layer"])
            & (pl.col("category") == row["category"])
        )
        assert top.height <= demo_run.config["causal"]["top_tokens"]
        assert (top["delta_loss"] > 0).all()
        assert top["delta_loss"].is_sorted(descending=True)
    config = demo_run.config["causal"]
    per_feature = causal["steering"].group_by("sae", "layer", "feature").len()
    assert per_feature["len"].unique().to_list() == [
        len(config["prompts"]) * (1 + len(config["steer_scales"]))
    ]


def test_verdicts_in_summary_analysis_page_and_dashboards(causal, demo_run):
    results = causal["results"]
    summary = (results / "summary.md").read_text()
    assert "## Causal check" in summary
    zero = causal["effects"].filter(pl.col("mode") == "zero")
    for r in zero.iter_rows(named=True):
        assert f"| {r['sae']} | {r['layer']} | {r['category']} | {r['feature']} |" in summary
    page = (results / "analysis.html").read_text()
    assert page.count("causal check: detector only") == int(zero["detector_only"].sum())
    for r in zero.iter_rows(named=True):
        dashboard = (
            results / f"dashboards/sae={r['sae']}/layer={r['layer']}/feature={r['feature']}.html"
        ).read_text()
        assert 'id="causal"' in dashboard and r["verdict"] in dashboard
        assert dashboard.count("causal-steering") == 1

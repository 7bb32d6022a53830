"""Causal stage on the shared demo run (config/demo.yaml, every stage of rule all): every
reported specialist is checked, the tables agree with each other and with independent
computations, and the verdicts reach summary.md, analysis.html and the dashboards."""

from __future__ import annotations

import html
import json
import re

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
    """Every specialist of the checked families (causal.families; all when null)."""
    families = demo_run.config["causal"].get("families") or list(demo_run.config["saes"])
    cells = (
        causal["specialists"]
        .filter(pl.col("sae").is_in(families))
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
    # summary.md and analysis.html belong to `snakemake analysis` (no model): they point to the
    # causal pages; the verdicts are on index.html's findings board (issue 26)
    summary = (results / "summary.md").read_text()
    assert "## Causal check" in summary and "causal/pages/index.html" in summary
    zero = causal["effects"].filter(pl.col("mode") == "zero")
    board = re.findall(r'data-verdicts="([^"]*)"', (results / "index.html").read_text())
    causal_shown = [json.loads(html.unescape(v)).get("causal") for v in board]
    assert causal_shown.count("detector_only") == int(zero["detector_only"].sum())
    assert sum(v is not None and v != "not_tested" for v in causal_shown) == zero.height
    page = (results / "analysis.html").read_text()
    legend = re.search(r"<p class=\"board-legend\">(.*?)</p>", page).group(1)
    assert "causal check" in legend and "(needs the model): on the board of index.html" in legend
    for r in zero.iter_rows(named=True):
        dashboard = (
            results / f"dashboards/sae={r['sae']}/layer={r['layer']}/feature={r['feature']}.html"
        ).read_text()
        assert 'id="causal"' in dashboard and r["verdict"] in dashboard
        assert dashboard.count("causal-steering") == 1


# -- the planted causal structure (planted.json["causal"], demo/expected.py) ---------------------


def res_cell(effects, layer, category):
    return effects.filter(
        (pl.col("sae") == "res")
        & (pl.col("layer") == layer)
        & (pl.col("category") == category)
        & (pl.col("mode") == "zero")
    ).row(0, named=True)


def test_planted_driver_is_specific_with_ratio_at_least_5(causal, demo_run):
    planted = demo_run.planted
    driver = planted["causal"]["driver"]["category"]
    expected = planted["expected"]["causal"]["driver"]
    for layer, roles in planted["layers"].items():
        row = res_cell(causal["effects"], int(layer), driver)
        assert row["feature"] == roles[driver]
        assert row["in_mean"] > 0 and row["in_mean"] >= 5 * row["out_mean"]
        assert row["verdict"] == "specific" and not row["detector_only"]
        # the demo's own measurement (tests/test_demo.py recomputes it independently)
        assert row["in_mean"] == pytest.approx(expected["delta_in"][layer], rel=1e-3)
        assert row["out_mean"] == pytest.approx(expected["delta_out"][layer], rel=1e-2)


def test_planted_pure_detector_is_flagged(causal, demo_run):
    planted = demo_run.planted
    detector = planted["causal"]["detector"]["category"]
    for layer, roles in planted["layers"].items():
        row = res_cell(causal["effects"], int(layer), detector)
        assert row["feature"] == roles[detector]
        assert row["detector_only"] and row["verdict"] == "detector only"
        assert abs(row["in_mean"]) < 1e-6 and abs(row["out_mean"]) < 1e-6
        # its Δloss is float rounding (~1e-8, often all positive: in_low > 0): below
        # causal.min_effect it never counts as "matters", whatever the interval says
        assert not row["above_zero"] and not row["above_control"]
    min_effect = demo_run.config["causal"].get("min_effect", 0.001)
    zero = causal["effects"].filter(pl.col("mode") == "zero")
    matters = zero.filter(~pl.col("detector_only"))
    assert (matters["in_mean"] >= min_effect).all() and (matters["vs_control"] >= min_effect).all()
    assert (matters["in_low"] > 0).all() and (matters["vs_control_low"] > 0).all()


def test_top1_changes_of_the_planted_cells(causal, demo_run):
    """The driver changes the top-1 prediction at some of its category's positions at every
    layer; the pure detector at none. The share is the per-text table's counts summed over
    the category's texts; the causal pages show it beside the Δloss."""
    planted = demo_run.planted
    driver = planted["causal"]["driver"]["category"]
    detector = planted["causal"]["detector"]["category"]
    per_text = causal["per_text"]
    for layer in planted["layers"]:
        assert res_cell(causal["effects"], int(layer), driver)["top1_changed_share"] > 0
        assert res_cell(causal["effects"], int(layer), detector)["top1_changed_share"] == 0
    index = (causal["results"] / "causal/pages/index.html").read_text()
    assert "top-1 changed in" in index
    for row in causal["effects"].iter_rows(named=True):
        sub = per_text.filter(
            (pl.col("sae") == row["sae"])
            & (pl.col("layer") == row["layer"])
            & (pl.col("feature") == row["feature"])
            & (pl.col("mode") == row["mode"])
            & (pl.col("category") == row["category"])
        )
        assert row["top1_positions"] == sub["n_positions"].sum()
        assert row["top1_changed_share"] == sub["top1_changed"].sum() / sub["n_positions"].sum()
        controls = [int(f) for f in row["controls"].split()]
        ctrl = per_text.filter(
            (pl.col("sae") == row["sae"])
            & (pl.col("layer") == row["layer"])
            & pl.col("feature").is_in(controls)
            & (pl.col("mode") == row["mode"])
            & (pl.col("category") == row["category"])
        )
        assert row["control_top1_changed_share"] == (
            ctrl["top1_changed"].sum() / ctrl["n_positions"].sum()
        )
        page = (
            causal["results"]
            / f"causal/pages/sae={row['sae']}/layer={row['layer']}/{row['category']}.html"
        ).read_text()
        shown = f"{100 * row['top1_changed_share']:.1f}% <small>of {row['top1_positions']:,}"
        assert shown in page
        assert f"<td>{100 * row['control_top1_changed_share']:.1f}%</td>" in page
        if row["mode"] == "zero":
            assert shown in index


def test_steering_the_driver_writes_its_category_tokens(causal, demo_run):
    planted = demo_run.planted
    driver = planted["causal"]["driver"]
    wanted = set(driver["token_ids"])
    minimum = planted["expected"]["causal"]["driver"]["steering"]["min_driver_tokens"]
    for layer, roles in planted["layers"].items():
        rows = causal["steering"].filter(
            (pl.col("sae") == "res")
            & (pl.col("layer") == int(layer))
            & (pl.col("feature") == roles[driver["category"]])
        )
        assert rows.height == len(demo_run.config["causal"]["prompts"]) * 4
        for r in rows.iter_rows(named=True):
            hits = sum(t in wanted for t in r["token_ids"])
            if r["scale"] is None or r["scale"] == 0:
                assert hits == 0, r
            else:
                assert hits >= minimum, r


def test_steering_token_ids_are_lists_of_ints_like_the_layer_tables(causal, demo_run):
    """One type for token_ids in every Parquet table (the per-layer tables' and the joined
    one): a list of ints; the CSV twin joins them with spaces."""
    layer_tables = sorted((causal["results"] / "causal").rglob("steering.parquet"))
    assert len(layer_tables) > 1  # the joined table and at least one layer's
    for path in layer_tables:
        assert pl.read_parquet_schema(path)["token_ids"] == pl.List(pl.Int64), path
    csv = pl.read_csv(causal["results"] / "causal/steering.csv")
    assert csv["token_ids"].to_list() == [
        " ".join(str(t) for t in ids) for ids in causal["steering"]["token_ids"]
    ]


def test_one_cell_by_hand_with_run_with_hooks(causal, demo_run):
    """The driver cell at layer 2, every text: Δloss and the top-1 changes written out with
    TransformerLens's run_with_hooks on one unpadded text at a time, against the per-text and
    effects tables (the top-1 counts exactly)."""
    import numpy as np
    import torch
    from sae_lens import SAE

    from sae_specialists.extraction.models import load_local_model

    planted = demo_run.planted
    category = planted["causal"]["driver"]["category"]
    feature = planted["layers"]["2"][category]
    model = load_local_model(demo_run.assets / "model")
    sae = SAE.load_from_disk(str(demo_run.assets / "saes/res/layer2"))
    hook_name = sae.cfg.metadata.hook_name
    tokens = pl.concat(
        [pl.read_parquet(p) for p in sorted((demo_run.results / "tokens").rglob("*.parquet"))]
    ).sort("text_id", "token_pos")

    def edit(act, hook):
        x = act.clone()
        a = sae.encode(x[0, 1:])[:, feature]
        x[0, 1:] = x[0, 1:] - a[:, None] * sae.W_dec[feature]
        return x

    by_hand = {}
    for (text_id,), rows in tokens.group_by(["text_id"]):
        ids = torch.tensor([rows["token_id"].to_list()])
        with torch.inference_mode():
            clean_logits = model(ids)
            ablated_logits = model.run_with_hooks(ids, fwd_hooks=[(hook_name, edit)])
        clean = torch.nn.functional.cross_entropy(
            clean_logits[0, :-1], ids[0, 1:], reduction="none"
        )
        ablated = torch.nn.functional.cross_entropy(
            ablated_logits[0, :-1], ids[0, 1:], reduction="none"
        )
        diff = (ablated - clean)[1:]  # predictions made at positions 1..n-2
        flips = clean_logits[0].argmax(-1) != ablated_logits[0].argmax(-1)
        by_hand[text_id] = (
            float(diff.mean()) if len(diff) else None,
            rows["category"][0],
            int(flips[1 : ids.shape[1] - 1].sum()),
            len(diff),
        )
    table = causal["per_text"].filter(
        (pl.col("sae") == "res")
        & (pl.col("layer") == 2)
        & (pl.col("feature") == feature)
        & (pl.col("mode") == "zero")
    )
    assert table.height == len(by_hand)
    for r in table.iter_rows(named=True):
        assert (r["top1_changed"], r["n_positions"]) == by_hand[r["text_id"]][2:]
        expected = by_hand[r["text_id"]][0]
        if expected is None:
            assert r["delta_loss"] is None
        else:
            assert r["delta_loss"] == pytest.approx(expected, abs=2e-5)
    inside = [d for d, c, *_ in by_hand.values() if d is not None and c == category]
    outside = [d for d, c, *_ in by_hand.values() if d is not None and c != category]
    row = res_cell(causal["effects"], 2, category)
    flips = sum(f for _, c, f, _ in by_hand.values() if c == category)
    positions = sum(n for _, c, _, n in by_hand.values() if c == category)
    assert row["top1_positions"] == positions > 0
    assert row["top1_changed_share"] == flips / positions > 0
    assert row["in_mean"] == pytest.approx(np.mean(inside), abs=2e-5)
    assert row["out_mean"] == pytest.approx(np.mean(outside), abs=2e-5)

"""Numbers a researcher reads in the pages' tables (issue 26, item 4), checked in headless
Chromium with screenshots under test-artifacts/:

- the causal index shows the intervals its verdict is decided on (Δloss in, in − control,
  in − out), every Δloss with one number of decimals (it mixed 1.242e-08 with 0.08842), and
  says what "–" means;
- logit effects of a feature whose effects are small show significant digits (not "+0.000");
- a family with one layer reads as one layer (not "stays from 64.64 at layer 2 … to 64.64 at
  layer 2 (1.00×)");
- the validation summary is a page too, not only Markdown.
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
from browser import open_offline

from sae_specialists.core.numbers import decimals_for, fixed

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")


def shot(page, selector: str, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(selector).first.screenshot(path=str(ARTIFACTS / name))


def test_fixed_decimals():
    assert decimals_for([0.08842, 1.242e-08, None]) == 4
    assert decimals_for([0.08842, 1.242e-08], least=4) == 4
    assert decimals_for([184.3, 0.5], sig=4) == 1
    assert decimals_for([0.00042, -0.0003], sig=3, least=3) == 6
    assert decimals_for([None, 0.0]) == 0
    assert fixed(1.242e-08, 4) == "0.0000" and fixed(-1.242e-08, 4) == "-0.0000"
    assert fixed(0.00042, 6, signed=True) == "+0.000420" and fixed(None, 3) == "–"


def effect_row(category: str, verdict: str, **values) -> dict:
    row = {
        "sae": "res",
        "layer": 2,
        "category": category,
        "feature": 7,
        "mode": "zero",
        "n_in": 10,
        "n_out": 80,
        "verdict": verdict,
        "controls": "12",
    }
    keys = ["in_mean", "in_low", "in_high", "out_mean", "diff", "diff_low", "diff_high"]
    keys += ["ratio", "ratio_low", "ratio_high", "control_in_mean", "control_in_low"]
    keys += ["control_in_high", "control_out_mean", "vs_control", "vs_control_low"]
    keys += ["vs_control_high"]
    return {**row, **dict.fromkeys(keys), **values}


def test_causal_index_shows_the_deciding_intervals_in_one_format(browser, tmp_path):
    from sae_specialists.causal.pages import _index_page

    effects = pl.DataFrame(
        [
            effect_row(
                "python",
                "specific",
                in_mean=0.08842,
                in_low=0.061,
                in_high=0.1203,
                out_mean=1.242e-08,
                diff=0.08842,
                diff_low=0.061,
                diff_high=0.1203,
                ratio=None,
                control_in_mean=0.0004,
                vs_control=0.088,
                vs_control_low=0.0605,
                vs_control_high=0.1199,
                top1_changed_share=120 / 2144,
                top1_positions=2144,
            ),
            effect_row(
                "recipes",
                "detector only",
                in_mean=1.242e-08,
                in_low=-2.1e-08,
                in_high=4.4e-08,
                out_mean=3.1e-09,
                diff=9.3e-09,
                diff_low=-3e-08,
                diff_high=4e-08,
                ratio=4.0,
                ratio_low=0.2,
                ratio_high=9.1,
            ),
        ]
    )
    path = tmp_path / "causal.html"
    path.write_text(_index_page(effects, {"modes": "zero, mean"}), encoding="utf-8")
    page, errors, blocked = open_offline(browser, path)
    assert not errors and not blocked
    head = page.locator("table th").all_text_contents()
    for column in ("Δloss in [interval]", "in − control [interval]", "in − out [interval]"):
        assert column in head
    cells = page.locator("table tr").nth(1).locator("td").all_text_contents()
    assert cells[4] == "0.0884 [0.0610, 0.1203]"
    assert cells[6] == "0.0880 [0.0605, 0.1199]" and cells[7] == "0.0884 [0.0610, 0.1203]"
    rows = page.locator("table tr")
    numbers = []
    for i in range(1, rows.count()):
        for text in rows.nth(i).locator("td").all_text_contents()[4:8]:
            numbers += re.findall(r"-?\d+\.\d+(?:e-?\d+)?|–", text)
    assert "e" not in "".join(numbers)
    assert {len(n.split(".")[1]) for n in numbers if n != "–"} == {4}  # one format
    note = page.locator("p.note").first.inner_text()
    assert "–: not defined" in note and "in − control" in note
    # the detector-only row: no control found, no in/out interval: dashes, explained above
    second = rows.nth(2).locator("td").all_text_contents()
    assert second[6] == "–" and second[4] == "0.0000 [-0.0000, 0.0000]"
    # the share of the category's positions whose top-1 prediction the ablation changes
    assert cells[9] == "5.6% of 2,144" and second[9] == "–"
    shot(page, "table", "causal_index.png")
    page.close()


def test_logit_effects_show_significant_digits(browser, tmp_path):
    from sae_specialists.core.html import page as html_page
    from sae_specialists.dashboards.render import CSS, logits_tables

    effects = [0.00042, 0.00031, 0.00027, -0.00039, -0.00012, -0.000051]
    logits = pl.DataFrame(
        {
            "token_id": list(range(6)),
            "token_display": ["a", "b", "c", "x", "y", "z"],
            "effect": effects,
            "direction": ["positive"] * 3 + ["negative"] * 3,
            "rank": [1, 2, 3, 1, 2, 3],
        }
    )
    path = tmp_path / "logits.html"
    path.write_text(html_page("logits", [logits_tables(logits)], CSS), encoding="utf-8")
    page, errors, blocked = open_offline(browser, path)
    assert not errors and not blocked
    shown = [t.strip() for t in page.locator("table.logits td.num").all_text_contents()]
    assert shown == ["+0.000420", "+0.000310", "+0.000270", "-0.000390", "-0.000120", "-0.000051"]
    shot(page, ".cols", "logit_effects_small.png")
    page.close()


def test_single_layer_family_reads_as_one_layer():
    from sae_specialists.report.summary import build_summary

    strongest = pl.DataFrame(
        [
            {"sae": "wide", "layer": 2, "rank": 1, "feature": 3, "peak": 64.64},
            {"sae": "res", "layer": 0, "rank": 1, "feature": 3, "peak": 10.0},
            {"sae": "res", "layer": 2, "rank": 1, "feature": 4, "peak": 20.0},
        ]
    )
    frequent = strongest.drop("peak").with_columns(pl.lit(0.5).alias("coverage"))
    selective = strongest.with_columns(pl.lit(2).alias("n_above"))
    specialists = strongest.select("sae", "layer").with_columns(
        pl.lit("math").alias("category"),
        pl.lit(7).alias("feature"),
        pl.lit(2).alias("score"),
        pl.lit(True).alias("has_specialist"),
    )
    settings = {"aggregation": "mean", "include_bos": False, "threshold": 5.0, "candidates": 5}
    text = build_summary(
        strongest=strongest,
        frequent=frequent,
        selective=selective,
        specialists=specialists,
        texts=pl.DataFrame({"text_id": ["a"], "category": ["math"]}),
        settings=settings,
    ).to_markdown()
    wide = text.split("SAE family `wide`")[1]
    assert "One layer (2): peak activation 64.64" in wide
    assert "stays" not in wide and "1.00×" not in wide and " to 64.64" not in wide
    res = text.split("SAE family `res`")[1].split("SAE family")[0]
    assert "Peak activation rises from 10.00 at layer 0" in res and "(2.00×)" in res


def test_validation_summary_is_a_page(browser, tmp_path):
    from sae_specialists.validation.report import summary_page

    markdown = "\n".join(
        [
            "# Validation of the specialists",
            "",
            "3 of 4 cells have an in-sample specialist.",
            "",
            "| SAE | layer | category | verdict |",
            "|---|---|---|---|",
            "| res | 2 | python | generalises |",
            "| res | 2 | <script>recipes</script> | **not better than chance** |",
            "",
            "## Flagged cells",
            "",
            "- res layer 2, recipes: not better than chance",
        ]
    )
    path = tmp_path / "summary.html"
    path.write_text(summary_page(markdown), encoding="utf-8")
    page, errors, blocked = open_offline(browser, path)
    assert not errors and not blocked
    assert page.locator("h1").inner_text() == "Validation of the specialists"
    assert page.locator("table tbody tr").count() == 2
    flagged = page.locator("table tbody tr").nth(1).locator("td strong")
    assert flagged.inner_text() == "not better than chance"
    assert page.evaluate("getComputedStyle(document.querySelector('td strong')).color") == (
        "rgb(187, 0, 0)"
    )
    assert page.locator("script").count() == 0  # the category's text was escaped
    assert page.locator("li").inner_text() == "res layer 2, recipes: not better than chance"
    shot(page, "body", "validation_summary.png")
    page.close()

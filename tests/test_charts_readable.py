"""Charts a reader can read: checked in headless Chromium on small planted tables, with
screenshots kept under test-artifacts/ (issue 16, items 6 and 7).

- specialist score heatmap: cells with no specialist read "none" (never "0 (99%)");
- peak by layer and category: one titled panel per SAE, no facet header above it;
- threshold sweep: the two selection rules have different line dashes in the legend, the layer
  colours are far apart, and the short last row of category panels has no empty axis;
- AUROC / top-k heatmaps: every cell label has at least WCAG's 4.5:1 contrast with its cell.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import polars as pl
from browser import open_offline

from sae_specialists.analysis import charts as ch
from sae_specialists.methodology import charts as mc

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CATEGORIES = ["code", "formal", "math", "social", "urls", "emoji", "chat"]  # 7: short last row
LAYERS = [0, 1, 2, 3]


def render(browser, chart, name: str, tmp_path: Path):
    """Save ``chart`` (HTML + PNG) as a workflow job does (loading the shared Vega script from
    ``assets/vega/vega.js``), open it offline, keep a screenshot; return the page."""
    from sae_specialists.core.vega import write_chart_script

    html = tmp_path / "charts" / f"{name}.html"
    script = tmp_path / "assets" / "vega" / "vega.js"
    if not script.is_file():
        write_chart_script(script)
    ch.save_chart(chart, html, tmp_path / f"{name}.png", script=script)
    page, errors, blocked = open_offline(browser, html)
    page.wait_for_selector("#vis svg")
    assert not errors and not blocked, (errors, blocked)
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#vis svg").screenshot(path=str(ARTIFACTS / f"chart_{name}.png"))
    return page


def specialists_table() -> pl.DataFrame:
    rows = []
    for i, (cat, layer) in enumerate(itertools.product(CATEGORIES, LAYERS)):
        score = (i % 14) - 3  # -3 .. 10: cells without a specialist, all shades of blue
        rows.append(
            {
                "sae": "res",
                "layer": layer,
                "category": cat,
                "feature": None if i == 3 else 10 + i,
                "score": None if i == 3 else score,
                "n_in": 5,
                "n_out": 5 - score,
                "peak": 1.0,
                "has_specialist": i != 3 and score > 0,
                "stability": 0.99,
                "score_ci_low": score - 1,
                "score_ci_high": score + 1,
            }
        )
    return pl.DataFrame(rows)


def test_heatmap_cells_without_specialist_read_none(browser, tmp_path):
    spec = specialists_table()
    values = ch.specialist_heatmap(spec, "res").to_dict()["datasets"]
    (rows,) = values.values()
    labels = {(r["category"], r["layer"]): r["label"] for r in rows}
    for r in spec.iter_rows(named=True):
        want = f"{r['score']} (99%)" if r["has_specialist"] else "none"
        assert labels[(r["category"], r["layer"])] == want
    page = render(browser, ch.specialist_heatmap(spec, "res"), "specialist_scores", tmp_path)
    texts = page.locator("#vis svg g.mark-text.role-mark text").all_text_contents()
    assert texts.count("none") == spec.filter(~pl.col("has_specialist")).height
    assert not [t for t in texts if t.startswith(("0 (", "-"))]
    assert contrast_failures(page) == []


def test_peak_by_layer_category_has_no_facet_header(browser, tmp_path):
    peaks = pl.DataFrame(
        [
            {
                "sae": s,
                "layer": layer,
                "category": c,
                "feature": 1,
                "peak": float(layer + k),
                "text_id": "t",
            }
            for s in ("res", "mlp")
            for k, c in enumerate(CATEGORIES)
            for layer in LAYERS
        ]
    )
    page = render(browser, ch.peak_by_layer_category(peaks), "peak_by_layer_category", tmp_path)
    svg = page.locator("#vis svg")
    assert svg.locator("g.role-column-header, g.role-column-title").count() == 0
    titles = svg.locator("g.role-title-text text").all_text_contents()
    assert sorted(titles) == ["Peak activation by layer and category", "SAE mlp", "SAE res"]
    # no gap: the panel starts right under the chart title (240 px plot + axes + title)
    assert float(svg.get_attribute("height")) < 330


def sweep_table() -> pl.DataFrame:
    rows = []
    for rule, layer, t, cat in itertools.product(
        ("top_k", "all_features"), LAYERS, (0.5, 1.0, 5.0, 20.0), CATEGORIES
    ):
        found = int(t < 10) + layer + (rule == "all_features" and t < 1)
        rows.append(
            {
                "rule": rule,
                "sae": "res",
                "layer": layer,
                "threshold": t,
                "category": cat,
                "feature": 1,
                "score": int(10 - t) - layer,
                "n_in": 5,
                "n_out": 1,
                "specialists_found": found,
                "n_categories": len(CATEGORIES),
            }
        )
    return pl.DataFrame(rows)


def rgb(colour: str) -> tuple[int, int, int]:
    colour = colour.strip()
    if colour.startswith("#"):
        return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return tuple(int(float(x)) for x in colour[colour.index("(") + 1 : -1].split(",")[:3])


def test_threshold_sweep_rules_layers_and_panels(browser, tmp_path):
    page = render(browser, mc.sweep_chart(sweep_table(), 5.0), "threshold_sweep", tmp_path)
    svg = page.locator("#vis svg")
    legends = svg.locator("g.role-legend")
    by_title = {
        legends.nth(i).locator("g.role-legend-title text").text_content(): legends.nth(i)
        for i in range(legends.count())
    }
    assert set(by_title) == {"layer", "selection rule"}
    dashes = [
        p.get_attribute("stroke-dasharray") or "solid"
        for p in by_title["selection rule"].locator("g.role-legend-symbol path").all()
    ]
    assert len(dashes) == 2 and dashes[0] != dashes[1], dashes
    fills = [
        rgb(p.evaluate("e => getComputedStyle(e).fill"))
        for p in by_title["layer"].locator("g.role-legend-symbol path").all()
    ]
    assert len(fills) == len(LAYERS)
    closest = min(
        sum((x - y) ** 2 for x, y in zip(a, b, strict=True)) ** 0.5
        for a, b in itertools.combinations(fills, 2)
    )
    assert closest > 100, fills  # a sequential blue ramp has neighbours ~40 apart
    # one panel per category plus the top chart, each with its own x axis; nothing else
    x_titles = [
        t for t in svg.locator("g.role-axis-title text").all_text_contents() if t == "threshold"
    ]
    assert len(x_titles) == len(CATEGORIES) + 1
    assert svg.locator("g.role-column-footer").count() == 0


def luminance(c: tuple[int, int, int]) -> float:
    def channel(v: float) -> float:
        v /= 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in c)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_failures(page) -> list:
    """Cell labels whose contrast with the cell under them is below 4.5:1."""
    cells = page.evaluate(
        """() => [...document.querySelectorAll('#vis svg g.mark-rect.role-mark path')].map(e => {
             const r = e.getBoundingClientRect();
             return [r.left, r.top, r.right, r.bottom, getComputedStyle(e).fill]; })"""
    )
    labels = page.evaluate(
        """() => [...document.querySelectorAll('#vis svg g.mark-text.role-mark text')].map(e => {
             const r = e.getBoundingClientRect();
             return [(r.left + r.right) / 2, (r.top + r.bottom) / 2, getComputedStyle(e).fill,
                     e.textContent]; })"""
    )
    assert cells and labels
    bad = []
    for x, y, fill, text in labels:
        under = [c for c in cells if c[0] <= x <= c[2] and c[1] <= y <= c[3]]
        assert under, text
        lo, hi = sorted((luminance(rgb(fill)), luminance(rgb(under[-1][4]))))
        if (hi + 0.05) / (lo + 0.05) < 4.5:
            bad.append((text, fill, under[-1][4]))
    return bad


def test_auroc_and_topk_labels_are_readable(browser, tmp_path):
    auroc = pl.DataFrame(
        [
            {
                "sae": "res",
                "layer": layer,
                "category": c,
                "feature": 1,
                "score": 3,
                "auroc": 0.5 + 0.5 * ((k * 4 + layer) % 28) / 27,
                "mean_in": 1.0,
                "mean_out": 0.1,
                "best_auroc_feature": 2,
                "best_auroc": 1.0,
            }
            for k, c in enumerate(CATEGORIES)
            for layer in LAYERS
        ]
    )
    page = render(browser, mc.auroc_chart(auroc), "auroc", tmp_path)
    assert contrast_failures(page) == []
    allfeat = pl.DataFrame(
        [
            {
                "sae": "res",
                "layer": layer,
                "category": c,
                "topk_feature": 1,
                "topk_score": 2,
                "all_feature": 3,
                "all_score": 2 + (k + layer) % 6,
                "all_peak_rank": 7,
                "n_better": 1,
                "missed": True,
                "gained_specialist": False,
            }
            for k, c in enumerate(CATEGORIES)
            for layer in LAYERS
        ]
    )
    page = render(browser, mc.topk_chart(allfeat), "topk_vs_all", tmp_path)
    assert contrast_failures(page) == []


def test_dashboard_histogram_is_readable(browser, tmp_path):
    """The dashboard's activation histogram: a readable size, round ticks on both axes (it had
    labels at 0 and the max only)."""
    from sae_specialists.core.html import page
    from sae_specialists.dashboards.render import CSS, histogram_svg, nice_ticks

    assert nice_ticks(157.1) == [0, 50, 100, 150, 200]
    assert nice_ticks(72, 4) == [0, 20, 40, 60, 80]
    assert nice_ticks(0.37) == [0, 0.1, 0.2, 0.3, 0.4]
    edges = [157.1 * k / 40 for k in range(41)]
    counts = [0] * 34 + [9, 30, 72, 20, 5, 1]
    hist = pl.DataFrame(
        {
            "feature": [1] * 40,
            "bin": list(range(40)),
            "lo": edges[:-1],
            "hi": edges[1:],
            "count": counts,
        }
    )
    path = tmp_path / "hist.html"
    path.write_text(page("histogram", [histogram_svg(hist)], CSS), encoding="utf-8")
    page_, errors, blocked = open_offline(browser, path)
    svg = page_.locator("#histogram")
    box = svg.bounding_box()
    assert box["width"] >= 500 and box["height"] >= 200
    assert svg.locator("text.xtick").all_text_contents() == ["0", "50", "100", "150", "200"]
    assert svg.locator("text.ytick").all_text_contents() == ["0", "20", "40", "60", "80"]
    assert svg.locator("rect.hbar").count() == 40
    ARTIFACTS.mkdir(exist_ok=True)
    svg.screenshot(path=str(ARTIFACTS / "dashboard_histogram.png"))
    page_.close()


def boxes(page, selector: str) -> list[tuple[str, dict]]:
    """(text, bounding box) of every element matching ``selector`` inside the chart."""
    items = page.locator(f"#vis svg {selector}")
    return [
        (items.nth(i).text_content(), items.nth(i).bounding_box()) for i in range(items.count())
    ]


def overlapping(items: list[tuple[str, dict]]) -> list[tuple[str, str]]:
    """Pairs of boxes that overlap by more than a pixel each way."""
    out = []
    for (ta, a), (tb, b) in itertools.combinations(items, 2):
        dx = min(a["x"] + a["width"], b["x"] + b["width"]) - max(a["x"], b["x"])
        dy = min(a["y"] + a["height"], b["y"] + b["height"]) - max(a["y"], b["y"])
        if dx > 1 and dy > 1:
            out.append((ta, tb))
    return out


def test_specialists_found_labels_do_not_overlap(browser, tmp_path):
    """Five SAE families side by side (the demo: two of them at one layer only): each bar's
    label is readable on its own (neighbouring bars of equal height read "0/90/9")."""
    found = pl.DataFrame(
        [
            {"sae": s, "layer": layer, "found": 9 if layer == 2 else 0, "n_categories": 9}
            for s in ("attn", "mlp", "res", "res_narrow", "res_wide")
            for layer in LAYERS
            if layer == 2 or not s.startswith("res_")
        ]
    )
    page = render(browser, ch.specialists_found_chart(found), "specialists_found", tmp_path)
    labels = boxes(page, "g.mark-text.role-mark text")
    assert len(labels) == found.height
    assert overlapping(labels) == []
    # each label sits over its own bar
    bars = boxes(page, "g.mark-rect.role-mark path")
    assert len(bars) == found.height
    for text, box in labels:
        centre = box["x"] + box["width"] / 2
        assert any(b["x"] - 1 <= centre <= b["x"] + b["width"] + 1 for _, b in bars), text


PAGE_WIDTH = 1150  # CSS px of analysis.html's content column: a wider chart is shrunk there


def validation_cells() -> pl.DataFrame:
    """The demo's shape: 9 categories x 4 layers, six baselines; every fifth cell has no
    specialist (its folds' all-zero score gives held-out AUROC 0.5)."""
    rows = []
    for i, (cat, layer) in enumerate(itertools.product([*CATEGORIES, "poetry", "x"], LAYERS)):
        has = i % 5 != 0
        rows.append(
            {
                "sae": "res",
                "layer": layer,
                "category": cat,
                "has_specialist": has,
                "heldout_auroc": 0.9 if has else 0.5,
                "floor_auroc": 0.55,
                "diffmean_auroc": 0.95,
                "dense_probe_auroc": 0.97,
                **{f"ksparse_{k}_auroc": 0.8 + k / 100 for k in (1, 2, 5, 20)},
                "verdict": "generalises" if has else "no specialist",
            }
        )
    return pl.DataFrame(rows)


def test_heldout_chart_has_no_bar_without_a_specialist_and_fits_the_page(browser, tmp_path):
    """Cells without a specialist: no bar (a 0.5 bar read as measured chance) but the words
    "no specialist"; the whole chart fits analysis.html's column (its thumbnail was shrunk to
    an unreadable size)."""
    from sae_specialists.validation import charts as vc

    cells = validation_cells()
    page = render(browser, vc.heldout_chart(cells, "res"), "heldout_auroc", tmp_path)
    svg = page.locator("#vis svg")
    assert float(svg.get_attribute("width")) <= PAGE_WIDTH
    bars = svg.locator("g.mark-rect.role-mark path")
    labels = [bars.nth(i).get_attribute("aria-label") or "" for i in range(bars.count())]
    specialist = [a for a in labels if f"series: {vc.SPECIALIST}" in a]
    assert len(specialist) == cells["has_specialist"].sum()
    assert not [a for a in specialist if "auroc: 0.5" in a.replace("0.50", "0.5")]
    texts = svg.locator("g.mark-text.role-mark text").all_text_contents()
    assert texts.count("no specialist") == (~cells["has_specialist"]).sum()


def test_peak_by_layer_category_fits_the_page(browser, tmp_path):
    """The demo's five SAE families side by side were 2,000 px wide: its thumbnail in
    analysis.html was unreadable. Panels now wrap into rows that fit the page."""
    peaks = pl.DataFrame(
        [
            {"sae": s, "layer": layer, "category": c, "feature": 1, "peak": 1.0 + k, "text_id": "t"}
            for s in ("attn", "mlp", "res", "res_narrow", "res_wide")
            for k, c in enumerate([*CATEGORIES, "poetry", "x"])
            for layer in (LAYERS if not s.startswith("res_") else [2])
        ]
    )
    page = render(browser, ch.peak_by_layer_category(peaks), "peak_by_layer_category_5", tmp_path)
    svg = page.locator("#vis svg")
    assert float(svg.get_attribute("width")) <= PAGE_WIDTH
    titles = svg.locator("g.role-title-text text").all_text_contents()
    assert sorted(t for t in titles if t.startswith("SAE ")) == [
        "SAE attn",
        "SAE mlp",
        "SAE res",
        "SAE res_narrow",
        "SAE res_wide",
    ]

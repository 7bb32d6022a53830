"""Light pages whatever the corpus (issue 26, items 3 and 4): one shared, vendored Vega script
that every chart page loads (offline, no CDN); token views whose tokens are compact items drawn
by a small script into exactly the spans the server-side renderer writes; the demo's page weight
within its targets; analysis.html's chart images at a readable size.

The demo tests only read the shared demo run; the unit tests build small pages."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import polars as pl
import pytest
from browser import open_offline

from sae_specialists.analysis import charts as ch
from sae_specialists.core import vega
from sae_specialists.core.html import (
    TOKEN_DRAW_JS,
    TOKEN_JS,
    Tok,
    page,
    token_items,
    tokens_html,
    tokens_json,
)

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
VEGA_DIR = Path(vega.__file__).resolve().parents[1] / "assets" / "vega"
DEMO_HTML_BUDGET = 15_000_000  # bytes of HTML the demo may write in all (issue 26)
PAGE_BUDGET = 2_000_000  # bytes one page may have, whatever the corpus size
SCRIPT_SRC = re.compile(r'<script src="([^"]+)"')


# -- the vendored script ---------------------------------------------------------------------
def test_vendored_builds_match_their_readme_and_the_png_renderer():
    """The hashes and versions in assets/vega/README.md are the files'; the versions are the ones
    vl-convert draws the PNGs with, and Altair's Vega-Lite (so HTML and PNG agree)."""
    import altair as alt
    import vl_convert

    readme = (VEGA_DIR / "README.md").read_text(encoding="utf-8")
    for pkg, version, name, licence in vega.VENDORED:
        digest = hashlib.sha256((VEGA_DIR / name).read_bytes()).hexdigest()
        assert (
            f"| `{name}` | {pkg} | {version} | BSD-3-Clause (`{licence}`) | `{digest}` |" in readme
        )
        assert "Redistribution and use" in (VEGA_DIR / licence).read_text(encoding="utf-8")
    assert vega.VERSIONS["vega"] == vl_convert.get_vega_version()
    assert vega.VERSIONS["vega-embed"] == vl_convert.get_vega_embed_version()
    assert vega.VERSIONS["vega-lite"] == alt.VEGALITE_VERSION


def test_chart_page_loads_the_shared_script_and_renders_offline(browser, tmp_path):
    """A chart page is a few KB and draws with the network disabled; without the shared script
    it says what is missing instead of staying blank."""
    script = tmp_path / "assets" / "vega" / "vega.js"
    vega.write_chart_script(script)
    text = script.read_text(encoding="utf-8")
    assert all(f"{pkg} {version}" in text for pkg, version, _, _ in vega.VENDORED)
    assert "sourceMappingURL" not in text
    assert "University of Washington" in (script.parent / "LICENSES.txt").read_text()
    peaks = pl.DataFrame(
        {"sae": ["res"] * 2, "layer": [0, 1], "rank": [1, 1], "feature": [3, 4]}
        | {"peak": [1.0, 3.0], "text_id": ["a", "b"], "category": ["x", "y"]}
    )
    html = tmp_path / "charts" / "peak.html"
    ch.save_chart(ch.peak_by_layer(peaks), html, tmp_path / "peak.png", script=script)
    source = html.read_text(encoding="utf-8")
    assert SCRIPT_SRC.findall(source) == ["../assets/vega/vega.js"]
    assert len(source.encode()) < 20_000
    page_, errors, blocked = open_offline(browser, html)
    page_.wait_for_selector("#vis svg")
    assert not errors and not blocked, (errors, blocked)
    page_.close()
    script.unlink()
    page_, errors, blocked = open_offline(browser, html)
    assert "shared Vega script" in page_.locator("#vis").inner_text()
    page_.close()


# -- token views -----------------------------------------------------------------------------
def mixed_tokens() -> list[Tok]:
    """BOS (a label and a note), plain and active tokens, whitespace-only and newline tokens,
    a character split over two tokens, a gap in the positions."""
    raws = [b"<bos>", b"x", b" =", b" ", b"\n", b"a\tb", b"\xe4\xb8", b"\xad", b"&<"]
    raws += [b"\xe2", b"\x82", b"\xac", b"z"]  # a character over three tokens, then a gap
    positions = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 15]
    acts = [0.0, 0.0, 3.25, 0.0, 1.0, 0.0, 2.0, 0.5, 0.0, 1.0, 6.5, 0.25, 7.0]
    toks = []
    for i, (raw, pos, act) in enumerate(zip(raws, positions, acts, strict=True)):
        bos = i == 0
        toks.append(
            Tok(
                raw=raw,
                pos=pos,
                act=act,
                alpha=0.0 if bos else act / 7,
                classes=("bos",) if bos else (),
                label="⟨BOS⟩" if bos else None,
                note="BOS (not counted)" if bos else "",
            )
        )
    return toks


def test_token_items_draw_the_same_spans_as_tokens_html(browser, tmp_path):
    """The compact items a token view carries are drawn into exactly the elements (classes,
    attributes, text, hover line and tooltip) that tokens_html writes."""
    toks = mixed_tokens()
    body = [
        '<div id="info"></div>',
        f'<div class="text" id="server">{tokens_html(toks)}</div>',
        '<div class="text" id="drawn" data-items="0"></div>',
        tokens_json([token_items(toks)]),
    ]
    path = tmp_path / "tokens.html"
    path.write_text(page("tokens", body, "", TOKEN_DRAW_JS + TOKEN_JS), encoding="utf-8")
    page_, errors, blocked = open_offline(browser, path)
    assert not errors and not blocked, (errors, blocked)
    read = """id => [...document.querySelectorAll('#' + id + ' > .tok')].map(e =>
        [e.outerHTML, e.title])"""
    server, drawn = page_.evaluate(read, "server"), page_.evaluate(read, "drawn")
    assert len(server) == 10  # each split character is one span
    assert drawn == server
    titles = [t for _, t in server]
    assert titles[0].endswith("BOS (not counted)")
    assert titles[2] == "token ␣= · position 2 · activation 3.2500"
    assert titles[4] == "token ↵ · position 4 · activation 1.0000"
    assert "position 6 · activation 2.0000  |  token \\xad · position 7" in titles[6]
    assert "33.33% 66.67%" in server[8][0]  # the three tokens' shades left to right
    assert titles[9] == "token z · position 15 · activation 7.0000"  # after the gap
    page_.locator("#drawn .tok").nth(2).hover()
    assert page_.locator("#info").inner_text() == "token ␣= · position 2 · activation 3.2500"
    page_.close()


def test_a_token_view_holds_samples_never_the_category(tmp_path):
    """1,000 texts per category make the same page as 10: the samples (n_samples per category)
    are chosen by the specialist's value, the rest stay in the per-text table."""
    from sae_specialists.analysis.tokenview import N_SAMPLES, select_samples

    for n in (10, 1000):
        texts = pl.DataFrame(
            {
                "text_id": [f"{c}{i}" for c in "ab" for i in range(n)],
                "category": [c for c in "ab" for _ in range(n)],
                "text_order": list(range(2 * n)),
            }
        )
        values = pl.DataFrame(
            {"text_id": texts["text_id"], "value": [float(i % 97) for i in range(2 * n)]}
        ).with_columns(pl.col("value").alias("max"))
        samples = select_samples(values, texts)
        assert samples.height == 2 * N_SAMPLES
        top = values.join(texts, on="text_id").sort("value", descending=True)
        for c in "ab":
            best = top.filter(pl.col("category") == c)["value"].head(N_SAMPLES).to_list()
            got = samples.filter(pl.col("category") == c).sort("sample_rank")["value"].to_list()
            assert got == best


# -- the demo --------------------------------------------------------------------------------
def html_pages(results: Path) -> list[Path]:
    return [p for p in results.rglob("*.html") if "assets" not in p.relative_to(results).parts]


def test_demo_page_weight_within_budget(demo_run):
    """The demo's HTML in all ≤ 15 MB (it was 86 MB) and no page over 2 MB; every chart page
    loads the one shared script instead of inlining ~0.9 MB of Vega; token views are light."""
    results = demo_run.results
    pages = html_pages(results)
    sizes = {p: p.stat().st_size for p in pages}
    total, largest = sum(sizes.values()), max(sizes.values())
    assert total <= DEMO_HTML_BUDGET, (total, len(pages))
    assert largest <= PAGE_BUDGET, max(sizes, key=sizes.get)
    script = results / "assets" / "vega" / "vega.js"
    assert script.is_file() and (script.parent / "LICENSES.txt").is_file()
    charts = [p for p in pages if "vegaEmbed(" in p.read_text(encoding="utf-8")]
    assert len(charts) >= 20
    for chart in charts:
        text = chart.read_text(encoding="utf-8")
        srcs = SCRIPT_SRC.findall(text)
        assert [(chart.parent / s).resolve() for s in srcs] == [script.resolve()], chart
        assert "vegaLite" not in text, chart  # no inlined bundle (only the chart's spec)
    views = list((results / "token_views").rglob("*.html"))
    assert views and max(sizes[v] for v in views) < 200_000


def test_demo_charts_render_offline(demo_run, browser):
    """Every chart page of the demo draws its SVG with the network disabled."""
    charts = [
        p for p in html_pages(demo_run.results) if "vegaEmbed(" in p.read_text(encoding="utf-8")
    ]
    page_, errors, blocked = open_offline(browser, charts[0])
    for chart in charts:  # one tab, network blocked throughout (its route stays)
        page_.goto(chart.resolve().as_uri(), wait_until="load")
        page_.wait_for_selector("#vis svg", timeout=20_000)
        assert not errors and not blocked, (chart, errors, blocked)
    page_.close()


def test_demo_analysis_page_shows_charts_at_a_readable_size(demo_run, browser):
    """analysis.html shows each chart's PNG at (nearly) the size its page draws it: the
    thumbnails of the wide charts (peak by layer and category, held-out AUROC) were shrunk to
    a third, their labels unreadable."""
    page_, errors, blocked = open_offline(
        browser, demo_run.results / "analysis.html", viewport=(1300, 900)
    )
    assert not errors and not blocked, (errors, blocked)
    page_.wait_for_function(
        "() => [...document.querySelectorAll('.chart img')].every(i => i.complete)"
    )
    shown = page_.evaluate(
        """() => [...document.querySelectorAll('.chart img')].map(i =>
            [i.getAttribute('src'), i.clientWidth, i.naturalWidth / 2])"""
    )
    assert len(shown) >= 8
    small = [(src, w, natural) for src, w, natural in shown if w < 0.8 * natural]
    assert small == []
    ARTIFACTS.mkdir(exist_ok=True)
    page_.locator("#charts").screenshot(path=str(ARTIFACTS / "analysis_charts.png"))
    page_.close()


@pytest.mark.parametrize(
    "chart",
    [
        "charts/peak_by_layer_category.png",
        "charts/specialists_found.png",
        "validation/charts/heldout_auroc_sae=res.png",
    ],
)
def test_demo_wide_charts_fit_the_page(demo_run, chart):
    """The charts whose thumbnails were unreadable fit analysis.html's column at full size."""
    png = demo_run.results / chart
    width = int.from_bytes(png.read_bytes()[16:20], "big") / 2
    assert width <= 1150, width


REPORT_BUDGET = 20_000_000  # bytes of `snakemake --report` on the demo (issue 26)
REPORT_CATEGORIES = (
    "Summary",
    "Analysis",
    "Feature dashboards",
    "Methodology",
    "Validation",
    "Causal check",
    "Comparison",
    "What specialists detect",
)


def test_demo_snakemake_report_covers_every_stage_within_budget(demo_run, tmp_path):
    """`snakemake --report` embeds every stage's charts (PNG) and pages with captions, and links
    the token views and dashboards instead of embedding them: ≤ 20 MB (it was 120 MB)."""
    report = tmp_path / "report.html"
    demo_run.snakemake("--report", str(report), timeout=600)
    text = report.read_text(encoding="utf-8")
    assert report.stat().st_size <= REPORT_BUDGET, report.stat().st_size
    for category in REPORT_CATEGORIES:
        assert category in text, category
    assert "analysis.html" in text  # the summary's caption links the token views' grid
    embedded = re.findall(r'"([^"]+\.html)": \{"name', text)
    assert any("causal/pages/" in path for path in embedded)
    assert not [p for p in embedded if "token_views/" in p or "dashboards/sae=" in p]

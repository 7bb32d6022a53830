"""The analysis rules run through Snakemake on hand-made shards (shards made elsewhere, no model):
outputs, rerun scope of a threshold change, the Snakemake report, and the pages in a real
headless browser with the network blocked."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from browser import open_offline
from test_analysis_fixture import Fixture

ROOT = Path(__file__).resolve().parents[1]
ANALYSIS_SMK = ROOT / "workflow" / "rules" / "analysis.smk"
REPORT_SMK = ROOT / "workflow" / "rules" / "report.smk"  # results_dir/index.html, the run map
ARTIFACTS = ROOT / "test-artifacts"

HARNESS = textwrap.dedent(
    """
    # Stand-in for workflow/rules/common.smk: the settings, layout and helpers analysis.smk uses.
    from sae_specialists.core.layout import Layout
    from sae_specialists.core.settings import load_settings, schema_path

    S = load_settings(
        {{
            "model": {{"name": "harness"}},
            "saes": {{f: {{"path": "unused/layer{{layer}}"}} for f in config["families"]}},
            "layers": config["layers"],
            "texts": "texts",
            "analysis": {{
                k: config[k] for k in ("aggregation", "threshold", "candidates", "include_bos")
            }},
        }},
        schema_path(),
    )
    L = Layout.of(config["results_dir"], config["families"], config["layers"],
                  config["categories"], config["chunks"])
    FAMILIES = L.families


    def analysis_needs():
        return [*L.tokens(), *L.all_activations(), L.texts, *L.all_per_text()]

    wildcard_constraints:
        category="[A-Za-z0-9_-]+",
        family="[A-Za-z0-9_-]+",
        layer=r"\\d+",

    include: "{smk}"

    rule all:
        input: L.analysis_outputs(), L.index
        default_target: True

    include: "{report_smk}"
    """
)

CATS = {"code": 3, "math": 2, "prose": 3}
TOKENS = {
    "code": ["def", " f", "(x", "):", "\n", "\t", "return", " x", " <", "/script>"],
    "math": [" 1", " +", " 2", " =", " 3", " ^", " x"],
    "prose": [" The", " cat", " sat", " on", " the", " mat", ".", " é", " 😀", "  "],
}
BOS_ONLY = 9  # fires on BOS only; must never appear in any analysis output


def build_fixture(layer: int) -> Fixture:
    rng = np.random.default_rng(layer)
    d = 12
    fx = Fixture(d_sae=d)
    for ci, (cat, n) in enumerate(CATS.items()):
        for j in range(n):
            toks = TOKENS[cat]
            a = np.zeros((len(toks) + 1, d), np.float32)
            a[1:, 0] = 1.0  # a general feature on every counted token: coverage 100%
            a[1:, 1 + ci] = 6.0 + layer + j  # planted specialist of the category
            if j == 0:
                a[1:, 5] = rng.random(len(toks)) * (2 + ci)  # noise on some texts
            a[0, BOS_ONLY] = 80.0
            fx.add(f"{cat}-{j}", cat, a, ["<|endoftext|>"] + toks)
    return fx


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", "Snakefile", "--cores", "2", *args]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=300)
    if check and proc.returncode:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    work = tmp_path_factory.mktemp("analysis_wf")
    harness = HARNESS.format(smk=ANALYSIS_SMK.as_posix(), report_smk=REPORT_SMK.as_posix())
    (work / "Snakefile").write_text(harness)
    cfg = {
        "results_dir": "results",
        "categories": list(CATS),
        "families": ["res"],
        "layers": [3, 7],
        "aggregation": "mean",
        "threshold": 8.5,
        "candidates": 3,
        "include_bos": False,
        # shards per category (chunks of 2 texts)
        "chunks": {c: -(-n // 2) for c, n in CATS.items()},
    }
    (work / "config.yaml").write_text(json.dumps(cfg))
    for layer in cfg["layers"]:
        fx = build_fixture(layer)
        fx.write(
            work / "results",
            "res",
            layer,
            neuronpedia_id=f"gpt2-small/{layer}-res-jb",
            chunk_size=2,
        )
    snakemake(work, "--configfile", "config.yaml")
    return work


def test_outputs_and_planted_specialists(run):
    res = run / "results"
    spec = pl.read_parquet(res / "tables" / "specialists.parquet")
    assert spec.height == 2 * 3
    # planted: category i -> feature 1 + i; per-text value = 6 + layer + j (every counted
    # token); threshold 8.5: layer 3 -> j >= ... values 9, 10, 11 (code), 9, 10 (math) ...
    for row in spec.iter_rows(named=True):
        ci = list(CATS).index(row["category"])
        assert row["feature"] == 1 + ci
        n = CATS[row["category"]]
        expected_in = sum(6 + row["layer"] + j > 8.5 for j in range(n))
        assert (row["n_in"], row["n_out"], row["score"]) == (expected_in, 0, expected_in)
    assert (
        spec.filter(pl.col("sae") == "res")["neuronpedia_url"]
        .str.starts_with("https://www.neuronpedia.org/gpt2-small/")
        .all()
    )
    frequent = pl.read_parquet(res / "tables" / "frequent.parquet").filter(pl.col("rank") == 1)
    assert frequent["feature"].to_list() == [0] * 2 and frequent["coverage"].to_list() == [1.0] * 2
    strongest = pl.read_parquet(res / "tables" / "strongest.parquet").filter(pl.col("rank") == 1)
    assert set(strongest["feature"].to_list()) == {1}  # code-2: 6 + layer + 2, the largest
    for table in (res / "tables").glob("*.parquet"):
        df = pl.read_parquet(table)
        assert BOS_ONLY not in df["feature"].drop_nulls().to_list(), table
        assert (res / "tables" / f"{table.stem}.csv").exists()
    summary = (res / "summary.md").read_text()
    assert "Peak activation rises" in summary and "layer 3: 3/3" in summary
    # index.html is the run map; the analysis page it links lists the analysis outputs.
    index = (res / "index.html").read_text() + (res / "analysis.html").read_text()
    assert '"analysis.html"' in index
    for path in res.rglob("*"):
        rel = path.relative_to(res).as_posix()
        if path.suffix in {".csv", ".html", ".png"} and rel not in {"index.html", "analysis.html"}:
            assert f'"{rel}"' in index, rel
    for html in (res / "charts").glob("*.html"):
        text = html.read_text()
        assert not re.search(r"<script[^>]+src=[\"']?https?:", text), html
    page = (res / "token_views" / "sae=res" / "layer=3" / "code.html").read_text()
    assert "&lt;" in page and "/script&gt;" in page
    assert (
        "↵" in page and "⇥" in page and "https://www.neuronpedia.org/gpt2-small/3-res-jb/1" in page
    )


def test_token_view_escaping_and_samples(run):
    page = (run / "results" / "token_views" / "sae=res" / "layer=7" / "math.html").read_text()
    body = page.split('<div id="info">')[1]
    assert body.count("<script>") == 1  # only the page's own script; the token was escaped
    assert "/script&gt;" in body
    # every category has sample texts; the specialist's own category first and marked
    sections = re.findall(r'<section data-category="([^"]+)">', page)
    assert sections == ["math", "code", "prose"]
    assert "specialist&#x27;s category" in page or "specialist's category" in page
    assert page.count('class="sample"') == 2 * 3
    assert 'href="https://www.neuronpedia.org/gpt2-small/7-res-jb/2"' in page
    assert 'title="&#x27;😀&#x27;' in page or "😀" in page


def test_threshold_change_reruns_only_analysis_rules(run):
    work = run
    per_text = work / "results" / "per_text" / "sae=res" / "layer=3.parquet"
    mtime = per_text.stat().st_mtime_ns
    dry = snakemake(work, "--configfile", "config.yaml", "-n", "--config", "threshold=9.5")
    jobs = dict(re.findall(r"^(analysis_\w+|all)\s+(\d+)\s*$", dry.stdout, flags=re.M))
    assert set(jobs) == {
        "all",
        "analysis_specialist_tables",
        "analysis_specialist_charts",
        "analysis_token_views",  # token views of every layer: one job
        "analysis_report",  # summary.md and analysis.html
    }, dry.stdout
    before = pl.read_parquet(work / "results" / "tables" / "specialists.parquet")
    snakemake(work, "--configfile", "config.yaml", "--config", "threshold=9.5")
    after = pl.read_parquet(work / "results" / "tables" / "specialists.parquet")
    assert per_text.stat().st_mtime_ns == mtime
    for b, a in zip(before.iter_rows(named=True), after.iter_rows(named=True), strict=True):
        n = CATS[a["category"]]
        assert a["score"] == sum(6 + a["layer"] + j > 9.5 for j in range(n))
        assert a["feature"] == b["feature"]
    assert after["threshold"].unique().to_list() == [9.5]
    # aggregation changes per-text values: per-text rules rerun as well
    dry = snakemake(
        work, "--configfile", "config.yaml", "-n", "--config", "threshold=9.5", "aggregation=max"
    )
    assert re.search(r"^analysis_per_text\s+2\s*$", dry.stdout, flags=re.M), dry.stdout


def test_snakemake_report(run):
    out = run / "report.html"
    snakemake(run, "--configfile", "config.yaml", "--config", "threshold=9.5", "--report", str(out))
    assert out.exists() and out.stat().st_size > 10_000


# -- headless browser -------------------------------------------------------------------------

# the session's `browser` fixture (tests/conftest.py) and the offline loader (tests/browser.py)


def test_pages_render_offline(run, browser):
    res = run / "results"
    ARTIFACTS.mkdir(exist_ok=True)
    charts = sorted((res / "charts").glob("*.html"))
    assert len(charts) == 5
    for chart in charts:
        page, errors, blocked = open_offline(browser, chart)
        page.wait_for_selector("#vis svg, #vis canvas", timeout=15_000)
        box = page.locator("#vis svg, #vis canvas").first.bounding_box()
        assert box and box["width"] > 50 and box["height"] > 50, chart
        assert (
            page.locator("#vis svg .mark-rect, #vis svg .mark-line, #vis svg .mark-symbol").count()
            > 0
        ), chart
        assert not errors, (chart, errors)
        assert not blocked, (chart, blocked)
        if chart.stem.startswith("specialist_scores"):
            page.screenshot(path=str(ARTIFACTS / f"chart_{chart.stem}.png"))
        page.close()

    view = res / "token_views" / "sae=res" / "layer=7" / "code.html"
    page, errors, blocked = open_offline(browser, view)
    assert page.locator("span.tok").count() > 20
    shaded = page.locator("span.tok[style*='rgba']")
    assert shaded.count() > 0
    shaded.first.hover()
    assert "activation" in page.locator("#info").inner_text()
    assert page.locator("span.tok").first.get_attribute("title")
    page.screenshot(path=str(ARTIFACTS / "token_view.png"), full_page=True)
    assert not errors and not blocked, (errors, blocked)
    page.close()

    page, errors, blocked = open_offline(browser, res / "index.html")
    assert page.locator("a[href='analysis.html']").count() >= 1  # the map links the analysis
    assert not errors and not blocked, (errors, blocked)
    page.close()

    page, errors, blocked = open_offline(browser, res / "analysis.html")
    assert page.locator("img").count() == 5
    assert all(page.evaluate("(i) => document.images[i].naturalWidth", i) > 0 for i in range(5))
    page.screenshot(path=str(ARTIFACTS / "analysis.png"), full_page=True)
    assert not errors and not blocked, (errors, blocked)
    page.close()

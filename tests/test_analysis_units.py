"""Small units of the analysis package: no torch import, Neuronpedia links, token rendering,
Markdown/HTML escaping, chart HTML self-containment."""

from __future__ import annotations

import re
import subprocess
import sys

import polars as pl

from sae_specialists.analysis import neuronpedia
from sae_specialists.core.html import token_html
from sae_specialists.report import doc

MODULES = [
    "sae_specialists.analysis",
    "sae_specialists.analysis.charts",
    "sae_specialists.analysis.bootstrap",
    "sae_specialists.analysis.dense",
    "sae_specialists.analysis.entry",
    "sae_specialists.analysis.neuronpedia",
    "sae_specialists.analysis.pertext",
    "sae_specialists.analysis.selection",
    "sae_specialists.analysis.shards",
    "sae_specialists.analysis.tables",
    "sae_specialists.analysis.tokenview",
    "sae_specialists.core.layout",
    "sae_specialists.report.doc",
    "sae_specialists.report.entry",
    "sae_specialists.report.index",
    "sae_specialists.report.summary",
]


def test_analysis_never_imports_torch():
    code = (
        "import importlib, sys\n"
        f"for m in {MODULES!r}: importlib.import_module(m)\n"
        "import sae_specialists.analysis.charts as c; import altair\n"
        "bad = sorted(m for m in ('torch', 'transformer_lens', 'sae_lens') if m in sys.modules)\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


_RERUN_JOBS = """
import sys
from types import SimpleNamespace as NS
from sae_specialists.analysis import entry
d = sys.argv[1]
class Out(dict):
    __getattr__ = dict.__getitem__
tables = Out({n + s: f"{d}/{n}{s and '.csv' or '.parquet'}"
              for n in ("selective", "candidates", "specialists") for s in ("", "_csv")})
params = NS(threshold=0.5, candidates=3, resamples=20, seed=0, ci=0.9)
entry.specialist_tables(NS(input=NS(per_text=[f"{d}/pt.parquet"], texts=f"{d}/texts.parquet"),
                           output=tables, params=params, log=[]))
entry.specialist_charts(NS(input=NS(specialists=tables["specialists"]),
                           output=NS(found_html=f"{d}/f.html", found_png=f"{d}/f.png",
                                     heatmap_html=[f"{d}/h_sae=res.html"],
                                     heatmap_png=[f"{d}/h_sae=res.png"]),
                           params=NS(families=["res"]), log=[]))
bad = sorted(m for m in ("pyarrow", "torch", "transformer_lens", "sae_lens") if m in sys.modules)
print(bad); sys.exit(1 if bad else 0)
"""


def test_threshold_rerun_jobs_never_import_pyarrow(tmp_path):
    """The two jobs on a threshold-only rerun's critical path (specialist tables, specialist
    charts) read and write Parquet with polars alone: importing pyarrow costs ~0.2 s per job."""
    from sae_specialists.core.io import write_parquet

    texts = pl.DataFrame(
        {
            "text_id": ["a", "b", "c", "d"],
            "category": ["x", "x", "y", "y"],
            "text_order": [0, 1, 2, 3],
            "n_positions": [3] * 4,
            "n_counted": [2] * 4,
        }
    )
    write_parquet(texts, tmp_path / "texts.parquet", {"include_bos": False})
    per_text = pl.DataFrame(
        {
            "text_id": ["a", "b", "c", "d"],
            "category": ["x", "x", "y", "y"],
            "feature": [7, 7, 9, 9],
            "value": [2.0, 1.0, 3.0, 1.5],
            "max": [2.0, 1.0, 3.0, 1.5],
        },
        schema_overrides={"feature": pl.Int32},
    )
    write_parquet(per_text, tmp_path / "pt.parquet", {"sae": "res", "layer": 6})
    proc = subprocess.run(
        [sys.executable, "-c", _RERUN_JOBS, str(tmp_path)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    spec = pl.read_parquet(tmp_path / "specialists.parquet").sort("category")
    assert spec.select("category", "feature", "score").rows() == [("x", 7, 2), ("y", 9, 2)]
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


def test_neuronpedia_links():
    assert neuronpedia.feature_url("gpt2-small/6-res-jb", 22917) == (
        "https://www.neuronpedia.org/gpt2-small/6-res-jb/22917"
    )
    assert neuronpedia.feature_url(None, 3) is None
    assert neuronpedia.feature_url("x", None) is None
    df = pl.DataFrame(
        {"sae": ["res", "res", "local"], "layer": [6, 6, 6], "feature": [1, None, 2]},
        schema={"sae": pl.String, "layer": pl.Int64, "feature": pl.Int32},
    )
    out = neuronpedia.add_url_column(df, {("res", 6): "gpt2-small/6-res-jb", ("local", 6): None})
    assert out["neuronpedia_url"].to_list() == [
        "https://www.neuronpedia.org/gpt2-small/6-res-jb/1",
        None,
        None,
    ]


def test_render_token_escapes_and_shows_whitespace():
    # one token renderer for token views and dashboards (core.html), one space glyph: ␣
    assert token_html("<b>&") == "&lt;b&gt;&amp;"
    assert token_html("\n") == '<span class="ws">↵</span>\n'
    assert token_html("  ") == '<span class="ws">␣</span>' * 2
    assert token_html("\t") == '<span class="ws">⇥</span>\t'
    assert token_html(" x") == " x"
    assert "∅" in token_html("")


def test_doc_escaping():
    d = doc.Doc()
    d.p("a <b> | c*", doc.link("#5", "https://x.org/a?b=1&c=2"), doc.link("#6", None))
    md = d.to_markdown()
    assert r"a \<b\> \| c\*" in md and "[#5](https://x.org/a?b=1&c=2)" in md and "#6" in md
    html = d.to_html()
    assert "a &lt;b&gt; | c*" in html and 'href="https://x.org/a?b=1&amp;c=2"' in html


def test_chart_html_is_self_contained(tmp_path):
    from sae_specialists.analysis import charts

    df = pl.DataFrame(
        {
            "sae": ["res", "res"],
            "layer": [6, 8],
            "rank": [1, 1],
            "feature": [3, 4],
            "peak": [1.0, 3.0],
            "text_id": ["a", "b"],
            "category": ["x", "y"],
        }
    )
    charts.save_chart(charts.peak_by_layer(df), tmp_path / "c.html", tmp_path / "c.png")
    text = (tmp_path / "c.html").read_text()
    assert not re.search(r"<script[^>]+src=", text)
    assert "vegaEmbed" in text and len(text) > 100_000
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the spec is built once for both formats: the files are exactly what chart.save writes
    chart = charts.peak_by_layer(df)
    chart.save(str(tmp_path / "ref.html"), format="html", inline=True, embed_options=charts.EMBED)
    chart.save(str(tmp_path / "ref.png"), format="png", scale_factor=2)
    assert (tmp_path / "c.html").read_bytes() == (tmp_path / "ref.html").read_bytes()
    assert (tmp_path / "c.png").read_bytes() == (tmp_path / "ref.png").read_bytes()

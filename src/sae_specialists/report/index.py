"""results/analysis.html: the analysis page (summary, charts, tables, token views); index.html,
the map of every output, is report/overview.py."""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl

from ..core.html import page as html_page
from .doc import Doc
from .findings import BOARD_CSS, FAILS, Cell, source

TABLE_DESCRIPTIONS = {
    "strongest": "top 10 features per SAE and layer by peak per-text value",
    "frequent": "top 10 features per SAE and layer by number of texts with value > 0 (coverage)",
    "category_peaks": "largest per-text value inside each category, per SAE and layer",
    "selective": "top 10 most selective features (fewest texts above the threshold)",
    "candidates": "every specialist candidate with n_in, n_out, score and in-category peak",
    "specialists": "best candidate per category, SAE and layer; has_specialist = score > 0",
    # comparison stage (docs/comparison.md)
    "components": "per category, layer and SAE family: the specialist, whether it is the "
    "strongest family at that layer and the family's earliest layer",
    "component_first": "per category and SAE family: its earliest specialist and the order in "
    "which the families first carry one (forward-pass order of their hooks)",
    "specialist_members": "every category's specialists across families and layers",
    "specialist_links": "every pair of a category's specialists: decoder cosine and "
    "co-activation (Pearson r of per-token activations)",
    "next_layer": "per specialist: its nearest features by decoder cosine in the next layer's "
    "SAE of its family, with co-activation",
    "related_features": "per dashboard feature: nearest features (decoder cosine above "
    "comparison.related_min_cosine) in its own SAE, the next layer, the other families at its "
    "layer and, for attention/MLP-out features, the residual SAE they are written into "
    "(shown on the dashboards)",
    "ladders": "width ladders: families reading one hook at one layer, by dictionary size",
    "splits": "per category: the wider SAEs' features covering the narrowest specialist's "
    "texts, with the share of those texts each takes",
}

CSS = """
table{border-collapse:collapse;margin:.5em 0 1em}
td,th{border:1px solid #ddd;padding:.2em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4}
.charts{display:flex;flex-wrap:wrap;gap:1em}
.chart{border:1px solid #ddd;border-radius:4px;padding:.5em;max-width:100%;box-sizing:border-box}
.chart img{max-width:100%;height:auto;display:block}
.nospec{color:#999}
.fails{color:#b00;font-weight:bold;cursor:help}
code{background:#f4f4f4;padding:0 .2em}
"""


# A chart's PNG is saved at 2 px per CSS px: shown at its own size, as large as the chart page
# draws it (shrunk only to the page's width), never as a thumbnail too small to read.
NATURAL_SIZE = "this.style.width=(this.naturalWidth/2)+'px'"


def build_index(
    *,
    output: str | os.PathLike,
    board: str,
    cells: Sequence[Cell],
    summary: Doc,
    summary_md: str | os.PathLike,
    tables: Mapping[str, tuple[str, str]],
    charts: Sequence[tuple[str, str, str]],
    token_views: Mapping[tuple[str, int, str], str],
    specialists: pl.DataFrame,
    per_text: Sequence[str],
    texts_path: str | os.PathLike,
) -> str:
    """Return the HTML; ``board``: the findings board (report/findings.py), first; ``cells``:
    its cells (the marks of the token-view grid); ``tables``: name -> (parquet, csv);
    ``charts``: (title, html, png); ``token_views``: (sae, layer, category) -> page. Paths are
    made relative to ``output``."""
    base = Path(output).parent
    esc = html.escape

    def rel(p: str | os.PathLike) -> str:
        return esc(Path(os.path.relpath(p, base)).as_posix(), quote=True)

    marked: dict[str, str] = {}  # mark -> stage titles, of the marks the grid shows
    for c in cells:
        for stage, record in c.verdicts.items():
            if c.status == FAILS and record is not None and record["ok"] is False:
                src = source(stage)
                marked.setdefault(src.mark, src.title)
    parts = [
        "<h1>sae-specialists results</h1>",
        '<p><a href="index.html">← every output of the run, by stage (index.html)</a></p>',
        '<p>Contents: <a href="#findings">findings</a> · <a href="#summary">summary</a> · '
        '<a href="#charts">charts</a> · <a href="#tables">tables</a> · '
        '<a href="#token-views">token views</a> · <a href="#per-text">per-text values</a> · '
        'feature dashboards: <a href="dashboards/index.html">dashboards/index.html</a></p>',
        board,
        f'<section id="summary">{summary.to_html(heading_offset=1)}'
        f'<p>Also as Markdown: <a href="{rel(summary_md)}">summary.md</a>.</p></section>',
        '<section id="charts"><h2>Charts</h2><div class="charts">',
    ]
    for title, html_path, png_path in charts:
        parts.append(
            f'<div class="chart"><div><strong>{esc(title)}</strong> — '
            f'<a href="{rel(html_path)}">interactive (HTML)</a> · '
            f'<a href="{rel(png_path)}">PNG</a></div>'
            f'<a href="{rel(html_path)}"><img src="{rel(png_path)}" alt="{esc(title, quote=True)}"'
            f' onload="{NATURAL_SIZE}">'
            "</a></div>"
        )
    parts.append("</div></section>")
    parts.append(
        '<section id="tables"><h2>Tables</h2><table><thead><tr><th>table</th>'
        "<th>files</th><th>contents</th></tr></thead><tbody>"
    )
    for name, (pq_path, csv_path) in tables.items():
        parts.append(
            f'<tr><td>{esc(name)}</td><td><a href="{rel(csv_path)}">CSV</a> · '
            f'<a href="{rel(pq_path)}">Parquet</a></td>'
            f"<td>{esc(TABLE_DESCRIPTIONS.get(name, ''))}</td></tr>"
        )
    parts.append("</tbody></table></section>")

    parts.append(
        '<section id="token-views"><h2>Token views</h2><p>One page per SAE, layer and category: '
        "the category's specialist (or best candidate, greyed, when no candidate scores > 0) "
        "shaded token by token on sample texts of every category. Cells: feature (score)"
        + (
            "; "
            + "; ".join(f"{m}: a verdict against it ({s})" for m, s in marked.items())
            + " (hover for the numbers)"
            if marked
            else ""
        )
        + ".</p>"
    )
    spec = {
        (r["sae"], int(r["layer"]), r["category"]): r for r in specialists.iter_rows(named=True)
    }
    by_cell = {(c.family, c.layer, c.category): c for c in cells}
    saes = sorted({k[0] for k in token_views})
    for sae in saes:
        layers = sorted({k[1] for k in token_views if k[0] == sae})
        cats = sorted({k[2] for k in token_views if k[0] == sae})
        parts.append(f"<h3>SAE <code>{esc(sae)}</code></h3><table><thead><tr><th>category</th>")
        parts += [f"<th>layer {layer}</th>" for layer in layers]
        parts.append("</tr></thead><tbody>")
        for cat in cats:
            parts.append(f"<tr><td>{esc(cat)}</td>")
            for layer in layers:
                page = token_views.get((sae, layer, cat))
                row = spec.get((sae, layer, cat))
                if page is None:
                    parts.append("<td></td>")
                    continue
                if row is None or row.get("feature") is None:
                    label, cls = "no candidate", ' class="nospec"'
                else:
                    label = f"#{row['feature']} ({row['score']})"
                    cls = "" if row["has_specialist"] else ' class="nospec"'
                link = f'<a{cls} href="{rel(page)}">{esc(label)}</a>'
                link += _marks(by_cell.get((sae, layer, cat)))
                url = row.get("neuronpedia_url") if row else None
                if url:
                    link += f' <a href="{esc(url, quote=True)}" title="Neuronpedia">↗</a>'
                parts.append(f"<td>{link}</td>")
            parts.append("</tr>")
        parts.append("</tbody></table>")
    parts.append("</section>")
    parts.append('<section id="per-text"><h2>Per-text values</h2><ul>')
    parts.append(f'<li><a href="{rel(texts_path)}">texts.parquet</a> (text list)</li>')
    parts += [
        f'<li><a href="{rel(p)}">{esc(Path(os.path.relpath(p, base)).as_posix())}</a></li>'
        for p in per_text
    ]
    parts.append("</ul></section>")
    return html_page("sae-specialists results", parts, CSS + BOARD_CSS)


def _marks(cell: Cell | None) -> str:
    """The cell's verdicts against its specialist: each stage's mark and label, the numbers
    on hover."""
    if cell is None or cell.status != FAILS:
        return ""
    out = []
    for stage, record in cell.verdicts.items():
        if record is not None and record["ok"] is False:
            why = html.escape(f"{source(stage).title}: {record['detail']}", quote=True)
            text = html.escape(f"{source(stage).mark} {record['label']}")
            out.append(f' <span class="fails" title="{why}">{text}</span>')
    return "".join(out)

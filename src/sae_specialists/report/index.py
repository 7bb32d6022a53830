"""results/analysis.html: the analysis page (summary, charts, tables, token views); index.html,
the map of every output, is report/overview.py."""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl

from ..core.html import page as html_page
from .causal import mark as causal_mark
from .causal import mark_title as causal_title
from .doc import Doc

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
    "related_features": "per dashboard feature: nearest features in its own SAE, the next "
    "layer and the other families at its layer (shown on the dashboards)",
    "ladders": "width ladders: families reading one hook at one layer, by dictionary size",
    "splits": "per category: the wider SAEs' features covering the narrowest specialist's "
    "texts, with the share of those texts each takes",
}

CSS = """
table{border-collapse:collapse;margin:.5em 0 1em}
td,th{border:1px solid #ddd;padding:.2em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4}
.charts{display:flex;flex-wrap:wrap;gap:1em}
.chart{border:1px solid #ddd;border-radius:4px;padding:.5em;max-width:34em}
.chart img{max-width:100%;height:auto;display:block}
.nospec{color:#999}
.fails{color:#b00;font-weight:bold;cursor:help}
code{background:#f4f4f4;padding:0 .2em}
"""


def build_index(
    *,
    output: str | os.PathLike,
    summary: Doc,
    summary_md: str | os.PathLike,
    tables: Mapping[str, tuple[str, str]],
    charts: Sequence[tuple[str, str, str]],
    token_views: Mapping[tuple[str, int, str], str],
    specialists: pl.DataFrame,
    per_text: Sequence[str],
    texts_path: str | os.PathLike,
    verdicts: Mapping[str, Mapping] | None = None,
    causal: Mapping[str, Mapping] | None = None,
) -> str:
    """Return the HTML; ``tables``: name -> (parquet, csv); ``charts``: (title, html, png);
    ``token_views``: (sae, layer, category) -> page. Paths are made relative to ``output``."""
    base = Path(output).parent
    esc = html.escape

    def rel(p: str | os.PathLike) -> str:
        return esc(Path(os.path.relpath(p, base)).as_posix(), quote=True)

    parts = [
        "<h1>sae-specialists results</h1>",
        '<p><a href="index.html">← every output of the run, by stage (index.html)</a></p>',
        '<p>Contents: <a href="#summary">summary</a> · <a href="#charts">charts</a> · '
        '<a href="#tables">tables</a> · <a href="#token-views">token views</a> · '
        '<a href="#per-text">per-text values</a></p>',
        '<p>Feature dashboards: <a href="dashboards/index.html">dashboards/index.html</a></p>',
        f'<section id="summary">{summary.to_html(heading_offset=1)}'
        f'<p>Also as Markdown: <a href="{rel(summary_md)}">summary.md</a>.</p></section>',
        '<section id="charts"><h2>Charts</h2><div class="charts">',
    ]
    for title, html_path, png_path in charts:
        parts.append(
            f'<div class="chart"><div><strong>{esc(title)}</strong> — '
            f'<a href="{rel(html_path)}">interactive (HTML)</a> · '
            f'<a href="{rel(png_path)}">PNG</a></div>'
            f'<a href="{rel(html_path)}"><img src="{rel(png_path)}" alt="{esc(title, quote=True)}">'
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
        + ("; ✗: the specialist fails validation (hover for the verdict)" if verdicts else "")
        + ("; ⊘: detector only in the causal check (hover for the numbers)" if causal else "")
        + ".</p>"
    )
    spec = {
        (r["sae"], int(r["layer"]), r["category"]): r for r in specialists.iter_rows(named=True)
    }
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
                verdict = (verdicts or {}).get(f"{sae}/{layer}/{cat}")
                if verdict and verdict.get("fails_heldout"):  # validation (docs/validation.md)
                    why = esc(verdict["verdict_text"], quote=True)
                    link += f' <span class="fails" title="{why}">✗</span>'
                causal_verdict = (causal or {}).get(f"{sae}/{layer}/{cat}")
                symbol = causal_mark(causal_verdict)
                if symbol:  # causal check (docs/causal.md)
                    why = esc(causal_title(causal_verdict), quote=True)
                    link += f' <span class="fails" title="{why}">{symbol}</span>'
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
    return html_page("sae-specialists results", parts, CSS)

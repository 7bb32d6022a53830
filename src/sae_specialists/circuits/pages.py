"""The circuits pages: pages/index.html, one page per category (every specialist of it, at every
family and layer, with its neighbours) and one per specialist. Each draws a layered node-link
graph as inline SVG (no script, no network): columns are SAE sites in forward-pass order (layers
left to right), edge width is |effect|, colour its sign (blue: excites, red: inhibits), dashed
edges are attribution-only (not verified by ablation); a node links to its dashboard where it
has one. A table under each graph lists the same edges with their numbers."""

from __future__ import annotations

import html
import os
from pathlib import Path

import polars as pl

from ..core.html import page
from ..core.io import atomic_dir

CSS = """
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ddd;padding:.2em .5em;
 text-align:right;vertical-align:top}th{background:#f1f3f5}td.l,th.l{text-align:left}
.note{color:#555;font-size:.92em;max-width:62em}svg.graph{border:1px solid #eee;background:#fff}
svg.graph text{font:11px sans-serif}svg.graph .col{font-weight:bold;fill:#333}
.dead{color:#c92a2a;font-weight:bold}.path{color:#2b8a3e;font-weight:bold}
"""
POSITIVE, NEGATIVE = "#2166ac", "#b2182b"
COLUMN_W, ROW_H, MARGIN, RADIUS = 150, 34, 40, 9

HOW_TO_READ = (
    "<p class='note'>Columns: SAE sites in the order the model runs them (layers left to right). "
    "<b>Upstream</b> edges (into a specialist) are attribution patching estimates — activation × "
    "gradient of the specialist's summed activation — solid where the top ones were verified by "
    "ablating the source alone (the table gives both numbers), dashed where not. Grey square "
    "nodes are SAE <b>error nodes</b> (what the SAE does not reconstruct). <b>Downstream</b> "
    "edges (out of a specialist) are measured: the specialist is zero-ablated and each later "
    "feature's activation change recorded. Every number is per counted token of the category's "
    "texts; width ∝ |effect|, blue = excites, red = inhibits. A double ring marks a specialist; "
    "a node links to its dashboard where it has one. docs/circuits.md explains every column.</p>"
)


def specialist_page_path(family: str, layer: int, category: str) -> str:
    """Relative to the pages directory."""
    return f"sae={family}/layer={int(layer)}/{category}.html"


def category_page_path(category: str) -> str:
    return f"category={category}.html"


def _num(v, digits: int = 3) -> str:
    if v is None:
        return "–"
    return f"{v:.{digits}g}" if abs(v) < 1e5 else f"{v:.2e}"


def _href(node: dict, page_dir: str, results_dir: Path) -> str | None:
    if not node.get("dashboard"):
        return None
    return os.path.relpath(results_dir / node["dashboard"], results_dir / page_dir)


def svg_graph(
    node_table: pl.DataFrame, link_table: pl.DataFrame, page_dir: str, results_dir: Path
) -> str:
    """A layered drawing of ``link_table``'s edges between ``node_table``'s nodes."""
    if not link_table.height:
        return "<p>No edge to draw.</p>"
    used = set(link_table["source"]) | set(link_table["target"])
    nodes = [n for n in node_table.iter_rows(named=True) if n["node_id"] in used]
    strength: dict[str, float] = {}
    for r in link_table.iter_rows(named=True):
        for end in (r["source"], r["target"]):
            strength[end] = max(strength.get(end, 0.0), abs(r["weight"] or 0.0))
    columns = sorted({(n["order"] if n["order"] is not None else 0) for n in nodes})
    col_of = {c: i for i, c in enumerate(columns)}
    by_col: dict[int, list[dict]] = {}
    for n in nodes:
        by_col.setdefault(col_of[n["order"] or 0], []).append(n)
    roots = set(link_table["root"])
    pos = {}
    for c, members in by_col.items():
        # the roots on the top row (a chain of specialists reads along it), others below
        members.sort(key=lambda n: (n["kind"] == "error", -strength.get(n["node_id"], 0.0)))
        top = [n for n in members if n["node_id"] in roots]
        rest = [n for n in members if n["node_id"] not in roots]
        for i, n in enumerate(top[:1] + rest if top else rest, start=0 if top else 1):
            pos[n["node_id"]] = (MARGIN + c * COLUMN_W + 40, MARGIN + 30 + i * ROW_H)
        for j, n in enumerate(top[1:]):  # two roots in one column (two categories): below all
            pos[n["node_id"]] = (
                MARGIN + c * COLUMN_W + 40,
                MARGIN + 30 + (len(rest) + 1 + j) * ROW_H,
            )
    width = MARGIN * 2 + len(columns) * COLUMN_W + 40
    height = MARGIN * 2 + 30 + (max(len(m) for m in by_col.values()) + 1) * ROW_H
    top = max(abs(w) for w in link_table["weight"].drop_nulls()) or 1.0
    parts = [
        f'<svg class="graph" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img">'
    ]
    site_label = {}
    for n in nodes:
        site_label[col_of[n["order"] or 0]] = f"{n['family']} L{n['layer']}"
    for c, label in site_label.items():
        parts.append(
            f'<text class="col" x="{MARGIN + c * COLUMN_W + 40}" y="{MARGIN}" '
            f'text-anchor="middle">{html.escape(label)}</text>'
        )
    for r in link_table.iter_rows(named=True):
        if r["source"] not in pos or r["target"] not in pos or r["weight"] is None:
            continue
        (x1, y1), (x2, y2) = pos[r["source"]], pos[r["target"]]
        w = 0.8 + 7.0 * abs(r["weight"]) / top
        colour = POSITIVE if r["weight"] >= 0 else NEGATIVE
        dash = (
            ' stroke-dasharray="5,3"'
            if r["kind"] == "attribution" and r["ablation"] is None
            else ""
        )
        title = f"{r['source']} → {r['target']}: {r['kind']} {_num(r['weight'])} per token" + (
            "" if r["ablation"] is None else f", measured {_num(r['ablation'])}"
        )
        parts.append(
            f'<path d="M{x1 + RADIUS},{y1} C{(x1 + x2) / 2},{y1} {(x1 + x2) / 2},{y2} '
            f'{x2 - RADIUS},{y2}" fill="none" stroke="{colour}" stroke-opacity="0.75" '
            f'stroke-width="{w:.2f}"{dash}><title>{html.escape(title)}</title></path>'
        )
    for n in nodes:
        x, y = pos[n["node_id"]]
        label = (
            "error"
            if n["kind"] == "error"
            else f"#{n['feature']}"
            + (f" {', '.join(n['specialist_of'])}" if n["specialist_of"] else "")
        )
        tip = n["node_id"] + (f" — promotes {n['promotes']}" if n["promotes"] else "")
        if n["kind"] == "error":
            shape = (
                f'<rect x="{x - RADIUS}" y="{y - RADIUS}" width="{2 * RADIUS}" '
                f'height="{2 * RADIUS}" fill="#ced4da" stroke="#495057"/>'
            )
        else:
            ring = (
                f'<circle cx="{x}" cy="{y}" r="{RADIUS + 3}" fill="none" stroke="#2b8a3e"/>'
                if n["specialist_of"]
                else ""
            )
            shape = (
                f'{ring}<circle cx="{x}" cy="{y}" r="{RADIUS}" fill="#fff3bf" stroke="#495057"/>'
            )
        text = (
            f'<text x="{x}" y="{y + RADIUS + 12}" text-anchor="middle">{html.escape(label)}</text>'
        )
        body = f"<g><title>{html.escape(tip)}</title>{shape}{text}</g>"
        href = _href(n, page_dir, results_dir)
        parts.append(f'<a href="{html.escape(href)}">{body}</a>' if href else body)
    parts.append("</svg>")
    return "".join(parts)


def _edge_table(link_table: pl.DataFrame) -> str:
    head = (
        "<tr><th class=l>circuit of</th><th class=l>edge</th><th>rank</th><th class=l>kind</th>"
        "<th>effect / token</th><th>relative</th><th>measured (ablation)</th></tr>"
    )
    rows = []
    for r in link_table.sort("root", "direction", "rank", nulls_last=True).iter_rows(named=True):
        mark = " ★" if r["direction"] == "downstream" and r["target_is_specialist"] else ""
        rows.append(
            f"<tr><td class=l>{html.escape(r['root'])} ({html.escape(r['category'])})</td>"
            f"<td class=l>{html.escape(r['source'])} → {html.escape(r['target'])}{mark}</td>"
            f"<td>{_num(r['rank'])}</td><td class=l>{r['kind']}</td><td>{_num(r['weight'])}</td>"
            f"<td>{_num(r['relative'])}</td><td>{_num(r['ablation'])}</td></tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


def _summary_table(summary: pl.DataFrame, link_dir: str) -> str:
    head = (
        "<tr><th class=l>specialist</th><th>mean act.</th><th class=l>top upstream</th>"
        "<th>attributed share</th><th>measured share</th><th>Spearman</th><th>completeness</th>"
        "<th class=l>strongest downstream</th><th>relative</th><th class=l>next layer</th>"
        "<th class=l>promotes</th></tr>"
    )
    rows = []
    for r in summary.iter_rows(named=True):
        link = os.path.relpath(
            specialist_page_path(r["family"], r["layer"], r["category"]), link_dir
        )
        dead = " <span class=dead>dead end</span>" if r["dead_end"] else ""
        nxt = r["next_layer_top"] or "–"
        if r["next_layer_is_specialist"]:
            nxt = f"<span class=path>{nxt} (specialist)</span>"
        rows.append(
            f"<tr><td class=l><a href='{html.escape(link)}'>{r['family']} L{r['layer']} "
            f"#{r['feature']} {html.escape(r['category'])}</a>{dead}</td>"
            f"<td>{_num(r['mean_activation'])}</td><td class=l>{r['top_upstream'] or '–'}</td>"
            f"<td>{_num(r['top_upstream_attributed_share'])}</td>"
            f"<td>{_num(r['top_upstream_measured_share'])}</td><td>{_num(r['spearman'])}</td>"
            f"<td>{_num(r['completeness'])}</td><td class=l>{r['top_downstream'] or '–'}</td>"
            f"<td>{_num(r['top_downstream_relative'])}</td><td class=l>{nxt}</td>"
            f"<td class=l>{html.escape(r['promotes'] or '–')}</td></tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


def _display_links(link_table: pl.DataFrame, per_node: int, error_nodes: bool) -> pl.DataFrame:
    keep = (pl.col("rank") <= per_node) | pl.col("rank").is_null()
    if not error_nodes:
        keep = keep & ~pl.col("source").str.ends_with("/error")
    return link_table.filter(keep)


def write_pages(
    out_dir,
    summary: pl.DataFrame,
    node_table: pl.DataFrame,
    link_table: pl.DataFrame,
    results_dir,
    display: dict,
) -> None:
    """Every page into a fresh directory, then moved into place (a directory output)."""
    results_dir = Path(results_dir)
    out_dir = Path(out_dir)
    pages_rel = out_dir.relative_to(results_dir) if out_dir.is_relative_to(results_dir) else out_dir
    shown = _display_links(link_table, int(display["edges_per_node"]), bool(display["error_nodes"]))
    with atomic_dir(out_dir) as tmp:
        (tmp / "index.html").write_text(_index(summary), encoding="utf-8")
        for (category,), group in summary.group_by(["category"], maintain_order=True):
            links = shown.filter(pl.col("category") == category)
            body = [
                f"<h1>Circuits of the {html.escape(category)} specialists</h1>",
                "<p><a href='index.html'>all specialists</a></p>",
                HOW_TO_READ,
                svg_graph(node_table, links, str(pages_rel), results_dir),
                _summary_table(group.sort("family", "layer"), "."),
                "<h2>Edges</h2>",
                _edge_table(links),
            ]
            path = tmp / category_page_path(category)
            path.write_text(page(f"circuits: {category}", body, CSS), encoding="utf-8")
        for r in summary.iter_rows(named=True):
            rel = specialist_page_path(r["family"], r["layer"], r["category"])
            links = shown.filter(
                (pl.col("family") == r["family"])
                & (pl.col("layer") == r["layer"])
                & (pl.col("category") == r["category"])
            )
            page_dir = str(Path(pages_rel) / Path(rel).parent)
            up = "../../"
            body = [
                f"<h1>{html.escape(r['family'])} layer {r['layer']} feature {r['feature']}: "
                f"the {html.escape(r['category'])} specialist's circuit</h1>",
                f"<p><a href='{up}index.html'>all specialists</a> · <a href='{up}"
                f"{category_page_path(r['category'])}'>every {html.escape(r['category'])} "
                "specialist</a></p>",
                HOW_TO_READ,
                _path_sentence(r),
                svg_graph(node_table, links, page_dir, results_dir),
                _summary_table(pl.DataFrame([r], schema=summary.schema), str(Path(rel).parent)),
                "<h2>Edges</h2>",
                _edge_table(links),
            ]
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(
                page(f"circuit: {r['category']} {r['family']} L{r['layer']}", body, CSS),
                encoding="utf-8",
            )


def _path_sentence(r: dict) -> str:
    """upstream -> f -> downstream -> tokens, in words."""
    up = r["top_upstream"] or "nothing upstream (first SAE site)"
    down = "no downstream feature (dead end)" if r["dead_end"] else (r["top_downstream"] or "–")
    tokens = r["promotes"] or "–"
    return (
        f"<p><b>Path:</b> {html.escape(up)} → <b>{r['family']}/{r['layer']}/{r['feature']}</b> → "
        f"{html.escape(down)} → promotes {html.escape(tokens)}</p>"
    )


def _index(summary: pl.DataFrame) -> str:
    cats = summary["category"].unique(maintain_order=True).to_list() if summary.height else []
    links = " · ".join(
        f"<a href='{category_page_path(c)}'>{html.escape(c)}</a>" for c in sorted(cats)
    )
    body = [
        "<h1>Specialist circuits: what feeds a specialist, and what it feeds</h1>",
        HOW_TO_READ,
        f"<p>By category: {links or 'no specialist'}</p>",
        _summary_table(summary, ".") if summary.height else "<p>No specialist.</p>",
    ]
    return page("circuits", body, CSS)

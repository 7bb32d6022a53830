"""Markdown of the validation results: ``validation/summary.md`` (and the same as a page,
``validation/summary.html``) and the short section the report adds to the study's summary.md
(docs/validation.md explains every number)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import polars as pl

from .table import baseline_columns
from .verdict import FAILS_HELDOUT, FAILS_NULL, GENERALISES, LOSES, baseline_label, format_p


def _num(x, digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _md_table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def counts(rows: Iterable[Mapping]) -> dict[str, int]:
    """Cells, cells with a specialist, and how many generalise / fail held-out / fail the null
    / lose to a probe (``rows``: cell rows or verdicts.json values)."""
    rows = list(rows)
    verdicts = [r["verdict"] for r in rows if r["has_specialist"]]
    return {
        "cells": len(rows),
        "specialists": len(verdicts),
        "generalise": sum(v.startswith(GENERALISES) for v in verdicts),
        "fail_heldout": sum(FAILS_HELDOUT in v for v in verdicts),
        "fail_null": sum(FAILS_NULL in v for v in verdicts),
        "lose_to_probe": sum(LOSES in v for v in verdicts),
    }


def headline(rows: pl.DataFrame | Iterable[Mapping]) -> str:
    if isinstance(rows, pl.DataFrame):
        rows = rows.iter_rows(named=True)
    n = counts(rows)
    return (
        f"{n['specialists']} of {n['cells']} cells have an in-sample specialist; "
        f"generalise to held-out texts and beat the shuffled-label null: {n['generalise']}; "
        f"do not generalise: {n['fail_heldout']}; not better than chance: {n['fail_null']}; "
        f"lose to a baseline probe: {n['lose_to_probe']}."
    )


def flagged(verdicts: Mapping[str, Mapping]) -> list[str]:
    """One line per cell whose specialist is flagged (verdicts.json: "family/layer/category"
    -> verdict), sorted by family, category, layer."""

    def key(k: str):
        sae, layer, category = k.split("/", 2)
        return (sae, category, int(layer))

    out = []
    for k in sorted(verdicts, key=key):
        v = verdicts[k]
        if v["has_specialist"] and v["verdict"] != GENERALISES:
            sae, layer, category = k.split("/", 2)
            out.append(
                f"{sae} layer {layer}, {category} (feature {v['feature']}): {v['verdict_text']}"
            )
    return out


def verdict_rows(
    cells: pl.DataFrame, surface: Callable[[dict], str] | None = None
) -> tuple[list[str], list[list]]:
    """The summary's table, rows sorted by family, category, layer; ``surface``: row -> its
    Markdown cell (what the specialist detects, linked: core/crosslinks.cell), a last column."""
    base = baseline_columns(cells)
    header = [
        "SAE",
        "layer",
        "category",
        "feature",
        "score",
        "held-out AUROC (min–max)",
        "fold agreement",
        "floor",
        "p",
        *(baseline_label(b) for b in base),
        "verdict",
    ]
    rows = []
    for r in cells.sort("sae", "category", "layer").iter_rows(named=True):
        spread = (
            f"{_num(r['heldout_auroc'])} ({_num(r['heldout_auroc_min'])}–"
            f"{_num(r['heldout_auroc_max'])})"
            if r["heldout_auroc"] is not None
            else "–"
        )
        rows.append(
            [
                r["sae"],
                r["layer"],
                r["category"],
                "–" if r["feature"] is None else r["feature"],
                "–" if r["score"] is None else r["score"],
                spread,
                "–" if r["fold_agreement"] is None else f"{r['fold_agreement']:.0%}",
                _num(r["floor_auroc"]),
                format_p(r["p_value"]).removeprefix("p ").removeprefix("= "),
                *(_num(r.get(f"{b}_auroc")) for b in base),
                f"**{r['verdict']}**" if r["verdict"] != GENERALISES else r["verdict"],
                *([surface(r)] if surface is not None else []),
            ]
        )
    if surface is not None:
        header.append("what it detects")
    return header, rows


def build_summary(
    cells: pl.DataFrame, settings: Mapping, surface: Callable[[dict], str] | None = None
) -> str:
    """validation/summary.md; ``surface``: verdict_rows'."""
    s = settings
    lines = [
        "# Validation of the specialists",
        "",
        f"Selection rule of the study (top-{s['candidates']} candidates by in-category peak, "
        f"score n_in − n_out at threshold {s['threshold']:g}) rerun on the training texts of "
        f"{s['folds']} stratified folds (seed {s['seed']}; leave-one-text-out for a category "
        f"with fewer texts), the chosen feature judged on the held-out texts; "
        f"{s['permutations']} shuffled-label permutations; "
        f"{s['random_feature_draws']} random features of similar density per fold as the "
        "floor."
        + (
            " Baselines on the same folds: difference of means and an L2 logistic "
            "probe on the pooled residual, k-sparse SAE probes."
            if s.get("baselines")
            else " Baselines: off."
        ),
        "",
        f"Verdict thresholds: held-out AUROC ≥ {s['min_auroc']:g} and above the floor "
        f"(generalises), p ≤ {s['alpha']:g} (better than chance), a baseline more than "
        f"{s['probe_margin']:g} above the specialist's held-out AUROC (loses to probe). "
        "How to read each number: docs/validation.md.",
        "",
        headline(cells),
        "",
    ]
    header, rows = verdict_rows(cells, surface)
    lines += _md_table(header, rows)
    if surface is not None:
        lines += [
            "",
            "What it detects: the surface stage's verdict on the specialist (token detector, "
            "context-gated, meaning, mixed; docs/surface.md), linked to surface/summary.md; "
            "– when it has none.",
        ]
    lines.append("")
    flagged = cells.filter(pl.col("has_specialist") & (pl.col("verdict") != GENERALISES))
    if flagged.height:
        lines += ["## Flagged cells", ""]
        for r in flagged.sort("sae", "category", "layer").iter_rows(named=True):
            lines.append(
                f"- {r['sae']} layer {r['layer']}, {r['category']}, feature "
                f"{r['feature']}: {r['verdict_text']}"
            )
        lines.append("")
    return "\n".join(lines)


def summary_section(cells: pl.DataFrame) -> list[str]:
    """Markdown lines for the study's summary.md: the headline and the flagged cells."""
    lines = ["## Validation", "", headline(cells), ""]
    flagged = cells.filter(pl.col("has_specialist") & (pl.col("verdict") != GENERALISES))
    for r in flagged.sort("sae", "category", "layer").iter_rows(named=True):
        lines.append(
            f"- {r['sae']} layer {r['layer']}, {r['category']} (feature "
            f"{r['feature']}): {r['verdict_text']}"
        )
    if flagged.height:
        lines.append("")
    lines += ["Every cell: validation/summary.md; how to read it: docs/validation.md.", ""]
    return lines


SUMMARY_CSS = """
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.92em}
td,th{border:1px solid #ddd;padding:.2em .5em;text-align:left;vertical-align:top}
th{background:#f4f4f4;position:sticky;top:0}
td strong{color:#b00}
"""


def summary_page(markdown: str) -> str:
    """``validation/summary.html``: summary.md as a page (its tables as tables, a flagged
    verdict in red), rendered by markdown-it (CommonMark and tables; raw HTML in the text is
    escaped, never passed through)."""
    from markdown_it import MarkdownIt

    from ..core.html import page

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    nav = (
        '<nav><a href="../index.html">← every output (index.html)</a> '
        '<a href="../analysis.html">analysis.html</a> <a href="summary.md">summary.md</a></nav>'
    )
    return page("Validation of the specialists", [nav, body], SUMMARY_CSS)

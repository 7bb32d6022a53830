"""The causal check's block on a specialist's dashboard (docs/causal.md): its verdict, the
tokens of its category whose loss rises most when it is ablated, and its steering samples.

Read from the causal stage's files only (the layer's top_tokens and steering tables, and
verdicts.json's content): the dashboards never import the causal package."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import polars as pl

from ..core.html import token_html
from ..core.numbers import NATS_DECIMALS, decimals_for, fixed

esc = html.escape
VERDICT_COLOURS = {
    "detector only": "#b00",
    "specific": "#2b8a3e",
    "unspecific": "#e67700",
    "no control": "#666",
}


def _verdict_line(category: str, v: Mapping[str, Any], page: str | None) -> str:
    """The verdict with its three Δloss numbers, in one number of decimals (causal/pages.py:
    the largest with 3 significant digits, at least 4 decimals; no scientific notation)."""
    colour = VERDICT_COLOURS.get(v["verdict"], "#333")
    link = f' — <a href="{esc(page, quote=True)}">details</a>' if page else ""
    keys = ("in_mean", "out_mean", "control_in_mean")
    d = decimals_for((v.get(k) for k in keys), sig=3, least=NATS_DECIMALS)
    return (
        f"<p><strong>{esc(category)}</strong>: "
        f'<span class="causal-verdict" style="color:{colour};font-weight:600">'
        f"{esc(v['verdict'])}</span> (zero ablation: Δloss on its category "
        f"{fixed(v['in_mean'], d)}, on other texts {fixed(v['out_mean'], d)}, random control "
        f"of similar density {fixed(v['control_in_mean'], d)}; –: no control found){link}</p>"
    )


def _table(rows: list[dict], empty: str, css: str, columns: list[str], row) -> str:
    """A data table (class ``css``) of ``row(r)`` for each of ``rows``; ``empty``: the note
    shown instead when there is none."""
    if not rows:
        return f'<p class="note">{empty}</p>'
    head = "".join(f"<th>{c}</th>" for c in columns)
    body = "".join(row(r) for r in rows)
    return f'<table class="data {css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _top_token_row(r: dict, d: Mapping[str, int]) -> str:
    """One row; ``d``: decimals of the Δloss and the loss columns (one per column)."""
    return (
        f'<tr><td class="num">{r["rank"]}</td>'
        f'<td class="num">{fixed(r["delta_loss"], d["delta"])}</td>'
        f'<td class="num">{fixed(r["clean_loss"], d["loss"])} → '
        f"{fixed(r['ablated_loss'], d['loss'])}</td>"
        f'<td class="examples">{token_html(r["context_before"], breaks=False)}'
        f'<span class="tok max">{token_html(r["token"], breaks=False)}</span>'
        f"{token_html(r['context_after'], breaks=False)}</td></tr>"
    )


def _top_tokens(rows: list[dict]) -> str:
    columns = ["#", "Δloss", "loss clean → ablated", "context (predicted token outlined)"]
    empty = "No token of the category had its loss raised."
    d = {
        "delta": decimals_for((r["delta_loss"] for r in rows), sig=4),
        "loss": decimals_for((r[k] for r in rows for k in ("clean_loss", "ablated_loss")), sig=4),
    }
    return _table(rows, empty, "causal-top", columns, lambda r: _top_token_row(r, d))


def _steering_row(r: dict) -> str:
    return (
        f"<tr><td>{token_html(r['prompt'], breaks=False)}</td><td>"
        + ("unsteered" if r["scale"] is None else f"{r['scale']:g} × max")
        + f'</td><td class="examples">{token_html(r["continuation"], breaks=False)}</td></tr>'
    )


def _steering(rows: list[dict]) -> str:
    columns = ["prompt", "clamp", "greedy continuation"]
    empty = "No steering prompt configured (causal.prompts)."
    return _table(rows, empty, "causal-steering", columns, _steering_row)


def causal_block(
    feature: int,
    top_tokens: pl.DataFrame,
    steering: pl.DataFrame,
    verdicts: Mapping[str, Mapping[str, Any]],
    pages: Mapping[str, str],
) -> str:
    """The block of ``feature`` (empty when it is no checked specialist). ``verdicts``: category
    -> verdict record of the layer; ``pages``: category -> href of its causal page."""
    mine = {c: v for c, v in verdicts.items() if v.get("feature") == feature}
    if not mine:
        return ""
    parts = ['<h2 id="causal">Causal check</h2>']
    for category, v in sorted(mine.items()):
        parts.append(_verdict_line(category, v, pages.get(category)))
        top = top_tokens.filter(
            (pl.col("feature") == feature) & (pl.col("category") == category)
        ).sort("rank")
        parts.append(f"<h3>Tokens of {esc(category)} whose loss rises most when it is ablated</h3>")
        parts.append(_top_tokens(top.to_dicts()))
    steer = steering.filter(pl.col("feature") == feature).sort(
        "prompt_index", pl.col("scale").fill_null(-1.0)
    )
    parts.append("<h3>Steering samples</h3>")
    parts.append(
        '<p class="note">The feature clamped to a multiple of its maximum activation at every '
        "position of a neutral prompt, greedy continuation beside the unsteered one.</p>"
    )
    parts.append(_steering(steer.to_dicts()))
    return "\n".join(parts)

"""The causal pages: pages/index.html (every cell and its verdict) and one page per cell (its
effects, the tokens whose loss rises most, the steering samples). Self-contained HTML."""

from __future__ import annotations

import html
from collections.abc import Iterable
from pathlib import Path

import polars as pl

from ..core.html import page, token_html
from ..core.io import atomic_dir
from ..core.numbers import DASH, NATS_DECIMALS, decimals_for, fixed

CSS = """
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ddd;padding:.2em .5em;
 text-align:right;vertical-align:top}th{background:#f1f3f5}td.l,th.l{text-align:left}
.ctx{font-family:ui-monospace,monospace;white-space:pre-wrap;text-align:left}
.hit{background:#ffd8a8;font-weight:bold}.detector{color:#c92a2a;font-weight:bold}
.specific{color:#2b8a3e;font-weight:bold}.unspecific{color:#e67700;font-weight:bold}
.nocontrol{color:#666;font-weight:bold}
.note{color:#555;font-size:.92em;max-width:60em}
td:not(.l):not(.ctx){white-space:nowrap}
"""

HOW_TO_READ = (
    "<p class='note'>Δloss: change in mean next-token cross-entropy (nats) per text when the "
    "feature's contribution is removed at every counted token (zero ablation) or its activation "
    "is set to its mean (mean ablation); averaged over the category's texts (in) and all other "
    "texts (out). [low, high]: percentile bootstrap interval over texts. The control is a random "
    "feature of similar token density, ablated the same way; in − control is the text-by-text "
    "difference on the category's texts. The verdict reads three intervals: <b>detector "
    "only</b> unless both Δloss in and in − control lie above 0 (and their estimates reach "
    "causal.min_effect) — the feature fires on its category but the model does not need it "
    "there; then <b>specific</b> when in − out also lies above 0, else <b>unspecific</b> "
    "(it matters, but not more for its category). Δloss columns share one number of decimals "
    "per table; 0.0000 is below half the last digit. "
    "<b>–</b>: not defined — no interval when the category or the other texts have no text "
    "with a loss position; in / out when Δloss out ≤ 0 (its interval also needs Δloss out > 0 "
    "in at least half the resamples); the control columns when no control feature of similar "
    "density was found. Top-1 changed in: the share of the loss positions of the category's "
    "texts where the model's most likely next token (argmax of the logits) is another one "
    "with the feature removed, of that many positions. docs/causal.md explains every "
    "column.</p>"
)

# the Δloss keys of an effects row (nats): one number of decimals for all of them on a page
NATS = ("in_mean", "out_mean", "diff", "control_in_mean", "control_out_mean", "vs_control")
RATIO_DECIMALS = 2


def _num(value, digits: int = 4) -> str:
    if value is None:
        return DASH
    return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:.3e}"


def nats_decimals(rows: Iterable[dict]) -> int:
    """Decimals of every Δloss number of a table: the largest shows 3 significant digits, never
    fewer than NATS_DECIMALS."""
    keys = [k for base in NATS for k in (base, f"{base.removesuffix('_mean')}_low")]
    keys += [f"{base.removesuffix('_mean')}_high" for base in NATS]
    values = [r.get(k) for r in rows for k in keys]
    return decimals_for(values, sig=3, least=NATS_DECIMALS)


def _ci(row: dict, key: str, value_key: str | None = None, decimals: int = NATS_DECIMALS) -> str:
    value = row.get(value_key or key)
    low, high = row.get(f"{key}_low"), row.get(f"{key}_high")
    if low is None or high is None:
        return fixed(value, decimals)
    return (
        f"{fixed(value, decimals)} <small>[{fixed(low, decimals)}, {fixed(high, decimals)}]</small>"
    )


def _verdict(verdict: str) -> str:
    css = {"detector only": "detector", "no control": "nocontrol"}.get(verdict, verdict)
    return f"<span class='{css}'>{html.escape(verdict)}</span>"


def cell_page_path(family: str, layer: int, category: str) -> str:
    """Relative to the pages directory."""
    return f"sae={family}/layer={layer}/{category}.html"


def _table(columns: list[str], left: set[str], body: Iterable[str]) -> str:
    """A table: a header row of ``columns`` (those in ``left`` aligned left), then ``body``."""
    head = "".join(f"<th class='l'>{c}</th>" if c in left else f"<th>{c}</th>" for c in columns)
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def top1_text(row: dict) -> str:
    """The share of the category's loss positions whose top-1 prediction the ablation changes,
    e.g. "12.5% of 456"; "–" without a loss position."""
    share = row.get("top1_changed_share")
    if share is None:
        return DASH
    return f"{100 * share:.1f}% <small>of {row['top1_positions']:,}</small>"


def control_top1_text(row: dict) -> str:
    """The same share for the cell's controls (pooled over them), e.g. "0.4%"."""
    share = row.get("control_top1_changed_share")
    return DASH if share is None else f"{100 * share:.1f}%"


_EFFECT_HEADERS = ["ablation", "n in / out", "Δloss in", "Δloss out", "in − out", "in / out"]
_EFFECT_HEADERS += ["top-1 changed in"]
_EFFECT_HEADERS += ["control in", "control out", "in − control in", "control top-1 changed"]
_EFFECT_HEADERS += ["verdict"]


def _effects_table(rows: list[dict]) -> str:
    d = nats_decimals(rows)
    body = (
        f"<tr><td class='l'>{html.escape(r['mode'])}</td><td>{r['n_in']} / {r['n_out']}</td>"
        f"<td>{_ci(r, 'in', 'in_mean', d)}</td><td>{fixed(r['out_mean'], d)}</td>"
        f"<td>{_ci(r, 'diff', decimals=d)}</td>"
        f"<td>{_ci(r, 'ratio', decimals=RATIO_DECIMALS)}</td><td>{top1_text(r)}</td>"
        f"<td>{_ci(r, 'control_in', 'control_in_mean', d)}</td>"
        f"<td>{fixed(r['control_out_mean'], d)}</td><td>{_ci(r, 'vs_control', decimals=d)}</td>"
        f"<td>{control_top1_text(r)}</td><td class='l'>{_verdict(r['verdict'])}</td></tr>"
        for r in rows
    )
    return _table(_EFFECT_HEADERS, {"ablation", "verdict"}, body)


def top_tokens_html(rows: list[dict]) -> str:
    """The top-token table (also used by the dashboards' copy of it, via the same columns)."""
    if not rows:
        return "<p>No token of the category had its loss raised by the ablation.</p>"
    context = "context (predicted token highlighted)"
    columns = ["#", "text", "Δloss", "clean", "ablated", "activation", context]
    # one number of decimals per column (4 significant digits for its largest value)
    d = {k: decimals_for((r[k] for r in rows), sig=4) for k in ("delta_loss", "activation")}
    d["loss"] = decimals_for((r[k] for r in rows for k in ("clean_loss", "ablated_loss")), sig=4)
    body = (
        f"<tr><td>{r['rank']}</td><td class='l'>{html.escape(r['text_id'])}:{r['position']}</td>"
        f"<td>{fixed(r['delta_loss'], d['delta_loss'])}</td>"
        f"<td>{fixed(r['clean_loss'], d['loss'])}</td>"
        f"<td>{fixed(r['ablated_loss'], d['loss'])}</td>"
        f"<td>{fixed(r['activation'], d['activation'])}</td>"
        f"<td class='ctx'>{token_html(r['context_before'], breaks=False)}"
        f"<span class='hit'>{token_html(r['token'], breaks=False)}</span>"
        f"{token_html(r['context_after'], breaks=False)}</td></tr>"
        for r in rows
    )
    return _table(columns, {"text", context}, body)


def steering_html(rows: list[dict]) -> str:
    if not rows:
        return "<p>No steering prompt configured (causal.prompts).</p>"
    columns = ["prompt", "clamp", "value", "greedy continuation"]
    body = []
    for r in rows:
        clamp = "unsteered" if r["scale"] is None else f"{_num(r['scale'], 3)} × max"
        body.append(
            f"<tr><td class='l'>{token_html(r['prompt'], breaks=False)}</td><td>{clamp}</td>"
            f"<td>{_num(r['value'])}</td>"
            f"<td class='ctx'>{token_html(r['continuation'], breaks=False)}</td></tr>"
        )
    return _table(columns, {"prompt", "greedy continuation"}, body)


def detects_html(surface, row: dict, page: str) -> str:
    """What the specialist of ``row`` detects (the surface stage's label) linked to
    surface/summary.md relative to ``page``; "–" without a record. ``surface``: (labels,
    the summary's path), core/crosslinks.py."""
    from ..core.crosslinks import label_of, relative

    labels, summary = surface
    label = label_of(labels, row["sae"], row["layer"], row["category"], row["feature"])
    if label is None:
        return DASH
    href = html.escape(relative(summary, page), quote=True)
    return f"<a href='{href}'>{html.escape(label)}</a>"


def _cell_page(
    cell: dict,
    effects: list[dict],
    top: list[dict],
    steering: list[dict],
    detects: str | None = None,
) -> str:
    title = f"Causal check: SAE {cell['sae']} layer {cell['layer']}, {cell['category']}"
    zero = next((r for r in effects if r["mode"] == "zero"), effects[0])
    detected = "" if detects is None else f" What it detects (surface stage): {detects}."
    body = [
        "<nav><a href='../../index.html'>all cells</a></nav>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Specialist feature <b>{cell['feature']}</b>; control feature(s) "
        f"{html.escape(zero['controls'] or 'none found')}. Verdict (zero ablation): "
        f"{_verdict(zero['verdict'])}.{detected}</p>",
        HOW_TO_READ,
        "<h2>Ablation effects</h2>",
        _effects_table(effects),
        "<h2>Tokens whose loss rises most (zero ablation)</h2>",
        top_tokens_html(top),
        "<h2>Steering samples</h2>",
        steering_html(steering),
    ]
    return page(title, body, css=CSS)


def _index_page(effects: pl.DataFrame, settings: dict, detects=None) -> str:
    """``detects``: row -> the "what it detects" cell (none: no such column)."""
    rows = effects.filter(pl.col("mode") == "zero").sort("sae", "layer", "category")
    d = nats_decimals(rows.iter_rows(named=True))
    columns = ["SAE", "layer", "category", "feature", "Δloss in [interval]", "Δloss out"]
    columns += ["in − control [interval]", "in − out [interval]", "in / out"]
    columns += ["top-1 changed in", "verdict"]
    if detects is not None:
        columns.append("what it detects")
    extra = (lambda r: f"<td class='l'>{detects(r)}</td>") if detects else (lambda r: "")
    body = [
        f"<tr><td class='l'>{html.escape(r['sae'])}</td><td>{r['layer']}</td>"
        f"<td class='l'><a href='{cell_page_path(r['sae'], r['layer'], r['category'])}'>"
        f"{html.escape(r['category'])}</a></td><td>{r['feature']}</td>"
        f"<td>{_ci(r, 'in', 'in_mean', d)}</td><td>{fixed(r['out_mean'], d)}</td>"
        f"<td>{_ci(r, 'vs_control', decimals=d)}</td><td>{_ci(r, 'diff', decimals=d)}</td>"
        f"<td>{_ci(r, 'ratio', decimals=RATIO_DECIMALS)}</td><td>{top1_text(r)}</td>"
        f"<td class='l'>{_verdict(r['verdict'])}</td>{extra(r)}</tr>"
        for r in rows.iter_rows(named=True)
    ]
    listing = ", ".join(f"{html.escape(k)} = {html.escape(str(v))}" for k, v in settings.items())
    table = (
        _table(columns, {"SAE", "category", "verdict", "what it detects"}, body)
        if body
        else "<p>No specialist.</p>"
    )
    return page(
        "Causal check of the specialists",
        [
            "<h1>Causal check of the specialists</h1>",
            HOW_TO_READ,
            f"<p class='note'>Settings: {listing}. The verdict is that of the zero ablation; "
            "each cell's page has both ablations and the control's own numbers.</p>",
            table,
        ],
        css=CSS,
    )


def _where(cell: dict) -> dict:
    return {"family": cell["sae"], "layer": cell["layer"], "category": cell["category"]}


def write_pages(
    frames: dict[str, pl.DataFrame], out_dir: Path, settings: dict, surface=None
) -> None:
    """Write every page into a fresh directory, then move it into place (a directory output:
    no half-written page set survives a failure). ``surface``: (the surface stage's labels,
    surface/summary.md's path) when that stage ran: each specialist's "what it detects"."""

    def detects(row: dict, page: str) -> str | None:
        return None if surface is None else detects_html(surface, row, page)

    index = str(Path(out_dir) / "index.html")
    with atomic_dir(out_dir) as tmp:
        effects, top, steering = frames["effects"], frames["top_tokens"], frames["steering"]
        column = (lambda r: detects(r, index)) if surface is not None else None
        (tmp / "index.html").write_text(_index_page(effects, settings, column), encoding="utf-8")
        keys = ["sae", "layer", "category"]
        for cell in effects.select(*keys, "feature").unique().sort(keys).iter_rows(named=True):
            match = (
                (pl.col("sae") == cell["sae"])
                & (pl.col("layer") == cell["layer"])
                & (pl.col("category") == cell["category"])
            )
            feature_match = (
                (pl.col("sae") == cell["sae"])
                & (pl.col("layer") == cell["layer"])
                & (pl.col("feature") == cell["feature"])
            )
            text = _cell_page(
                cell,
                effects.filter(match).sort("mode", descending=True).to_dicts(),
                top.filter(match).sort("rank").to_dicts(),
                steering.filter(feature_match)
                .sort("prompt_index", pl.col("scale").fill_null(-1.0))
                .to_dicts(),
                detects(cell, str(Path(out_dir) / cell_page_path(**_where(cell)))),
            )
            path = tmp / cell_page_path(cell["sae"], cell["layer"], cell["category"])
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")

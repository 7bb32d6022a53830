"""HTML of one feature dashboard and of a layer's list of dashboards: plain, self-contained HTML
with inline CSS, inline SVG (histogram) and a few lines of inline JavaScript (hover read-out).
Nothing is fetched: the pages work offline from file://.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from ..core.html import TOKEN_DRAW_JS, TOKEN_JS, Tok, page, token_items, tokens_html, tokens_json
from ..core.numbers import decimals_for, fixed

CSS = """
h1{font-size:1.45em;margin:.3em 0}h2{font-size:1.12em;margin:1.4em 0 .4em;
 border-bottom:1px solid #ddd}h3{font-size:1em;margin:1em 0 .3em}
.meta td,.meta th{padding:.1em .9em .1em 0;text-align:left;vertical-align:top}
.meta th{color:#555;font-weight:normal}
.badge{display:inline-block;font-size:.8em;border-radius:3px;padding:0 .45em;margin-right:.3em;
 color:#fff;background:#868e96}
.badge.specialist{background:#e8590c}.badge.strongest{background:#1c7ed6}
.badge.frequent{background:#2f9e44}
.badge.specialist.against{background:#868e96}
.cols{display:flex;flex-wrap:wrap;gap:1.5em}.cols>div{flex:1 1 24em;min-width:20em}
table.data{border-collapse:collapse;font-size:.92em}
table.data td,table.data th{border-bottom:1px solid #eee;padding:.15em .6em;text-align:left}
table.data td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.own td{background:#fff4e6;font-weight:600}
.bar{display:inline-block;height:.75em;vertical-align:middle;border-radius:2px}
.bar.pos{background:#4c6ef5}.bar.neg{background:#fa5252}.bar.val{background:rgb(240,140,0)}
code.tokv{background:#f1f3f5;padding:0 .25em;border-radius:3px;white-space:pre}
.examples{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.9em}
.ex{display:flex;gap:.8em;align-items:baseline;border-bottom:1px solid #f1f3f5;padding:.25em 0}
.ex .lab{flex:0 0 15em;font-family:system-ui,sans-serif;font-size:.82em;color:#555;
 overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.ex .win{white-space:pre-wrap;word-break:break-word}
.tok{border-right:1px solid rgba(0,0,0,.07);cursor:default}
.tok.max{outline:2px solid #e8590c;outline-offset:-1px;font-weight:700}
.tok.nc{color:#999;font-style:italic}
.src-corpus{color:#7048e8}
svg text{font-family:system-ui,sans-serif;font-size:12px;fill:#333}
svg rect.hbar{fill:rgb(240,140,0)}svg rect.hbar:hover{fill:#e8590c}
.note{color:#666;font-size:.88em}
"""


esc = html.escape


def fmt(x: float | None, digits: int = 4) -> str:
    return "–" if x is None else f"{x:.{digits}g}"


def pct(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{100 * x:.3g}%"


def role_badges(row: Mapping[str, Any], against: Mapping[str, str] | None = None) -> str:
    """The feature's roles; ``against``: category -> the verdicts against it as that
    category's specialist (findings board, e.g. "✗ chance"): that badge says so, in grey."""
    out = []
    for cat, score in zip(
        row["specialist_categories"] or [], row["specialist_scores"] or [], strict=True
    ):
        label = (against or {}).get(cat)
        if label:
            out.append(
                f'<span class="badge specialist against" title="a stage speaks against it">'
                f"specialist of {esc(cat)} (score {score}): {esc(label)}</span>"
            )
            continue
        out.append(
            f'<span class="badge specialist">specialist of {esc(cat)} (score {score})</span>'
        )
    if row.get("strongest_rank") is not None:
        out.append(f'<span class="badge strongest">strongest #{row["strongest_rank"]}</span>')
    if row.get("frequent_rank") is not None:
        out.append(f'<span class="badge frequent">frequent #{row["frequent_rank"]}</span>')
    return "".join(out)


def nice_ticks(top: float, n: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``top`` (steps of 1, 2 or 5 times a power of 10)."""
    if top <= 0:
        return [0.0]
    raw = top / n
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    ticks = [0.0]
    while ticks[-1] < top - 1e-12 * top:
        ticks.append(round(ticks[-1] + step, 12))
    return ticks


def _tick_label(x: float) -> str:
    return f"{x:.6g}"


def histogram_svg(hist: pl.DataFrame, width: int = 520, height: int = 230) -> str:
    """Bars of the non-zero activation histogram with round ticks on both axes (activation,
    number of tokens); each bar's range and count on hover."""
    if hist.height == 0 or hist["count"].sum() == 0:
        return '<p class="note">No counted token activates this feature.</p>'
    left, bottom, top_pad, right = 52, 40, 10, 12
    plot_w, plot_h = width - left - right, height - bottom - top_pad
    counts = hist["count"].to_list()
    x_lo, x_hi = float(hist["lo"][0]), float(hist["hi"][-1])
    x_ticks = [t for t in nice_ticks(x_hi) if t >= x_lo]
    x_max = max(x_hi, x_ticks[-1])
    y_ticks = nice_ticks(max(counts), 4)
    y_max = y_ticks[-1]

    def x_of(v: float) -> float:
        return left + plot_w * (v - x_lo) / (x_max - x_lo or 1.0)

    def y_of(c: float) -> float:
        return top_pad + plot_h * (1 - c / (y_max or 1.0))

    axis_y = top_pad + plot_h
    parts = []
    for t in y_ticks:
        y = y_of(t)
        parts.append(
            f'<line class="grid" x1="{left}" y1="{y:.2f}" x2="{left + plot_w}" y2="{y:.2f}" '
            'stroke="#eee"/>'
            f'<text class="ytick" x="{left - 6}" y="{y + 4:.2f}" text-anchor="end">'
            f"{_tick_label(t)}</text>"
        )
    for lo, hi, c in hist.select("lo", "hi", "count").rows():
        x0, x1 = x_of(lo), x_of(hi)
        y = y_of(c)
        parts.append(
            f'<rect class="hbar" x="{x0:.2f}" y="{y:.2f}" width="{max(x1 - x0 - 1, 0.5):.2f}" '
            f'height="{axis_y - y:.2f}" data-count="{c}"><title>activation {lo:.4g} – {hi:.4g}: '
            f"{c} token{'s' if c != 1 else ''}</title></rect>"
        )
    for t in x_ticks:
        x = x_of(t)
        parts.append(
            f'<line x1="{x:.2f}" y1="{axis_y}" x2="{x:.2f}" y2="{axis_y + 5}" stroke="#999"/>'
            f'<text class="xtick" x="{x:.2f}" y="{axis_y + 17}" text-anchor="middle">'
            f"{_tick_label(t)}</text>"
        )
    parts.append(
        f'<line x1="{left}" y1="{axis_y}" x2="{left + plot_w}" y2="{axis_y}" stroke="#999"/>'
        f'<line x1="{left}" y1="{top_pad}" x2="{left}" y2="{axis_y}" stroke="#999"/>'
        f'<text x="{left + plot_w / 2}" y="{height - 4}" text-anchor="middle">activation</text>'
        f'<text x="12" y="{top_pad + plot_h / 2}" text-anchor="middle" '
        f'transform="rotate(-90 12 {top_pad + plot_h / 2})">tokens</text>'
    )
    return (
        f'<svg id="histogram" role="img" aria-label="activation histogram" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}">' + "".join(parts) + "</svg>"
    )


def profile_table(
    profile: pl.DataFrame, own: Sequence[str], threshold: float, aggregation: str
) -> str:
    if profile.height == 0:
        return '<p class="note">No study texts.</p>'
    top = max(float(profile["mean_value"].max() or 0.0), 1e-12)
    # one number of decimals per column (4 significant digits for its largest value)
    d_mean = decimals_for(profile["mean_value"].to_list(), sig=4)
    d_max = decimals_for(profile["max_value"].to_list(), sig=4)
    rows = []
    for r in profile.iter_rows(named=True):
        cls = ' class="own"' if r["category"] in own else ""
        w = 100 * r["mean_value"] / top
        rows.append(
            f'<tr{cls} data-category="{esc(r["category"], quote=True)}"><td>{esc(r["category"])}'
            f'</td><td class="num">{r["n_texts"]}</td>'
            f'<td class="num">{fixed(r["mean_value"], d_mean)} '
            f'<span class="bar val" style="width:{w / 20:.2f}em"></span></td>'
            f'<td class="num">{pct(r["frac_active"])}</td><td class="num">{pct(r["frac_above"])}'
            f'</td><td class="num">{fixed(r["max_value"], d_max)}</td></tr>'
        )
    return (
        '<table class="data" id="profile"><thead><tr><th>category</th><th>texts</th>'
        f"<th>mean per-text value ({esc(aggregation)})</th><th>texts active</th>"
        f"<th>texts &gt; {threshold:g}</th><th>max per-text value</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def logits_tables(logits: pl.DataFrame) -> str:
    if logits.height == 0:
        return '<p class="note">No logit effects for this feature.</p>'
    scale = max(float(logits["effect"].abs().max() or 0.0), 1e-12)
    # one number of decimals for the feature's effects: its largest with 3 significant digits
    # (a feature of small effects read +0.000 for every token at 3 fixed decimals)
    d = decimals_for(logits["effect"].to_list(), sig=3, least=3, most=8)
    parts = []
    for direction, title, cls in (
        ("positive", "raises most", "pos"),
        ("negative", "lowers most", "neg"),
    ):
        sub = logits.filter(pl.col("direction") == direction).sort("rank")
        rows = "".join(
            f'<tr><td><code class="tokv" title="token id {r["token_id"]}">'
            f"{esc(r['token_display'])}</code></td>"
            f'<td class="num">{fixed(r["effect"], d, signed=True)} '
            f'<span class="bar {cls}" style="width:{4 * abs(r["effect"]) / scale:.2f}em"></span>'
            "</td></tr>"
            for r in sub.iter_rows(named=True)
        )
        parts.append(
            f'<div><h3>Logits it {title}</h3><table class="data logits" id="logits-{direction}">'
            f"<thead><tr><th>token</th><th>effect</th></tr></thead><tbody>{rows}</tbody>"
            "</table></div>"
        )
    return '<div class="cols">' + "".join(parts) + "</div>"


def example_html(ex: Mapping[str, Any], scale: float, label: str, runs: list | None = None) -> str:
    """One example's window, drawn by the one token renderer (core/html.py). With ``runs``,
    its tokens are appended there as compact items (``token_items``) and the window is an
    empty element TOKEN_DRAW_JS fills with the same spans (the page carries ``tokens_json``);
    without, the spans are written here."""
    toks = []
    for pos, raw, act, counted in zip(
        ex["window_pos"],
        ex["window_token_bytes"],
        ex["window_acts"],
        ex["window_counted"],
        strict=True,
    ):
        classes = ("max",) if pos == ex["token_pos"] else ()
        if not counted:
            classes += ("nc",)
        alpha = min(1.0, act / scale) if scale > 0 and act > 0 and counted else 0.0
        toks.append(
            Tok(
                raw=raw,
                pos=pos,
                act=act,
                alpha=alpha,
                classes=classes,
                label="⟨BOS⟩" if not counted and pos == 0 else None,
                note="" if counted else "not counted",
            )
        )
    src = ex["source"]
    if runs is None:
        window = f'<div class="win">{tokens_html(toks, breaks=False)}</div>'
    else:
        window = f'<div class="win" data-items="{len(runs)}"></div>'
        runs.append(token_items(toks, breaks=False))
    return (
        f'<div class="ex" data-source="{esc(src, quote=True)}"><div class="lab '
        f'src-{esc(src, quote=True)}" title="{esc(ex["text_id"], quote=True)}">{label}</div>'
        f"{window}</div>"
    )


def verdicts_against(verdicts: Mapping[str, Mapping[str, Any]] | None) -> dict[str, str]:
    """category -> "✗ <verdict>" where the validation speaks against this feature as that
    category's specialist (fails held-out or the null, or loses to a probe): its badge says so
    (the findings board's rule, validation/board.py)."""
    out = {}
    for cat, v in (verdicts or {}).items():
        if v.get("fails_heldout") or "loses to probe" in str(v.get("verdict") or ""):
            out[cat] = f"✗ {v['verdict']}"
    return out


def validation_html(verdicts: Mapping[str, Mapping[str, Any]]) -> str:
    """Each category's verdict; a failing one in red (docs/validation.md)."""
    out = []
    for cat, v in sorted(verdicts.items()):
        style = ' style="color:#b00"' if v.get("fails_heldout") else ""
        out.append(f"<strong>{esc(cat)}</strong>: <span{style}>{esc(v['verdict_text'])}</span>")
    return "<br>".join(out)


def feature_page(
    *,
    row: Mapping[str, Any],
    examples: pl.DataFrame,
    histogram: pl.DataFrame,
    profile: pl.DataFrame,
    logits: pl.DataFrame,
    settings: Mapping[str, Any],
    links: Mapping[str, str],
    verdicts: Mapping[str, Mapping[str, Any]] | None = None,
    related: str = "",
    causal: str = "",
) -> str:
    """One dashboard. ``row``: the feature's row of features.parquet; ``links``: 'index' (the
    dashboards index), 'layer' (this layer's list) and optional 'token_view' (category ->
    href); ``verdicts``: category -> the validation verdict of this feature as that category's
    specialist (verdict_text, fails_heldout; docs/validation.md), shown in the header;
    ``related``: the related-features block (related.py; empty: none)."""
    f = row["feature"]
    fam, layer = row["sae"], row["layer"]
    title = f"Feature #{f} · SAE {fam} · layer {layer}"
    own = list(row["specialist_categories"] or [])
    scale = float(row["max_activation"] or 0.0)
    threshold = float(settings["threshold"])
    if own:
        spec = ", ".join(
            f"<strong>{esc(c)}</strong> (score {s})"
            for c, s in zip(own, row["specialist_scores"], strict=True)
        )
    else:
        top = row.get("top_category")
        spec = "not a specialist" + (
            f"; highest mean per-text value in <strong>{esc(top)}</strong>" if top else ""
        )
    np_url = row.get("neuronpedia_url")
    np_html = (
        f'<a href="{esc(np_url, quote=True)}" rel="noopener">{esc(np_url)}</a>'
        if np_url
        else '<span class="note">unknown (not a known SAELens release)</span>'
    )
    density = (
        f"<strong>{pct(row['density'])}</strong> of counted tokens "
        f"({row['n_fire']} of {row['n_counted']})"
    )
    if row.get("corpus_n_counted") is not None:
        density += (
            f" — study texts {pct(row['study_density'])} ({row['study_n_fire']} of "
            f"{row['study_n_counted']}), reference corpus {pct(row['corpus_density'])} "
            f"({row['corpus_n_fire']} of {row['corpus_n_counted']})"
        )
    counted_note = "every position" if settings["include_bos"] else "every position but BOS"
    nav = [
        f'<a href="{esc(links["index"], quote=True)}">← all dashboards</a>',
        f'<a href="{esc(links["layer"], quote=True)}">SAE {esc(fam)} layer {layer}</a>',
    ]
    for cat, href in (links.get("token_view") or {}).items():
        nav.append(f'<a href="{esc(href, quote=True)}">token view: {esc(cat)} specialist</a>')
    parts = [
        f"<nav>{''.join(nav)}</nav>",
        f'<h1 id="title">{esc(title)}</h1>',
        f"<p>{role_badges(row, verdicts_against(verdicts))}</p>",
        '<table class="meta" id="header"><tbody>',
        f"<tr><th>feature</th><td>#{f}</td></tr>",
        f"<tr><th>SAE family · layer</th><td>{esc(fam)} · {layer}</td></tr>",
        f"<tr><th>hook</th><td><code>{esc(str(row.get('hook_name') or '–'))}</code></td></tr>",
        f"<tr><th>specialises in</th><td>{spec}</td></tr>",
        *(
            [f"<tr><th>validation</th><td>{validation_html(verdicts)}</td></tr>"]
            if verdicts
            else []
        ),
        f"<tr><th>density</th><td>{density}</td></tr>",
        f"<tr><th>max activation</th><td>{fmt(scale)}</td></tr>",
        f"<tr><th>Neuronpedia</th><td>{np_html}</td></tr>",
        "</tbody></table>",
        f'<p class="note">Counted tokens: {counted_note}. Density and histogram: '
        + (
            "study texts and reference corpus"
            if row.get("corpus_n_counted") is not None
            else "study texts"
        )
        + ".</p>",
        '<div class="cols"><div><h2>Activation histogram</h2>',
        histogram_svg(histogram),
        '<p class="note">Non-zero activations of counted tokens; hover a bar for its range.</p>',
        "</div><div><h2>Per-category profile</h2>",
        profile_table(profile, own, threshold, str(settings["aggregation"])),
        '<p class="note">Study texts only. Per-text value: the analysis\'s aggregation over a '
        "text's counted tokens; texts where the feature is inactive count as 0.</p></div></div>",
        related,
        causal,  # the causal check's block (causal.py; empty: none)
        "<h2>Logit effects</h2>",
        '<p class="note">Decoder direction through the unembedding (W_dec[f] · W_U): the tokens '
        "whose logits it raises and lowers most. ␣ space, ↵ newline, ⇥ tab.</p>",
        logits_tables(logits),
        "<h2>Max-activating examples</h2>",
        f'<p class="note">One per text, by the text\'s largest activation; '
        f"{settings['window']['before']} tokens before and {settings['window']['after']} after "
        "the max token (outlined). Shading from 0 "
        f'<span class="legend"></span> {fmt(scale)}; hover or click a token for its value. '
        "⟨BOS⟩ and grey italics: not counted.</p>",
        '<div id="info">hover a token</div>',
    ]
    runs: list[list] = []  # every window's token items, drawn by TOKEN_DRAW_JS (light pages)
    top_ex = examples.filter(pl.col("kind") == "top").sort("rank")
    parts.append('<div class="examples" id="top-examples">')
    if top_ex.height == 0:
        parts.append('<p class="note">No counted token activates this feature.</p>')
    for ex in top_ex.iter_rows(named=True):
        label = f"{ex['rank']}. <strong>{ex['activation']:.4g}</strong> · {esc(ex['category'])}" + (
            " (corpus)" if ex["source"] != "study" and ex["category"] != "corpus" else ""
        )
        parts.append(example_html(ex, scale, label, runs))
    parts.append("</div>")
    quant = examples.filter(pl.col("kind") == "quantile")
    if quant.height:
        parts.append(
            "<h2>Examples by activation quantile</h2>"
            '<p class="note">The non-zero activations cut at their quantiles into '
            f"{settings['quantiles']} intervals (highest first); texts evenly spread over each "
            "interval, each shown around its largest activation inside the interval: what weak "
            "firing looks like.</p>"
        )
        n_int = int(settings["quantiles"])
        for (interval,), grp in quant.group_by(["interval"], maintain_order=True):
            g = grp.sort("rank")
            lo, hi = g["interval_lo"][0], g["interval_hi"][0]
            parts.append(
                f"<h3>Interval {interval + 1} of {n_int} (quantiles {interval / n_int:.2g}–"
                f"{(interval + 1) / n_int:.2g}): activation {fmt(lo)} – {fmt(hi)}</h3>"
                f'<div class="examples quantile" data-interval="{interval}">'
            )
            for ex in g.iter_rows(named=True):
                label = f"<strong>{ex['activation']:.4g}</strong> · {esc(ex['category'])}"
                parts.append(example_html(ex, scale, label, runs))
            parts.append("</div>")
    parts.append(tokens_json(runs))
    return page(title, parts, CSS, TOKEN_DRAW_JS + TOKEN_JS)


def layer_page(features: pl.DataFrame, family: str, layer: int, index_href: str) -> str:
    """The list of one layer's dashboards (the Snakemake report shows this page)."""
    rows = []
    for r in features.iter_rows(named=True):
        rows.append(
            f'<tr><td><a href="{esc(r["page"], quote=True)}">#{r["feature"]}</a></td>'
            f'<td>{role_badges(r)}</td><td class="num">{pct(r["density"])}</td>'
            f'<td class="num">{fmt(r["max_activation"])}</td></tr>'
        )
    title = f"Feature dashboards · SAE {family} · layer {layer}"
    return page(
        title,
        [
            f'<nav><a href="{esc(index_href, quote=True)}">← all dashboards</a></nav>',
            f"<h1>{esc(title)}</h1>",
            '<table class="data"><thead><tr><th>feature</th><th>roles</th><th>density</th>'
            "<th>max activation</th></tr></thead><tbody>",
            *rows,
            "</tbody></table>",
        ],
        CSS,
    )

"""The "What it detects" block of a specialist's dashboard (docs/surface.md): the surface stage's
verdict with its numbers — top tokens and their share of the activation mass, held-out token
and bigram R², the trigger tokens inside vs outside the category, and the probe texts it fires
on, with two examples of each set. Drawn from results/surface/specialists.parquet only."""

from __future__ import annotations

import html
from collections.abc import Callable

import polars as pl

esc = html.escape


def _num(x, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _examples(text: str | None) -> str:
    if not text:
        return ""
    items = "".join(f"<li>{esc(part)}</li>" for part in text.split(" || "))
    return f'<ul class="surface-examples">{items}</ul>'


def _probe_rows(r: dict) -> list[str]:
    if not r.get("meaning_n"):
        return [
            '<tr><th>probe texts</th><td><span class="note">none for this category '
            "(surface.probe_texts)</span></td></tr>"
        ]
    rows = []
    for name, title in (("markers", "markers without meaning"), ("meaning", "meaning only")):
        rows.append(
            f"<tr><th>{title}</th><td>fires on <strong>{r[f'{name}_fired']}/{r[f'{name}_n']}"
            f"</strong> texts (AUROC vs neutral {_num(r.get(f'{name}_auroc'))})"
            f"{_examples(r.get(f'{name}_examples'))}</td></tr>"
        )
    rows.append(
        f"<tr><th>neutral</th><td>fires on {r['neutral_fired']}/{r['neutral_n']} texts</td></tr>"
    )
    return rows


def surface_block(table: pl.DataFrame, family: str, layer: int, feature: int) -> str:
    """The block of ``feature`` (one table per category it is the specialist of); "" when the
    surface stage did not measure it."""
    rows = table.filter(
        (pl.col("sae") == family) & (pl.col("layer") == int(layer)) & (pl.col("feature") == feature)
    ).sort("category")
    out = []
    for r in rows.iter_rows(named=True):
        if r.get("n_trigger_out"):
            outside = (
                f"outside ratio <strong>{_num(r['outside_ratio'])}</strong> (mean activation on "
                f"them outside the category / inside: {r['n_trigger_out']} occurrences outside, "
                f"{r['n_trigger_in']} inside)"
            )
        else:
            outside = f"they never occur outside the category ({r['n_trigger_in']} inside)"
        out += [
            f'<table class="meta surface" data-category="{esc(r["category"], quote=True)}">',
            f"<tbody><tr><th>{esc(r['category'])}</th><td><strong>"
            f"{esc(r['verdict_label'].split(' (')[0])}</strong></td></tr>",
            f"<tr><th>top tokens (share of its activation)</th><td>{esc(r['top5_tokens'])} "
            f"(top 5: {_num(r['top5_mass'])})</td></tr>",
            f"<tr><th>token R² (held out)</th><td><strong>{_num(r['token_r2_seen'])}</strong> on "
            f"tokens seen in training, {_num(r['token_r2'])} overall "
            f"({_num(r['unseen_mass'])} of the mass on unseen tokens); bigram R² "
            f"{_num(r['bigram_r2'])}</td></tr>",
            f"<tr><th>trigger tokens</th><td>{esc(r['trigger_tokens'])}; {outside}</td></tr>",
            *_probe_rows(r),
            "</tbody></table>",
        ]
    if not out:
        return ""
    return (
        '<h2 id="what-it-detects">What it detects</h2><p class="note">The surface stage '
        "(docs/surface.md): is its activation its token's identity (token R² near 1, same "
        "firing outside the category), gated by context (low R², silent on the same tokens "
        "elsewhere) or the category's meaning (fires on texts without the markers)?</p>"
        + "".join(out)
    )


def chained(*blocks: Callable[[int], str] | None) -> Callable[[int], str] | None:
    """One block function drawing the given ones in order (None: none given)."""
    given = [b for b in blocks if b is not None]
    if not given:
        return None
    return lambda f: "".join(b(f) for b in given)

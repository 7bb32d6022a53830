"""Token-level views: for a specialist feature, sample texts of every category with each token
shaded by the feature's activation (value on hover). Plain, self-contained HTML + CSS + JS.

Light whatever the corpus: a page holds ``n_samples`` texts per category (never the whole
category), and their tokens as compact items (core/html.py ``token_items``, ~6 bytes a token
without activation) that a small script draws as the same spans ``tokens_html`` writes: ~25 KB
a page on the demo instead of ~350 KB.

Samples per category: the ``n_samples`` texts with the highest per-text value of the feature
(ties: higher per-token max, then text order); when fewer texts are active, the remaining
samples are the category's first texts in text order.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from ..core.contract import TOKENS_SCHEMA
from ..core.html import TOKEN_DRAW_JS, TOKEN_JS, Tok, page, token_items, tokens_json
from ..core.io import scan_shards, write_text
from .neuronpedia import feature_url
from .pertext import scan_activations

N_SAMPLES = 2

CSS = """
.own{background:#fff6e0;border-left:4px solid #f08c00;padding:.2em .6em}
.badge{display:inline-block;font-size:.75em;background:#f08c00;color:#fff;border-radius:3px;
 padding:0 .4em;margin-left:.4em;vertical-align:middle}
.warn{background:#fdecea;border:1px solid #e0a0a0;padding:.5em .8em;border-radius:4px}
.sample{margin:.8em 0 1.2em}
.meta{font-size:.85em;color:#555;margin-bottom:.2em}
.text{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.92em;
 white-space:pre-wrap;word-break:break-word;border:1px solid #ddd;border-radius:4px;
 padding:.5em;background:#fff}
.bos{color:#999;font-style:italic}
table.stats td{padding:0 .8em 0 0}
"""


def _alpha(act: float, scale: float) -> float:
    if scale <= 0 or act <= 0:
        return 0.0
    return round(min(1.0, act / scale), 3)


def select_samples(
    pt_feature: pl.DataFrame, texts: pl.DataFrame, n_samples: int = N_SAMPLES
) -> pl.DataFrame:
    """Sample texts per category for one feature (see module doc). Columns: category, text_id,
    text_order, value, max, sample_rank."""
    joined = texts.select("text_id", "category", "text_order").join(
        pt_feature.select("text_id", "value", "max"), on="text_id", how="left"
    )
    joined = joined.with_columns(pl.col("value").fill_null(0.0), pl.col("max").fill_null(0.0))
    return (
        joined.sort(
            ["category", "value", "max", "text_order"], descending=[False, True, True, False]
        )
        .with_columns((pl.int_range(pl.len()).over("category") + 1).alias("sample_rank"))
        .filter(pl.col("sample_rank") <= n_samples)
    )


@dataclass(frozen=True)
class LayerViews:
    """What every token view page of one (sae, layer) shares. ``tokens``: text_id, token_pos,
    token, bos of the sample texts."""

    sae: str
    layer: int
    tokens: pl.DataFrame
    neuronpedia_id: str | None
    include_bos: bool
    threshold: float
    categories: Sequence[str]


def render_page(
    views: LayerViews,
    category: str,
    spec: Mapping[str, Any] | None,
    samples: pl.DataFrame,
    acts: pl.DataFrame,
    scale: float,
    category_hrefs: Mapping[str, str],
    index_href: str,
) -> str:
    """One page of ``views``. ``acts``:
    text_id, token_pos, activation of the feature on them."""
    sae, layer, tokens, threshold = views.sae, views.layer, views.tokens, views.threshold
    include_bos, categories = views.include_bos, views.categories
    esc = html.escape
    feature = spec.get("feature") if spec else None
    url = feature_url(views.neuronpedia_id, feature)
    if feature is None:
        title = f"SAE {sae} · layer {layer} · {category}: no candidate feature"
    else:
        title = f"SAE {sae} · layer {layer} · specialist of {category}: feature #{feature}"
    parts = [
        f'<nav><a href="{esc(index_href)}">← index</a> categories at this layer: '
        + " ".join(
            f'<a href="{esc(category_hrefs[c], quote=True)}">{esc(c)}</a>'
            if c != category and c in category_hrefs
            else f"<strong>{esc(c)}</strong>"
            for c in categories
        )
        + "</nav>",
    ]
    if feature is None:
        parts.append(f"<h1>{esc(title)}</h1>")
        parts.append(
            '<p class="warn">No feature is active on any text of this category at this layer, '
            "so there is no specialist candidate.</p>"
        )
        return page(title, parts, CSS)
    feat_html = f'<a href="{esc(url, quote=True)}">#{feature}</a>' if url else f"#{feature}"
    parts.append(
        f"<h1>SAE {esc(sae)} · layer {layer} · specialist of "
        f"<em>{esc(category)}</em>: feature {feat_html}</h1>"
    )
    if not spec.get("has_specialist"):
        parts.append(
            f'<p class="warn">No specialist: the best candidate\'s score is {spec.get("score")} '
            "(≤ 0). Showing the best candidate.</p>"
        )
    parts.append(
        '<table class="stats"><tr>'
        f"<td>score = n_in − n_out = {spec.get('n_in')} − {spec.get('n_out')} = "
        f"<strong>{spec.get('score')}</strong></td>"
        f"<td>in-category peak (per-text value) {spec.get('peak'):.4g}</td>"
        f"<td>threshold {threshold:g}</td>"
        f"<td>texts in category {spec.get('n_category')}</td></tr></table>"
    )
    parts.append(
        f"<p>Shading: per-token activation of feature #{feature}, from 0 "
        f'<span class="legend"></span> {scale:.4g} (its largest activation on a counted '
        "position at this layer). Hover or click a token for its value. "
        "BOS "
        + ("is counted" if include_bos else "is not counted and is shown in grey")
        + ". ↵ newline, ⇥ tab, ␣ space.</p>"
    )
    parts.append('<div id="info">hover a token</div>')
    runs: list[list] = []  # each sample's token items, drawn by TOKEN_DRAW_JS (tokens_json)
    acts_map = {(t, p): a for t, p, a in acts.select("text_id", "token_pos", "activation").rows()}
    # plain Python groups: one polars call per page instead of several per sample text
    token_groups: dict[str, list[tuple]] = {}
    for tid, pos, raw, bos in (
        tokens.select("text_id", "token_pos", "token_bytes", "bos")
        .sort("text_id", "token_pos")
        .rows()
    ):
        token_groups.setdefault(tid, []).append((pos, raw, bos))
    samples_by_category: dict[str, list[dict]] = {}
    if samples.height:
        for s in samples.sort("category", "sample_rank").iter_rows(named=True):
            samples_by_category.setdefault(s["category"], []).append(s)
    order = [category] + [c for c in categories if c != category]
    for cat in order:
        own = cat == category
        sec_cls = ' class="own"' if own else ""
        badge = '<span class="badge">specialist\'s category</span>' if own else ""
        parts.append(f'<section data-category="{esc(cat)}"><h2{sec_cls}>{esc(cat)}{badge}</h2>')
        for s in samples_by_category.get(cat, []):
            tid = s["text_id"]
            fires = s["value"] > threshold
            head = (
                f'<div class="sample"><div class="meta">text <code>{esc(tid)}</code> · '
                f"per-text value {s['value']:.4g} · max token activation {s['max']:.4g} · "
                + ("<strong>above threshold</strong>" if fires else "not above threshold")
                + f'</div><div class="text" data-items="{len(runs)}">'
            )
            toks = []
            for pos, raw, bos in token_groups.get(tid, ()):
                act = float(acts_map.get((tid, pos), 0.0))
                counted = include_bos or not bos
                toks.append(
                    Tok(
                        raw=raw,
                        pos=pos,
                        act=act,
                        alpha=_alpha(act, scale) if counted else 0.0,
                        classes=() if counted else ("bos",),
                        label="⟨BOS⟩" if bos else None,
                        note=("BOS" + ("" if counted else " (not counted)")) if bos else "",
                    )
                )
            runs.append(token_items(toks))
            parts.append(head + "</div></div>")
        parts.append("</section>")
    parts.append(tokens_json(runs))
    return page(title, parts, CSS, TOKEN_DRAW_JS + TOKEN_JS)


def build_token_views(
    *,
    sae: str,
    layer: int,
    specialists: pl.DataFrame,
    per_text: pl.DataFrame | pl.LazyFrame,
    texts: pl.DataFrame,
    token_paths: Sequence[str | os.PathLike],
    activation_paths: Sequence[str | os.PathLike],
    outputs: Mapping[str, str | os.PathLike],
    neuronpedia_id: str | None,
    include_bos: bool,
    threshold: float,
    index_path: str | os.PathLike,
    n_samples: int = N_SAMPLES,
) -> None:
    """Write one page per category (``outputs``: category -> path) for (sae, layer)."""
    spec = specialists.filter((pl.col("sae") == sae) & (pl.col("layer") == layer))
    categories = sorted(texts["category"].unique().to_list())
    features = [f for f in spec["feature"].to_list() if f is not None]
    # only the specialists' rows: a lazy per-text table is never read whole
    per_text = per_text.lazy().filter(pl.col("feature").is_in(features)).collect()
    samples_by_cat: dict[str, pl.DataFrame] = {}
    needed: set[str] = set()
    for row in spec.iter_rows(named=True):
        if row["feature"] is None:
            continue
        pt_f = per_text.filter(pl.col("feature") == row["feature"])
        samples = select_samples(pt_f, texts, n_samples)
        samples_by_cat[row["category"]] = samples
        needed |= set(samples["text_id"].to_list())
    needed_list = sorted(needed)
    tokens = (
        scan_shards(token_paths, TOKENS_SCHEMA, ["text_id", "token_pos", "token_bytes", "bos"])
        .filter(pl.col("text_id").is_in(needed_list))
        .collect()
    )
    acts = (
        scan_activations(activation_paths)
        .filter(pl.col("feature").is_in(features) & pl.col("text_id").is_in(needed_list))
        .collect()
    )
    spec_rows = {r["category"]: r for r in spec.iter_rows(named=True)}
    views = LayerViews(sae, layer, tokens, neuronpedia_id, include_bos, threshold, categories)
    for cat, out in outputs.items():
        row = spec_rows.get(cat)
        feature = row["feature"] if row else None
        if feature is not None:
            pt_f = per_text.filter(pl.col("feature") == feature)
            scale = float(pt_f["max"].max() or 0.0)
            acts_f = acts.filter(pl.col("feature") == feature)
            samples = samples_by_cat[cat]
        else:
            scale, acts_f, samples = 0.0, acts.head(0), pl.DataFrame()
        hrefs = {c: os.path.relpath(p, Path(out).parent) for c, p in outputs.items()}
        index_href = os.path.relpath(index_path, Path(out).parent)
        page = render_page(views, cat, row, samples, acts_f, scale, hrefs, index_href)
        write_text(page, out)

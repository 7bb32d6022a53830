"""The "related features" block of a dashboard, from the comparison stage's related-features
table (results_dir/comparison/related_features.parquet, docs/comparison.md), read as a file:
per feature, its nearest features by decoder cosine in its own SAE, in its family's next layer,
in each other SAE family at its layer and, for an attention-out or MLP-out feature, in the
residual SAE that reads what it writes (written_into), with their co-activation. Only
neighbours above the table's cosine floor are listed; a relation with none says "none above
<floor>". A related feature that has a dashboard of its own is linked to it."""

from __future__ import annotations

import html
import os
from collections.abc import Mapping
from pathlib import Path

import polars as pl

from .data import select_features

RELATIONS = {
    "same_sae": "Same SAE",
    "next_layer": "Next layer (same family)",
    "other_component": "Other components (same layer)",
    "written_into": "Written into the residual stream (the residual SAE that reads it next)",
}


def dashboard_pages(
    specialists: pl.DataFrame,
    strongest: pl.DataFrame,
    frequent: pl.DataFrame,
    dirs: Mapping[tuple[str, int], str],
    top_k: int,
) -> dict[tuple[str, int, int], str]:
    """(family, layer, feature) -> the page of every dashboard of the run (the dashboards of
    every SAE are chosen from the same three tables: data.select_features)."""
    pages = {}
    for (family, layer), directory in dirs.items():
        chosen = select_features(specialists, strongest, frequent, family, int(layer), top_k)
        for f in chosen["feature"].to_list():
            pages[(family, int(layer), int(f))] = f"{directory}/feature={int(f)}.html"
    return pages


def related_block(
    related: pl.DataFrame,
    family: str,
    layer: int,
    feature: int,
    pages: Mapping[tuple[str, int, int], str],
    page_dir: str | os.PathLike,
    min_cosine: float | None = None,
) -> str:
    """HTML of the block (empty string when the table has no row for the feature).
    ``min_cosine``: the table's floor (its metadata), named where a searched SAE has no
    neighbour above it (a row with ``other_feature`` null)."""
    esc = html.escape
    rows = related.filter(
        (pl.col("sae") == family) & (pl.col("layer") == layer) & (pl.col("feature") == feature)
    )
    if rows.height == 0:
        return ""
    floor = "the floor" if min_cosine is None else f"{min_cosine:.2f}"
    parts = [
        '<h2 id="related">Related features</h2>',
        '<p class="note">Nearest features by decoder cosine (the SAEs decode into the residual '
        "stream, so directions compare across layers and components; hook_z SAEs only within "
        f"themselves), only those above {esc(floor)}, and the correlation r of per-token "
        "activations over the study texts' counted tokens. Linked where the feature has a "
        "dashboard.</p>",
    ]
    for relation, title in RELATIONS.items():
        part = rows.filter(pl.col("relation") == relation).sort(
            "other_sae", "other_layer", "rank", nulls_last=True
        )
        if part.height == 0:
            continue
        parts.append(
            f'<h3>{esc(title)}</h3><table class="data related" data-relation="{relation}">'
            "<thead><tr><th>feature</th><th>SAE · layer</th><th>cosine</th><th>r</th></tr>"
            "</thead><tbody>"
        )
        for r in part.iter_rows(named=True):
            if r["other_feature"] is None:  # searched, nothing above the floor
                parts.append(
                    f'<tr class="none"><td colspan="4">none above {esc(floor)} in '
                    f"{esc(r['other_sae'])} · {int(r['other_layer'])}</td></tr>"
                )
                continue
            key = (r["other_sae"], int(r["other_layer"]), int(r["other_feature"]))
            label = f"#{key[2]}"
            page = pages.get(key)
            if page is not None:
                href = Path(os.path.relpath(page, page_dir)).as_posix()
                label = f'<a href="{esc(href, quote=True)}">{label}</a>'
            corr = "–" if r["correlation"] is None else f"{r['correlation']:.3f}"
            parts.append(
                f"<tr><td>{label}</td><td>{esc(key[0])} · {key[1]}</td>"
                f'<td class="num">{r["cosine"]:.3f}</td><td class="num">{corr}</td></tr>'
            )
        parts.append("</tbody></table>")
    return "".join(parts)

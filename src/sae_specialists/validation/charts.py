"""Altair charts of the validation tables (saved with ``analysis.charts.save_chart``: HTML + PNG).

- ``heldout_chart``: per category, held-out AUROC by layer of the specialist against the
  baselines (difference of means, dense probe, k-sparse probes) and the random-feature floor;
  no bar for a cell without a specialist ("no specialist" instead);
- ``null_chart``: per (category, layer), the shuffled-label null of the best score (bars: how
  many permutations reach each score) with the real specialist's score marked.
"""

from __future__ import annotations

import altair as alt
import polars as pl

from .table import baseline_columns
from .verdict import baseline_label

SPECIALIST = "specialist (held out)"
FLOOR = "random feature (floor)"


def _layer_axis() -> alt.X:
    return alt.X("layer:O", title="layer", axis=alt.Axis(labelAngle=0))


def heldout_long(cells: pl.DataFrame) -> pl.DataFrame:
    """(sae, layer, category, series, auroc, verdict, kind) rows: the specialist, the floor and
    each baseline (kind "bar"). A cell without a specialist has no specialist bar (its folds'
    all-zero score would draw AUROC 0.5, which reads as a measured chance result) but a
    "no specialist" row (kind "none", auroc 0) that the chart writes in its place."""
    keys = ["sae", "layer", "category", "verdict"]
    has = pl.col("has_specialist").fill_null(False)
    bar = pl.lit("bar").alias("kind")
    parts = [
        cells.filter(has).select(
            *keys, pl.lit(SPECIALIST).alias("series"), pl.col("heldout_auroc").alias("auroc"), bar
        ),
        cells.select(
            *keys, pl.lit(FLOOR).alias("series"), pl.col("floor_auroc").alias("auroc"), bar
        ),
    ]
    for name in baseline_columns(cells):
        parts.append(
            cells.select(
                *keys,
                pl.lit(baseline_label(name)).alias("series"),
                pl.col(f"{name}_auroc").alias("auroc"),
                bar,
            )
        )
    bars = pl.concat(parts, how="vertical").filter(pl.col("auroc").is_not_null())
    none = cells.filter(~has).select(
        *keys,
        pl.lit(SPECIALIST).alias("series"),
        pl.lit(0.0).alias("auroc"),
        pl.lit("none").alias("kind"),
    )
    return pl.concat([bars, none], how="vertical")


def series_order(cells: pl.DataFrame) -> list[str]:
    return [SPECIALIST, *(baseline_label(n) for n in baseline_columns(cells)), FLOOR]


BAR_WIDTH = 10  # px per bar: the panels of a demo-sized run fit a page (and its thumbnail)
ROW_WIDTH = 900  # px the panels of one row may take together


def heldout_chart(cells: pl.DataFrame, sae: str) -> alt.TopLevelMixin:
    """Held-out AUROC by layer, one panel per category, one bar per method side by side (SAE
    ``sae``); the dotted rule is chance (0.5). A cell without a specialist reads "no
    specialist" where its bar would be. As many panels per row as fit ``ROW_WIDTH`` px."""
    data = heldout_long(cells.filter(pl.col("sae") == sae)).sort(
        "category", "kind", "series", "layer"
    )
    order = series_order(cells)
    base = alt.Chart().encode(
        x=_layer_axis(),
        xOffset=alt.XOffset("series:N", sort=order, scale=alt.Scale(domain=order)),
        y=alt.Y("auroc:Q", title="held-out AUROC", scale=alt.Scale(domain=[0, 1])),
        tooltip=["category", "layer", "series", alt.Tooltip("auroc:Q", format=".3f"), "verdict"],
    )
    bars = (
        base.mark_bar()
        .encode(
            color=alt.Color(
                "series:N", title="method", sort=order, scale=alt.Scale(scheme="tableau10")
            ),
            opacity=alt.condition(alt.datum.series == FLOOR, alt.value(0.45), alt.value(1.0)),
        )
        .transform_filter(alt.datum.kind == "bar")
    )
    none = (
        base.mark_text(angle=270, align="left", baseline="middle", dx=3, fontSize=9, color="#555")
        .encode(text=alt.value("no specialist"), tooltip=["category", "layer", "verdict"])
        .transform_filter(alt.datum.kind == "none")
    )
    chance = alt.Chart().mark_rule(color="#555", strokeDash=[2, 2]).encode(y=alt.datum(0.5))
    n_layers = max(1, data["layer"].n_unique())
    width = max(120, BAR_WIDTH * len(order) * n_layers)
    columns = max(1, min(3, ROW_WIDTH // (width + 40)))
    layered = alt.layer(bars, none, chance, data=data).properties(width=width, height=150)
    return layered.facet(facet=alt.Facet("category:N", title=None), columns=columns).properties(
        title=f"Held-out AUROC by layer: specialist vs baselines — {sae} (dotted: chance)"
    )


def null_chart(null: pl.DataFrame, cells: pl.DataFrame, sae: str) -> alt.TopLevelMixin:
    """Shuffled-label null of the best score per (category, layer), real score marked."""
    counts = (
        null.filter(pl.col("sae") == sae)
        .group_by("layer", "category", "score")
        .agg(pl.len().cast(pl.Int64).alias("permutations"))
        .with_columns(pl.lit("null").alias("kind"))
    )
    real = cells.filter(pl.col("sae") == sae).select(
        "layer",
        "category",
        pl.col("score").fill_null(0).alias("score"),
        pl.lit(None, dtype=pl.Int64).alias("permutations"),
        pl.lit("real").alias("kind"),
        "p_value",
        "verdict",
    )
    data = pl.concat([counts, real], how="diagonal_relaxed").sort(
        "category", "layer", "kind", "score"
    )
    base = alt.Chart().encode(x=alt.X("score:Q", title="best score"))
    bars = (
        base.mark_bar(color="#9ab")
        .encode(
            y=alt.Y("permutations:Q", title="permutations"),
            tooltip=["category", "layer", "score", "permutations"],
        )
        .transform_filter(alt.datum.kind == "null")
    )
    rule = (
        base.mark_rule(color="#c00", strokeWidth=2)
        .encode(
            tooltip=[
                "category",
                "layer",
                alt.Tooltip("score:Q", title="real score"),
                alt.Tooltip("p_value:Q", format=".4f"),
                "verdict",
            ],
        )
        .transform_filter(alt.datum.kind == "real")
    )
    return (
        alt.layer(bars, rule, data=data)
        .properties(width=130, height=80)
        .facet(row=alt.Row("category:N", title=None), column=alt.Column("layer:O"))
        .properties(
            title=f"Best score n_in − n_out under shuffled labels (bars) and the real "
            f"specialist's (red) — {sae}"
        )
    )

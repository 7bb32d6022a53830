"""Charts of the comparison tables (Altair; saved like every chart: analysis.charts.save_chart,
self-contained HTML with Vega inlined + PNG)."""

from __future__ import annotations

import altair as alt
import polars as pl

from ..analysis.charts import tooltip_fields
from .components import SPECIALIST_COLUMNS

MAX_CHILD_COLOURS = 5


def _family_order(grid: pl.DataFrame) -> list[str]:
    """Families in the order their hooks are written (earliest layer's hook), then by name."""
    order = grid.group_by("sae").agg(pl.col("block").min(), pl.col("stage").min())
    return order.sort("block", "stage", "sae")["sae"].to_list()


def components_chart(grid: pl.DataFrame) -> alt.FacetChart:
    """Layer x family grid per category: specialist score (colour), feature id (text); a thick
    border marks the strongest family at the layer, "first" the family's earliest layer."""
    data = grid.with_columns(
        pl.when(pl.col("has_specialist"))
        .then(
            pl.format("#{}", pl.col("feature"))
            + pl.when(pl.col("earliest")).then(pl.lit(" first")).otherwise(pl.lit(""))
        )
        .otherwise(pl.lit("–"))
        .alias("label"),
        pl.when(pl.col("has_specialist")).then(pl.col("score")).otherwise(None).alias("shown"),
    )
    scores = [s for s in data["shown"].to_list() if s is not None] or [1]
    base = alt.Chart().encode(
        x=alt.X("layer:O", title="layer", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("sae:N", title="SAE family", sort=_family_order(grid)),
        tooltip=[
            *("category", "sae", "layer", "hook_name"),
            *SPECIALIST_COLUMNS,
            *("has_specialist", "strongest", "earliest"),
        ],
    )
    rect = base.mark_rect().encode(
        color=alt.Color(
            "shown:Q",
            title="specialist score",
            scale=alt.Scale(scheme="blues", domain=[0, max(scores)]),
        ),
        stroke=alt.condition(alt.datum.strongest, alt.value("black"), alt.value("white")),
        strokeWidth=alt.condition(alt.datum.strongest, alt.value(3), alt.value(0.5)),
    )
    text = base.mark_text(fontSize=11).encode(text="label:N")
    n_layers = max(1, data["layer"].n_unique())
    n_families = max(1, data["sae"].n_unique())
    return (
        alt.layer(rect, text, data=data)
        .properties(width=max(140, 70 * n_layers), height=max(60, 26 * n_families))
        .facet(facet=alt.Facet("category:N", title=None), columns=3)
        .properties(
            title=(
                "Specialist per SAE family and layer (score n_in − n_out; thick border: "
                "strongest family at the layer; 'first': the family's earliest layer)"
            )
        )
    )


def _member_label(sae: str, layer: int, feature: int) -> str:
    return f"{sae} L{layer} #{feature}"


def links_chart(members: pl.DataFrame, links: pl.DataFrame) -> alt.ConcatChart:
    """Per category: decoder cosine (colour) and co-activation r (text) of every pair of its
    specialists, members in forward-pass order."""
    panels = []
    for category in sorted(members["category"].unique().to_list()):
        mem = members.filter(pl.col("category") == category)
        labels = [
            _member_label(r["sae"], r["layer"], r["feature"]) for r in mem.iter_rows(named=True)
        ]
        cells = [
            {"a": lab, "b": lab, "cosine": 1.0, "correlation": 1.0, "note": None} for lab in labels
        ]
        for r in links.filter(pl.col("category") == category).iter_rows(named=True):
            a = _member_label(r["sae_a"], r["layer_a"], r["feature_a"])
            b = _member_label(r["sae_b"], r["layer_b"], r["feature_b"])
            for x, y in ((a, b), (b, a)):
                cells.append(
                    {
                        "a": x,
                        "b": y,
                        "cosine": r["cosine"],
                        "correlation": r["correlation"],
                        "note": r["cosine_note"],
                    }
                )
        data = pl.DataFrame(
            cells,
            schema={
                "a": pl.String,
                "b": pl.String,
                "cosine": pl.Float64,
                "correlation": pl.Float64,
                "note": pl.String,
            },
        ).with_columns(
            pl.when(pl.col("correlation").is_null())
            .then(pl.lit("r –"))
            .otherwise(pl.format("r {}", pl.col("correlation").round(2)))
            .alias("label")
        )
        base = alt.Chart(data).encode(
            x=alt.X("a:N", sort=labels, title=None, axis=alt.Axis(labelAngle=-40)),
            y=alt.Y("b:N", sort=labels, title=None),
            tooltip=[
                alt.Tooltip("a:N", title="feature"),
                alt.Tooltip("b:N", title="other feature"),
                alt.Tooltip("cosine:Q", format=".3f", title="decoder cosine"),
                alt.Tooltip("correlation:Q", format=".3f", title="co-activation r"),
                alt.Tooltip("note:N", title="note"),
            ],
        )
        rect = base.mark_rect().encode(
            color=alt.Color(
                "cosine:Q",
                title="decoder cosine",
                scale=alt.Scale(scheme="redblue", domain=[-1, 1], reverse=True),
            )
        )
        text = base.mark_text(fontSize=9).encode(text="label:N")
        side = max(80, 34 * len(labels))
        panels.append((rect + text).properties(title=category, width=side, height=side))
    if not panels:
        panels = [
            alt.Chart(pl.DataFrame({"x": [0]}))
            .mark_text(text="no specialists")
            .properties(width=200, height=40)
        ]
    return alt.concat(*panels, columns=3).properties(
        title="Specialists of each category across layers and families: decoder cosine "
        "(colour) and co-activation r (text)"
    )


def splits_chart(splits: pl.DataFrame) -> alt.Chart:
    """Per category: the share of the narrowest specialist's texts each wider SAE's children
    take (stacked; the rest is uncovered)."""
    if splits.height == 0:
        return (
            alt.Chart(pl.DataFrame({"x": [0]}))
            .mark_text(text="no width ladder with a specialist at its narrowest width")
            .properties(width=300, height=40)
        )
    ranked = splits.with_columns(
        pl.int_range(pl.len()).over("category", "ladder", "child_sae").alias("child_rank")
    ).with_columns(
        pl.format("{} ({})", pl.col("child_sae"), pl.col("child_d_sae")).alias("width"),
        pl.when(pl.col("child_rank") < MAX_CHILD_COLOURS)
        .then(pl.format("child {}", pl.col("child_rank") + 1))
        .otherwise(pl.lit("other children"))
        .alias("child"),
        pl.format("#{}", pl.col("child_feature")).alias("label"),
    )
    uncovered = (
        ranked.group_by("category", "ladder", "width", "child_d_sae")
        .agg((1 - pl.col("share").sum()).clip(0, 1).alias("share"))
        .with_columns(
            pl.lit("uncovered").alias("child"),
            pl.lit("").alias("label"),
            pl.lit(None, dtype=pl.Int64).alias("child_feature"),
            pl.lit(None, dtype=pl.Float64).alias("correlation"),
            pl.lit(None, dtype=pl.Float64).alias("cosine"),
            pl.lit(None, dtype=pl.Float64).alias("coverage"),
        )
    )
    cols = [
        "category",
        "ladder",
        "width",
        "child_d_sae",
        "child",
        "label",
        "child_feature",
        "share",
        "correlation",
        "cosine",
        "coverage",
    ]
    data = pl.concat([ranked.select(cols), uncovered.select(cols)], how="vertical_relaxed")
    widths = data.select("width", "child_d_sae").unique().sort("child_d_sae")["width"].to_list()
    kinds = [f"child {i + 1}" for i in range(MAX_CHILD_COLOURS)] + ["other children", "uncovered"]
    base = alt.Chart().encode(
        x=alt.X("width:N", sort=widths, title="wider SAE (d_sae)", axis=alt.Axis(labelAngle=0)),
        y=alt.Y(
            "share:Q",
            title="share of the narrow specialist's texts",
            stack="zero",
            scale=alt.Scale(domain=[0, 1]),
        ),
        order=alt.Order("child:N", sort="ascending"),
        tooltip=tooltip_fields(
            "category width child child_feature share:.2f coverage:.2f correlation:.3f cosine:.3f"
        ),
    )
    bars = base.mark_bar().encode(
        color=alt.Color(
            "child:N",
            sort=kinds,
            scale=alt.Scale(
                domain=kinds,
                range=["#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756", "#9d755d", "#dddddd"],
            ),
            title=None,
        )
    )
    text = base.mark_text(dy=0, baseline="top", fontSize=9, color="white").encode(
        text="label:N", y=alt.Y("share:Q", stack="zero")
    )
    return (
        alt.layer(bars, text, data=data)
        .properties(width=max(120, 80 * len(widths)), height=200)
        .facet(facet=alt.Facet("category:N", title=None), columns=3)
        .properties(title="How each narrow specialist splits across wider SAEs")
    )

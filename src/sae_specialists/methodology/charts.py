"""Altair charts of the methodology tables (saved with ``analysis.charts.save_chart``)."""

from __future__ import annotations

import altair as alt
import polars as pl

from ..analysis.charts import category_by_layer, layer_axis, tooltip_fields
from .ablation import ENCODINGS


def _per_sae(charts: list[alt.TopLevelMixin], title: str) -> alt.TopLevelMixin:
    if len(charts) == 1:
        return charts[0].properties(title=title) if hasattr(charts[0], "properties") else charts[0]
    return alt.vconcat(*charts).properties(title=title)


def _method_order(summary: pl.DataFrame) -> list[str]:
    keyed = summary.select(
        "method", "encoding", "padding", "include_bos", "aggregation", "reference"
    ).unique()
    keyed = keyed.with_columns(
        pl.col("encoding")
        .replace_strict({e: i for i, e in enumerate(ENCODINGS)}, return_dtype=pl.Int64)
        .alias("_e"),
        (pl.col("aggregation") != "mean").alias("_a"),
    ).sort("_e", "padding", "include_bos", "_a")
    return [
        ("★ " if r else "") + m for m, r in zip(keyed["method"], keyed["reference"], strict=True)
    ]


def ablation_chart(summary: pl.DataFrame) -> alt.TopLevelMixin:
    """Specialists found (left) and mean best score (right), method x layer, per SAE family."""
    data = summary.with_columns(
        (
            pl.when(pl.col("reference")).then(pl.lit("★ ")).otherwise(pl.lit("")) + pl.col("method")
        ).alias("method_label"),
        (
            pl.col("specialists_found").cast(pl.String)
            + "/"
            + pl.col("n_categories").cast(pl.String)
        ).alias("found_label"),
        pl.col("mean_best_score").round(1).cast(pl.String).alias("score_label"),
    )
    order = _method_order(summary)
    n_max = int(data["n_categories"].max() or 1)
    charts = []
    for sae in sorted(data["sae"].unique().to_list()):
        d = data.filter(pl.col("sae") == sae)
        base = alt.Chart(d).encode(
            x=layer_axis(),
            y=alt.Y("method_label:N", title=None, sort=order, axis=alt.Axis(labelLimit=400)),
            tooltip=[
                "method",
                "sae",
                "layer",
                "specialists_found",
                "n_categories",
                alt.Tooltip("mean_best_score:Q", format=".2f"),
                "n_same_as_reference",
            ],
        )
        found = base.mark_rect().encode(
            color=alt.Color(
                "specialists_found:Q",
                title="specialists found",
                scale=alt.Scale(scheme="blues", domain=[0, n_max]),
            )
        ) + base.mark_text(fontSize=12).encode(
            text="found_label:N",
            color=alt.condition(
                alt.datum.specialists_found > 0.6 * n_max, alt.value("white"), alt.value("black")
            ),
        )
        bound = max(1.0, float(d["mean_best_score"].abs().max() or 1.0))
        score = base.mark_rect().encode(
            color=alt.Color(
                "mean_best_score:Q",
                title="mean best score",
                scale=alt.Scale(scheme="redblue", domain=[-bound, bound], domainMid=0),
            )
        ) + base.mark_text(fontSize=12).encode(text="score_label:N")
        width = max(120, 55 * d["layer"].n_unique())
        charts.append(
            alt.hconcat(
                found.properties(
                    title=f"Specialists found — SAE {sae}", width=width, height=22 * len(order)
                ),
                score.properties(
                    title="Mean best score (n_in − n_out)", width=width, height=22 * len(order)
                ),
            ).resolve_scale(color="independent")
        )
    return _per_sae(
        charts,
        "Method ablation: how preprocessing makes specialists vanish "
        "(★ = the configured, correct method)",
    )


RULE_LABELS = "datum.value == 'top_k' ? 'top-k candidates (solid)' : 'all features (dashed)'"


def sweep_chart(sweep: pl.DataFrame, threshold: float) -> alt.TopLevelMixin:
    """Specialists found vs threshold (per SAE; one colour per layer; solid line with dots:
    top-k rule, dashed line: all features) and each category's best score vs threshold (top-k
    rule; one panel per category, each with its own axes)."""
    found = (
        sweep.group_by("rule", "sae", "layer", "threshold")
        .agg(pl.col("specialists_found").first(), pl.col("n_categories").first())
        .sort("rule", "sae", "layer", "threshold")
    )
    n_max = int(found["n_categories"].max() or 1)
    ticks = sorted(float(t) for t in sweep["threshold"].unique())
    x_axis = alt.X(
        "threshold:Q",
        title="threshold",
        scale=alt.Scale(type="symlog"),
        axis=alt.Axis(values=ticks, labelOverlap="greedy"),
    )
    layer_colour = alt.Color("layer:O", title="layer", scale=alt.Scale(scheme="category10"))
    rules = ["top_k", "all_features"]
    rule_line = (
        alt.Chart(pl.DataFrame({"threshold": [float(threshold)]}))
        .mark_rule(color="gray", strokeDash=[2, 2])
        .encode(x="threshold:Q")
    )
    charts = []
    for sae in sorted(found["sae"].unique().to_list()):
        f = found.filter(pl.col("sae") == sae)
        y = alt.Y(
            "specialists_found:Q",
            title="categories with a specialist",
            scale=alt.Scale(domain=[0, n_max]),
        )
        tooltip = ["rule", "layer", "threshold", "specialists_found", "n_categories"]
        lines = (
            alt.Chart(f)
            .mark_line(strokeWidth=2)
            .encode(
                x=x_axis,
                y=y,
                color=layer_colour,
                detail="rule:N",
                tooltip=tooltip,
                strokeDash=alt.StrokeDash(
                    "rule:N",
                    title="selection rule",
                    sort=rules,
                    scale=alt.Scale(domain=rules, range=[[1, 0], [6, 4]]),
                    legend=alt.Legend(
                        symbolType="stroke",
                        symbolStrokeWidth=2,
                        symbolSize=500,
                        symbolStrokeColor="black",
                        labelExpr=RULE_LABELS,
                    ),
                ),
            )
        )
        points = (
            alt.Chart(f.filter(pl.col("rule") == "top_k"))
            .mark_point(filled=True, size=40, opacity=1)
            .encode(x=x_axis, y=y, color=layer_colour, tooltip=tooltip)
        )
        s = sweep.filter((pl.col("sae") == sae) & (pl.col("rule") == "top_k"))
        score_lines = (
            alt.Chart()
            .mark_line(point=True)
            .encode(
                x=x_axis,
                y=alt.Y("score:Q", title="best score"),
                color=layer_colour,
                tooltip=["category", "layer", "threshold", "feature", "score", "n_in", "n_out"],
            )
        )
        marker = (
            alt.Chart()
            .mark_rule(color="gray", strokeDash=[2, 2])
            .encode(x=alt.datum(float(threshold)))
        )
        # independent axes: each panel draws its own, so a short last row has no empty axis
        scores = (
            alt.layer(score_lines, marker, data=s)
            .properties(width=170, height=120)
            .facet(facet=alt.Facet("category:N", title=None), columns=4)
            .resolve_axis(x="independent", y="independent")
        )
        charts.append(
            alt.vconcat(
                (lines + points + rule_line).properties(
                    title=f"Specialists found vs threshold — SAE {sae} (dotted: configured)",
                    width=420,
                    height=220,
                ),
                scores.properties(title="Best score per category vs threshold (top-k rule)"),
            ).resolve_scale(color="shared")
        )
    return _per_sae(charts, "Threshold sensitivity")


def _heat(
    d: pl.DataFrame,
    color: alt.Color,
    text: str,
    title: str,
    tooltip: list,
    dark: alt.expr.core.Expression | None = None,
) -> alt.Chart:
    """Category x layer cells with a label; ``dark``: where the cell colour is dark enough to
    need white text."""
    base = category_by_layer(d, tooltip)
    text_colour = (
        alt.condition(dark, alt.value("white"), alt.value("black"))
        if dark is not None
        else alt.value("black")
    )
    return (
        base.mark_rect().encode(color=color)
        + base.mark_text(fontSize=11).encode(text=f"{text}:N", color=text_colour)
    ).properties(
        title=title,
        width=max(160, 80 * d["layer"].n_unique()),
        height=max(120, 34 * d["category"].n_unique()),
    )


def auroc_chart(auroc: pl.DataFrame) -> alt.TopLevelMixin:
    """AUROC (in- vs out-of-category per-text values) of each category's specialist."""
    data = auroc.with_columns(
        pl.when(pl.col("auroc").is_null())
        .then(pl.lit("–"))
        .otherwise(pl.col("auroc").round(2).cast(pl.String))
        .alias("label")
    )
    charts = [
        _heat(
            data.filter(pl.col("sae") == sae),
            alt.Color("auroc:Q", title="AUROC", scale=alt.Scale(scheme="greens", domain=[0.5, 1])),
            "label",
            f"AUROC of the specialist's per-text value, in vs out of category — SAE {sae}",
            tooltip_fields(
                "category layer feature score auroc:.3f mean_in:.3f mean_out:.3f "
                "best_auroc_feature best_auroc:.3f"
            ),
            dark=alt.datum.auroc >= 0.9,
        )
        for sae in sorted(data["sae"].unique().to_list())
    ]
    return _per_sae(charts, "Threshold-free separation (1 = perfect, 0.5 = none)")


def stability_chart(boot: pl.DataFrame, sae: str) -> alt.Chart:
    """Bootstrap stability of each specialist, category x layer: the share of resamples in
    which the same feature wins, with the interval of its score. Cells without a specialist are
    grey, with the share of resamples in which the category has one."""
    pct = (pl.col("stability") * 100).round(0).cast(pl.Int64).cast(pl.String) + pl.lit("%")
    found = (pl.col("found_rate") * 100).round(0).cast(pl.Int64).cast(pl.String) + pl.lit("%")
    interval = (
        pl.lit(" [")
        + pl.col("score_ci_low").cast(pl.String)
        + pl.lit(", ")
        + pl.col("score_ci_high").cast(pl.String)
        + pl.lit("]")
    )
    d = boot.filter(pl.col("sae") == sae).with_columns(
        pl.when(pl.col("feature").is_null())
        .then(pl.lit("no active feature"))
        .when(pl.col("has_specialist"))
        .then(pl.lit("#") + pl.col("feature").cast(pl.String) + pl.lit("  ") + pct)
        .otherwise(pl.lit("no specialist (#") + pl.col("feature").cast(pl.String) + pl.lit(")"))
        .alias("line1"),
        pl.when(pl.col("feature").is_null())
        .then(pl.lit(""))
        .when(pl.col("has_specialist"))
        .then(pl.lit("score ") + pl.col("score").cast(pl.String) + interval)
        .otherwise(pl.lit("found in ") + found + pl.lit(" of resamples"))
        .alias("line2"),
    )
    resamples = int(d["resamples"].max() or 0) if d.height else 0
    ci = float(d["ci"].max() or 0.95) if d.height else 0.95
    base = category_by_layer(
        d,
        [
            "category",
            "layer",
            "feature",
            "score",
            "has_specialist",
            alt.Tooltip("stability:Q", format=".3f"),
            "score_ci_low",
            "score_ci_high",
            alt.Tooltip("found_rate:Q", format=".3f"),
            "runner_up_feature",
            alt.Tooltip("runner_up_share:Q", format=".3f"),
        ],
    )
    rect = base.mark_rect().encode(
        color=alt.condition(
            alt.datum.has_specialist,
            alt.Color(
                "stability:Q",
                title="stability (specialists)",
                scale=alt.Scale(scheme="purples", domain=[0, 1]),
            ),
            alt.value("#eeeeee"),
        )
    )
    dark = alt.datum.has_specialist & (alt.datum.stability > 0.6)
    color = alt.condition(dark, alt.value("white"), alt.value("black"))
    t1 = base.mark_text(fontSize=11, dy=-7).encode(text="line1:N", color=color)
    t2 = base.mark_text(fontSize=10, dy=8).encode(text="line2:N", color=color)
    return (rect + t1 + t2).properties(
        title=f"Specialist stability over {resamples} bootstrap resamples "
        f"({ci:.0%} interval of the score) — SAE {sae}",
        width=max(200, 120 * d["layer"].n_unique()),
        height=max(120, 40 * d["category"].n_unique()),
    )


def topk_chart(allfeat: pl.DataFrame) -> alt.TopLevelMixin:
    """Score of the top-k winner vs the best of all features, category x layer."""
    data = allfeat.with_columns(
        (pl.col("all_score").fill_null(0) - pl.col("topk_score").fill_null(0)).alias("gain"),
        (
            pl.col("topk_score").cast(pl.String).fill_null("–")
            + pl.lit(" → ")
            + pl.col("all_score").cast(pl.String).fill_null("–")
        ).alias("label"),
    )
    top_gain = max(1, int(data["gain"].max() or 0))
    charts = [
        _heat(
            data.filter(pl.col("sae") == sae),
            alt.Color(
                "gain:Q",
                title="score gain",
                scale=alt.Scale(scheme="oranges", domain=[0, top_gain]),
            ),
            "label",
            f"Top-k winner's score → best score over all features — SAE {sae}",
            [
                "category",
                "layer",
                "topk_feature",
                "topk_score",
                "all_feature",
                "all_score",
                "all_peak_rank",
                "n_better",
                "missed",
                "gained_specialist",
            ],
            dark=alt.datum.gain > 0.6 * top_gain,
        )
        for sae in sorted(data["sae"].unique().to_list())
    ]
    return _per_sae(charts, "Candidate restriction: what the top-k rule misses")

"""The stage's tables, per-layer shares, chart, summary and the findings board's records."""

from __future__ import annotations

import polars as pl

from .verdict import LABELS, VERDICTS, Thresholds, detail, label, verdict


def with_verdicts(specialists: pl.DataFrame, t: Thresholds) -> pl.DataFrame:
    """The specialists table with verdict, verdict_label and verdict_detail."""
    rows = specialists.to_dicts()
    names = [verdict(r, t) for r in rows]
    return specialists.with_columns(
        pl.Series("verdict", names, dtype=pl.String),
        pl.Series(
            "verdict_label",
            [label(r, n) for r, n in zip(rows, names, strict=True)],
            dtype=pl.String,
        ),
        pl.Series("verdict_detail", [detail(r) for r in rows], dtype=pl.String),
    )


def board_records(specialists: pl.DataFrame) -> pl.DataFrame:
    """One record per specialist for the findings board (core/verdicts.py). ``ok`` is null for
    every record: what a specialist detects (its tokens, its context, its category's meaning)
    characterises it; it neither supports nor contradicts that it is a specialist, so the
    board's combined verdict (validation, causal) is left as it is and the surface column shows
    the label."""
    return pl.DataFrame(
        {
            "family": specialists["sae"],
            "layer": specialists["layer"],
            "category": specialists["category"],
            "feature": specialists["feature"],
            "stage": ["surface"] * specialists.height,
            "verdict": specialists["verdict"],
            "label": [LABELS[v] for v in specialists["verdict"].to_list()],
            "ok": pl.Series([None] * specialists.height, dtype=pl.Boolean),
            "detail": specialists["verdict_detail"],
        }
    )


def layer_shares(specialists: pl.DataFrame) -> pl.DataFrame:
    """Per (sae, layer): the number of specialists, the share of each verdict, the mean token R²
    (on seen tokens, and overall), the mean bigram R² and the mean outside ratio (over the
    specialists where each is defined)."""
    return (
        specialists.group_by("sae", "layer")
        .agg(
            pl.len().cast(pl.Int64).alias("n_specialists"),
            *(
                (pl.col("verdict") == v).cast(pl.Float64).mean().alias(f"share_{v}")
                for v in VERDICTS
            ),
            pl.col("token_r2_seen").mean().alias("mean_token_r2_seen"),
            pl.col("token_r2").mean().alias("mean_token_r2"),
            pl.col("bigram_r2").mean().alias("mean_bigram_r2"),
            pl.col("outside_ratio").mean().alias("mean_outside_ratio"),
        )
        .sort("sae", "layer")
    )


def depth_sentence(layers: pl.DataFrame) -> str:
    """The study's open question, answered in one sentence per family: do deeper layers have
    more semantic specialists (lower token R², more *meaning* verdicts)?"""
    out = []
    for (sae,), part in layers.sort("layer").group_by(["sae"], maintain_order=True):
        part = part.filter(pl.col("mean_token_r2_seen").is_not_null())
        if part.height < 2:
            continue
        first, last = part.row(0, named=True), part.row(-1, named=True)
        a, b = first["mean_token_r2_seen"], last["mean_token_r2_seen"]
        trend = "falls" if b < a else "does not fall"
        out.append(
            f"SAE {sae}: mean token R² (seen tokens) {a:.2f} at layer {first['layer']} "
            f"and {b:.2f} at layer {last['layer']} ({trend} with depth); "
            f"meaning verdicts {first['share_meaning']:.0%} -> {last['share_meaning']:.0%}, "
            f"token detectors {first['share_token_detector']:.0%} -> "
            f"{last['share_token_detector']:.0%}."
        )
    return " ".join(out) or "Fewer than two layers measured: no depth trend."


def md_escaped(text: str) -> str:
    """``text`` with Markdown's special characters backslash-escaped (tokens such as ``_`` or
    ``*`` stay as they are when rendered)."""
    return "".join("\\" + ch if ch in "\\`*_[]|<>" else ch for ch in text)


def _md_table(df: pl.DataFrame) -> list[str]:
    def cell(v) -> str:
        if v is None:
            return "n/a"
        if isinstance(v, float):
            return f"{v:.3f}"
        return md_escaped(str(v))

    lines = [
        "| " + " | ".join(md_escaped(c) for c in df.columns) + " |",
        "|" + "---|" * len(df.columns),
    ]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.iter_rows()]
    return lines


def summary_md(
    specialists: pl.DataFrame,
    layers: pl.DataFrame,
    settings: dict,
    links: dict[str, list[str]] | None = None,
) -> str:
    """results/surface/summary.md. ``links``: column name -> one Markdown cell per row of
    ``specialists`` (the other stages' verdicts, linked: core/crosslinks.py), shown after the
    verdict as they are."""
    shown = specialists.select(
        "sae", "layer", "category", "feature", "verdict_label", "top5_tokens"
    )
    table = _md_table(shown)
    for name, cells in (links or {}).items():
        table[0] = table[0] + f" {md_escaped(name)} |"
        table[1] = table[1] + "---|"
        table[2:] = [row + f" {cell} |" for row, cell in zip(table[2:], cells, strict=True)]
    lines = [
        "# Surface or meaning: what each specialist detects",
        "",
        "Token R² = held-out R² of the mean activation of the token id (bigram: previous token "
        "and token) over every counted position; outside ratio = mean activation of the "
        "category's trigger tokens outside the category / inside (docs/surface.md).",
        "",
        "Settings: " + ", ".join(f"{k} {v}" for k, v in settings.items()),
        "",
        "## By depth",
        "",
        depth_sentence(layers),
        "",
        *_md_table(layers),
        "",
        "## Every specialist",
        "",
        *table,
        "",
    ]
    return "\n".join(lines)


def _recall(specialists: pl.DataFrame) -> pl.DataFrame:
    """sae, layer, category, feature, meaning_recall (share of the meaning-only probe texts it
    fires on) of the specialists whose category has probe texts."""
    if "meaning_n" not in specialists.columns:
        return pl.DataFrame()
    return specialists.filter(pl.col("meaning_n") > 0).select(
        "sae",
        "layer",
        "category",
        "feature",
        (pl.col("meaning_fired") / pl.col("meaning_n")).alias("meaning_recall"),
        (pl.col("markers_fired") / pl.col("markers_n")).alias("markers_recall"),
    )


def r2_chart(specialists: pl.DataFrame):
    """Per SAE family: token R² by layer, one line per category, and, with probe texts, the
    share of the meaning-only texts each specialist fires on (the study's depth question)."""
    import altair as alt

    from ..analysis.charts import by_layer_lines, tooltip_fields

    data = specialists.filter(pl.col("token_r2_seen").is_not_null()).select(
        "sae",
        "layer",
        "category",
        "feature",
        "token_r2_seen",
        "token_r2",
        "bigram_r2",
        "outside_ratio",
        "verdict",
    )
    recall = _recall(specialists)
    color = alt.Color("category:N", title="category")
    charts = []
    for sae in sorted(set(data["sae"].to_list())):
        row = [
            by_layer_lines(
                data.filter(pl.col("sae") == sae),
                alt.Y(
                    "token_r2_seen:Q",
                    title="token R² (held out, seen tokens)",
                    scale=alt.Scale(domain=[0, 1], clamp=True),
                ),
                color,
                [
                    "category",
                    "feature",
                    "verdict",
                    *tooltip_fields(
                        "token_r2_seen:.3f token_r2:.3f bigram_r2:.3f outside_ratio:.3f"
                    ),
                ],
                f"Token-identity R² of the specialists by layer, SAE {sae}",
            )
        ]
        if recall.height and recall.filter(pl.col("sae") == sae).height:
            row.append(
                by_layer_lines(
                    recall.filter(pl.col("sae") == sae),
                    alt.Y(
                        "meaning_recall:Q",
                        title="meaning-only probe texts it fires on",
                        scale=alt.Scale(domain=[0, 1]),
                    ),
                    color,
                    [
                        "category",
                        "feature",
                        *tooltip_fields("meaning_recall:.2f markers_recall:.2f"),
                    ],
                    f"Meaning without markers, by layer, SAE {sae}",
                )
            )
        charts.append(alt.hconcat(*row) if len(row) > 1 else row[0])
    if not charts:
        return (
            alt.Chart(pl.DataFrame({"x": []}))
            .mark_point()
            .properties(title="No specialist measured")
        )
    return alt.vconcat(*charts)

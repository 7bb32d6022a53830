"""Altair charts of the tables; each saved as self-contained HTML (Vega inlined) and PNG."""

from __future__ import annotations

import os
import re
from pathlib import Path

import altair as alt
import polars as pl

EMBED = {"actions": False, "renderer": "svg"}
NO_SPECIALIST_GREY = "#eeeeee"
DARK_FROM = 0.7  # |score| / bound from which redblue cells need white text (WCAG 4.5:1)
CACHE_ENV = "SAE_SPECIALISTS_CACHE"
_EXTERNAL_SCRIPT = re.compile(r"<script[^>]+src=[\"']?https?:", re.IGNORECASE)


def layer_axis() -> alt.X:
    return alt.X("layer:O", title="layer", axis=alt.Axis(labelAngle=0))


def tooltip_fields(spec: str) -> list:
    """Tooltip fields from a space-separated list: ``name`` as it is, ``name:.3f`` the
    quantitative field ``name`` shown with that number format."""
    fields = []
    for field in spec.split():
        name, _, number_format = field.partition(":")
        fields.append(alt.Tooltip(f"{name}:Q", format=number_format) if number_format else name)
    return fields


def category_by_layer(data: pl.DataFrame, tooltip: list) -> alt.Chart:
    """The base of a heatmap: one cell per category (rows) and layer (columns)."""
    return alt.Chart(data).encode(
        x=layer_axis(), y=alt.Y("category:N", title="category"), tooltip=tooltip
    )


def by_layer_lines(
    data: pl.DataFrame, y: alt.Y, color: alt.Color, tooltip: list, title: str, point_size: int = 60
) -> alt.LayerChart:
    """One line (with points) per ``color`` value over the layers."""
    base = alt.Chart(data).encode(x=layer_axis(), y=y, color=color, tooltip=tooltip)
    return (base.mark_line() + base.mark_point(filled=True, size=point_size)).properties(
        title=title, width=360, height=240
    )


def peak_by_layer(strongest: pl.DataFrame) -> alt.Chart:
    """Peak per-text activation of the strongest feature, by layer, one line per SAE family."""
    return by_layer_lines(
        strongest.filter(pl.col("rank") == 1).sort("sae", "layer"),
        alt.Y("peak:Q", title="peak per-text activation"),
        alt.Color("sae:N", title="SAE"),
        ["sae", "layer", "feature", alt.Tooltip("peak:Q", format=".3f"), "text_id", "category"],
        "Peak activation by layer (strongest feature)",
    )


def peak_by_layer_category(peaks: pl.DataFrame) -> alt.TopLevelMixin:
    """Largest per-text activation inside each category, by layer: one panel per SAE family,
    side by side, each titled with its family (no facet header)."""
    data = peaks.sort("sae", "category", "layer")
    panels = [
        by_layer_lines(
            data.filter(pl.col("sae") == sae),
            alt.Y("peak:Q", title="peak per-text activation in category"),
            alt.Color("category:N", title="category"),
            ["sae", "layer", "category", "feature", alt.Tooltip("peak:Q", format=".3f"), "text_id"],
            f"SAE {sae}",
            point_size=50,
        )
        for sae in data["sae"].unique(maintain_order=True).to_list()
    ]
    chart = panels[0] if len(panels) == 1 else alt.hconcat(*panels)
    return chart.properties(title="Peak activation by layer and category")


def coverage_by_layer(frequent: pl.DataFrame) -> alt.Chart:
    """Coverage (share of texts with value > 0) of the most frequent feature, by layer."""
    return by_layer_lines(
        frequent.filter(pl.col("rank") == 1).sort("sae", "layer"),
        alt.Y(
            "coverage:Q",
            title="coverage of the most frequent feature",
            axis=alt.Axis(format="%"),
            scale=alt.Scale(domain=[0, 1]),
        ),
        alt.Color("sae:N", title="SAE"),
        ["sae", "layer", "feature", "n_texts", alt.Tooltip("coverage:Q", format=".1%")],
        "Coverage of the most frequent feature by layer",
    )


def specialist_heatmap(specialists: pl.DataFrame, sae: str) -> alt.Chart:
    """Specialist score, category × layer, with the score printed in each cell (and its bootstrap
    stability when the table has one). Cells without a specialist (best score <= 0, or no active
    feature) read "none" on grey: how stable "no specialist" is belongs to the stability chart.
    With the validation stage's ``verdict``/``fails_heldout`` columns (docs/validation.md), a
    cell whose specialist fails validation is outlined and marked ✗."""
    has_stability = "stability" in specialists.columns
    validated = "fails_heldout" in specialists.columns
    score_text = pl.col("score").cast(pl.String)
    if has_stability:
        stability = (pl.col("stability") * 100).round(0).cast(pl.Int64).cast(pl.String)
        score_text = (
            pl.when(pl.col("stability").is_not_null())
            .then(score_text + pl.lit(" (") + stability + pl.lit("%)"))
            .otherwise(score_text)
        )
    data = (
        specialists.filter(pl.col("sae") == sae)
        .with_columns(
            pl.when(pl.col("has_specialist"))
            .then(score_text)
            .otherwise(pl.lit("none"))
            .alias("label"),
            pl.col("feature").cast(pl.String).fill_null("none").alias("feature_label"),
        )
        .sort("category", "layer")
    )
    if validated:
        failing = pl.col("fails_heldout").fill_null(False)
        data = data.with_columns(
            failing.alias("fails_heldout"),
            pl.when(failing).then(pl.col("label") + pl.lit(" ✗")).otherwise(pl.col("label")),
        )
    scores = [s for s in data["score"].to_list() if s is not None] or [0]
    bound = max(1, max(abs(s) for s in scores))
    base = category_by_layer(
        data,
        [
            "category",
            "layer",
            alt.Tooltip("feature_label:N", title="feature"),
            "score",
            "n_in",
            "n_out",
            alt.Tooltip("peak:Q", format=".3f"),
            "has_specialist",
            *(
                [
                    alt.Tooltip("stability:Q", format=".0%"),
                    alt.Tooltip("score_ci_low:Q", title="score CI low"),
                    alt.Tooltip("score_ci_high:Q", title="score CI high"),
                ]
                if has_stability
                else []
            ),
            *(["verdict"] if validated else []),
        ],
    )
    # two layers: a quantitative colour of a null score would drop the cell altogether
    rect = (
        base.transform_filter(alt.datum.has_specialist)
        .mark_rect()
        .encode(
            color=alt.Color(
                "score:Q",
                title="score",
                scale=alt.Scale(scheme="redblue", domain=[-bound, bound], domainMid=0),
            )
        )
    )
    grey = base.transform_filter(~alt.datum.has_specialist).mark_rect(color=NO_SPECIALIST_GREY)
    dark = alt.datum.has_specialist & (alt.expr.abs(alt.datum.score) > DARK_FROM * bound)
    text = base.mark_text(fontSize=13).encode(
        text="label:N", color=alt.condition(dark, alt.value("white"), alt.value("black"))
    )
    title = "Specialist score n_in − n_out" + (" (bootstrap stability)" if has_stability else "")
    layers = grey + rect + text
    if validated:
        outline = base.transform_filter(alt.datum.fails_heldout).mark_rect(
            fill=None, stroke="black", strokeWidth=2.5
        )
        layers = layers + outline
        sae = f"{sae}; ✗: fails validation"
    return layers.properties(
        title=f"{title} by category and layer — {sae}; none: no specialist",
        width=max(160, 70 * data["layer"].n_unique()),
        height=max(120, 30 * data["category"].n_unique()),
    )


def specialists_found_chart(found: pl.DataFrame) -> alt.Chart:
    """Number of categories with a specialist (best score > 0), by layer and SAE family."""
    data = found.with_columns(
        (pl.col("found").cast(pl.String) + "/" + pl.col("n_categories").cast(pl.String)).alias(
            "label"
        )
    ).sort("sae", "layer")
    n_max = int(data["n_categories"].max() or 1)
    base = alt.Chart(data).encode(
        x=layer_axis(),
        xOffset=alt.XOffset("sae:N"),
        y=alt.Y(
            "found:Q", title="categories with a specialist", scale=alt.Scale(domain=[0, n_max])
        ),
        color=alt.Color("sae:N", title="SAE"),
        tooltip=["sae", "layer", "found", "n_categories"],
    )
    bars = base.mark_bar()
    labels = base.mark_text(dy=-7).encode(text="label:N")
    return (bars + labels).properties(title="Specialists found per layer", width=360, height=240)


def _cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sae-specialists"


def _install_bundle_cache() -> None:
    """Cache vl-convert's JavaScript bundle (Vega, Vega-Lite, vega-embed; ~0.9 MB) on disk.

    Building it takes a few seconds per process; every chart job would pay that. The bundle is
    a pure function of the vl-convert version and the Vega-Lite version, which key the file.
    """
    import vl_convert as vlc

    if getattr(vlc.javascript_bundle, "_sae_cached", False):
        return
    original = vlc.javascript_bundle

    def cached(snippet=None, vl_version=None):
        if snippet is not None:
            return original(snippet, vl_version=vl_version)
        path = _cache_dir() / f"vl-convert-{vlc.__version__}-vl-{vl_version}.js"
        try:
            text = path.read_text(encoding="utf-8")
            if len(text) > 100_000 and "vegaEmbed" in text:
                return text
        except OSError:
            pass
        text = original(vl_version=vl_version)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
        except OSError:
            pass
        return text

    cached._sae_cached = True  # type: ignore[attr-defined]
    vlc.javascript_bundle = cached


class _Spec:
    """A chart's Vega-Lite dict, built (and schema-validated) once and saved in two formats:
    ``altair.utils.save.save`` only calls ``to_dict`` on the chart it is given, and a second
    ``chart.to_dict()`` would validate the whole spec again (~0.05 s per chart)."""

    def __init__(self, spec: dict):
        self._spec = spec

    def to_dict(self, *args, **kwargs) -> dict:
        return self._spec


def save_chart(
    chart: alt.TopLevelMixin,
    html_path: str | os.PathLike,
    png_path: str | os.PathLike | None = None,
) -> None:
    """Write a self-contained HTML (Vega, Vega-Lite, vega-embed inlined) and optionally a PNG.

    Saved exactly as ``chart.save`` saves (same data transformer, versions and options)."""
    from altair.utils.save import save

    _install_bundle_cache()
    versions = {
        "vegalite_version": alt.VEGALITE_VERSION,
        "vega_version": alt.VEGA_VERSION,
        "vegaembed_version": alt.VEGAEMBED_VERSION,
    }
    with alt.data_transformers.enable("default"), alt.data_transformers.disable_max_rows():
        spec = _Spec(chart.to_dict(context={"pre_transform": False}))
    html_path = Path(html_path)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = html_path.with_name(f".{html_path.name}.tmp-{os.getpid()}.html")
    save(spec, str(tmp), format="html", inline=True, embed_options=EMBED, **versions)
    text = tmp.read_text(encoding="utf-8")
    if _EXTERNAL_SCRIPT.search(text):
        tmp.unlink()
        raise RuntimeError(f"{html_path}: chart HTML references an external script")
    os.replace(tmp, html_path)
    if png_path is not None:
        png_path = Path(png_path)
        tmp_png = png_path.with_name(f".{png_path.name}.tmp-{os.getpid()}.png")
        save(spec, str(tmp_png), format="png", scale_factor=2, **versions)
        os.replace(tmp_png, png_path)

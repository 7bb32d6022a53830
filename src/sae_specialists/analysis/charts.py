"""Altair charts of the tables; each saved as HTML and PNG.

A workflow chart page loads Vega, Vega-Lite and vega-embed from the run's one shared script,
``results_dir/assets/vega/vega.js`` (``core.vega.write_chart_script``: the vendored builds of
``sae_specialists/assets/vega``, see its README for versions and licences), by a relative
``<script src>``: ~20 KB per page instead of ~0.9 MB inlined, still offline. Without a shared
script (``save_chart(..., script=None)``) a page is self-contained (the bundle inlined).
"""

from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path

import altair as alt
import polars as pl

EMBED = {"actions": False, "renderer": "svg"}
NO_SPECIALIST_GREY = "#eeeeee"
DARK_FROM = 0.7  # |score| / bound from which redblue cells need white text (WCAG 4.5:1)
CACHE_ENV = "SAE_SPECIALISTS_CACHE"
BAR_SLOT = 24  # px per bar of a grouped bar chart: room for a two-digit label
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
    data: pl.DataFrame,
    y: alt.Y,
    color: alt.Color,
    tooltip: list,
    title: str,
    point_size: int = 60,
    width: int = 360,
) -> alt.LayerChart:
    """One line (with points) per ``color`` value over the layers."""
    base = alt.Chart(data).encode(x=layer_axis(), y=y, color=color, tooltip=tooltip)
    return (base.mark_line() + base.mark_point(filled=True, size=point_size)).properties(
        title=title, width=width, height=240
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


PANELS_PER_ROW = 3  # small multiples per row: a row fits analysis.html's column (~1,150 px)
PANEL_WIDTH = 240


def peak_by_layer_category(peaks: pl.DataFrame) -> alt.TopLevelMixin:
    """Largest per-text activation inside each category, by layer: one panel per SAE family,
    ``PANELS_PER_ROW`` to a row, each titled with its family (no facet header); a family with
    one layer gets a narrow panel."""
    data = peaks.sort("sae", "category", "layer")
    panels = []
    for sae in data["sae"].unique(maintain_order=True).to_list():
        sub = data.filter(pl.col("sae") == sae)
        panels.append(
            by_layer_lines(
                sub,
                alt.Y("peak:Q", title="peak per-text activation in category"),
                alt.Color("category:N", title="category"),
                [
                    "sae",
                    "layer",
                    "category",
                    "feature",
                    alt.Tooltip("peak:Q", format=".3f"),
                    "text_id",
                ],
                f"SAE {sae}",
                point_size=50,
                width=PANEL_WIDTH if sub["layer"].n_unique() > 1 else PANEL_WIDTH // 2,
            )
        )
    if len(panels) == 1:
        chart = panels[0]
    else:
        chart = alt.concat(*panels, columns=PANELS_PER_ROW)
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
    """Number of categories with a specialist (best score > 0), by layer and SAE family: one
    bar per family, labelled with its count alone (the number of categories is in the axis
    title; "9/9" labels of neighbouring bars ran into each other). Each bar gets at least
    ``BAR_SLOT`` px, so a label never spills over the next one."""
    data = found.with_columns(pl.col("found").cast(pl.String).alias("label")).sort("sae", "layer")
    n_max = int(data["n_categories"].max() or 1)
    sizes = sorted(set(data["n_categories"].to_list()))
    of = "/".join(map(str, sizes)) if sizes else "0"
    slots = max(1, data["layer"].n_unique() * data["sae"].n_unique())
    base = alt.Chart(data).encode(
        x=layer_axis(),
        xOffset=alt.XOffset("sae:N"),
        y=alt.Y(
            "found:Q",
            title=f"categories with a specialist (of {of})",
            scale=alt.Scale(domain=[0, n_max]),
        ),
        color=alt.Color("sae:N", title="SAE"),
        tooltip=["sae", "layer", "found", "n_categories"],
    )
    bars = base.mark_bar()
    labels = base.mark_text(dy=-7, fontSize=11).encode(text="label:N")
    return (bars + labels).properties(
        title="Specialists found per layer", width=max(360, BAR_SLOT * slots), height=240
    )


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


def chart_page(spec: dict, script_href: str, title: str = "chart") -> str:
    """A chart page that loads the shared script from ``script_href`` (relative): the same
    markup and embed options as Altair's inline HTML, and a visible message instead of a
    blank page when the script is missing."""
    spec_json = json.dumps(spec).replace("</", "<\\/")  # no "</script>" inside the script
    missing = (
        "the chart needs " + script_href + " (the run's shared Vega script): open this page "
        "inside the results directory it was written to"
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<title>{html.escape(title)}</title>
<style>
#vis.vega-embed{{width:100%;display:flex}}
#vis.vega-embed details,#vis.vega-embed details summary{{position:relative}}
.error{{color:#b00;font-family:system-ui,sans-serif}}
</style>
<script src="{html.escape(script_href, quote=True)}"></script>
</head>
<body>
<div class="vega-visualization" id="vis"></div>
<script>
(function () {{
  const el = document.getElementById("vis");
  const fail = (msg) => {{
    el.innerHTML = '<p class="error"></p>';
    el.firstChild.textContent = msg;
  }};
  if (typeof vegaEmbed === "undefined") {{ fail({json.dumps(missing)}); return; }}
  vegaEmbed("#vis", {spec_json}, {json.dumps(EMBED)}).catch((e) => fail(String(e)));
}})();
</script>
</body>
</html>
"""


def _chart_title(spec: dict) -> str:
    title = spec.get("title")
    if isinstance(title, dict):
        title = title.get("text")
    if isinstance(title, list):
        title = " ".join(map(str, title))
    return str(title) if title else "chart"


def job_script(smk) -> str | None:
    """A chart job's shared script: its rule's ``chart_script`` input (None for a rule without
    one: its pages are then self-contained; tests/test_page_weight.py checks that every chart
    page of a run loads the shared script)."""
    return getattr(smk.input, "chart_script", None)


def save_chart(
    chart: alt.TopLevelMixin,
    html_path: str | os.PathLike,
    png_path: str | os.PathLike | None = None,
    *,
    script: str | os.PathLike | None = None,
) -> None:
    """Write the chart's HTML and optionally its PNG.

    ``script``: the run's shared chart script (``core.vega.write_chart_script``); the page loads
    it by its path relative to the page. Without it the page is self-contained (Vega, Vega-Lite and
    vega-embed inlined), saved exactly as ``chart.save`` saves (same data transformer, versions
    and options)."""
    from altair.utils.save import save

    from ..core.io import atomic_path

    versions = {
        "vegalite_version": alt.VEGALITE_VERSION,
        "vega_version": alt.VEGA_VERSION,
        "vegaembed_version": alt.VEGAEMBED_VERSION,
    }
    with alt.data_transformers.enable("default"), alt.data_transformers.disable_max_rows():
        spec = _Spec(chart.to_dict(context={"pre_transform": False}))
    html_path = Path(html_path)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    # core.io.atomic_path: the temporary file is removed on every error (a full disk included)
    # and matched by the leftover sweep of the next write
    with atomic_path(html_path) as tmp:
        if script is None:
            _install_bundle_cache()
            save(spec, str(tmp), format="html", inline=True, embed_options=EMBED, **versions)
        else:
            href = Path(os.path.relpath(script, html_path.parent)).as_posix()
            page = chart_page(spec.to_dict(), href, _chart_title(spec.to_dict()))
            tmp.write_text(page, encoding="utf-8")
        if _EXTERNAL_SCRIPT.search(tmp.read_text(encoding="utf-8")):
            raise RuntimeError(f"{html_path}: chart HTML references an external script")
    if png_path is not None:
        with atomic_path(png_path) as tmp_png:
            save(spec, str(tmp_png), format="png", scale_factor=2, **versions)

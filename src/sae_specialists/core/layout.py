"""Every path under results_dir: the data contract (token and activation shards) and each stage's
outputs. The .smk files build their inputs and outputs from one ``Layout``; jobs receive the keys
(family, layer, category) as params or wildcards and never parse them back from a path.

Layout (docs/architecture.md):

    tokens/category=C/chunk=K/tokens.parquet                         data contract
    activations/sae=F/layer=L/category=C/chunk=K/activations.parquet data contract
    pooled/sae=F/layer=L/category=C/chunk=K/pooled.parquet           data contract
    per_text/texts.parquet, per_text/sae=F/layer=L.parquet           analysis
    tables/<name>.parquet|csv, charts/<stem>.html|png                analysis (+ methodology)
    token_views/sae=F/layer=L/<category>.html                        analysis
    summary.md, index.html                                           report
    logits/sae=F/layer=L.parquet, dashboards/..., corpus/...         dashboards
    methodology/...                                                  methodology
    causal/cells.json, causal/layers/sae=F/layer=L/<table>.parquet,
    causal/<table>.parquet|csv, causal/pages/...                     causal
    circuits/roots.json, circuits/layers/sae=F/layer=L/<table>.parquet,
    circuits/<table>.parquet|csv, graph.json, pages/, verdicts.parquet circuits
    logs/<stage>/<job>.log                                           every job
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

PEAK_TABLES = ("strongest", "frequent", "category_peaks")
SPECIALIST_TABLES = ("selective", "candidates", "specialists")
PEAK_CHARTS = {
    "peak": "peak_by_layer",
    "peak_category": "peak_by_layer_category",
    "coverage": "coverage_by_layer",
}
CHART_TITLES = {
    "peak_by_layer": "Peak activation by layer",
    "peak_by_layer_category": "Peak activation by layer and category",
    "coverage_by_layer": "Coverage of the most frequent feature by layer",
    "specialists_found": "Specialists found per layer",
}
METHODOLOGY_TABLES = (
    "ablation",
    "ablation_summary",
    "threshold_sweep",
    "auroc",
    "all_features",
    "missed_by_topk",
    "bootstrap",
)
METHODOLOGY_CHARTS = ("ablation", "threshold_sweep", "auroc", "topk_vs_all")
VARIANT_TABLES = ("resid", "pad", "texts")
CAUSAL_LAYER_TABLES = ("cells", "features", "per_text", "top_tokens", "steering")
CAUSAL_TABLES = ("effects", "features", "per_text", "top_tokens", "steering")
# the comparison's tables, by the job that writes them (docs/comparison.md)
COMPARISON_TABLES = {
    "components": ("components", "component_first"),
    "related": ("related_features",),
    "tracking": ("specialist_members", "specialist_links", "next_layer"),
    "splits": ("ladders", "splits"),
}
COMPARISON_CHARTS = {
    "components": "Specialist per SAE family and layer (components)",
    "specialist_links": "Specialists across layers and families (decoder cosine, co-activation)",
    "splits": "Narrow specialists split across wider SAEs (width ladders)",
}
CIRCUITS_LAYER_TABLES = ("roots", "downstream", "upstream", "verified", "sites")  # model job
CIRCUITS_TABLES = ("specialists", "edges", "nodes")  # the ranked tables (circuits_tables)
SURFACE_TABLES = ("specialists", "tokens", "layers")  # the surface stage's tables
SURFACE_TOPIC_TABLES = ("forms", "topics", "causal")  # its topic x form design's tables
CHUNK_DIR = re.compile(r"^chunk=(\d+)$")  # the directory of one extraction chunk


def with_csv(names: Iterable[str], path: Callable[..., str]) -> dict[str, str]:
    """Named outputs: ``name`` -> ``path(name)`` (Parquet), ``name_csv`` -> ``path(name, "csv")``
    (its CSV twin), Parquet ones first."""
    names = list(names)
    return {**{n: path(n) for n in names}, **{f"{n}_csv": path(n, "csv") for n in names}}


def chunk_label(chunk: int) -> str:
    """00000, 00001, ... (zero-padded: path order = chunk order)."""
    return f"{chunk:05d}"


def dataset_texts_path(results_dir: str, category: str) -> str:
    """A dataset category's materialised category file (extraction/datasets.py)."""
    return f"{str(results_dir).rstrip('/')}/datasets/{category}.parquet"


class _ResultPath:
    """A fixed path under the results directory, read as an attribute: ``layout.summary``."""

    def __init__(self, *parts: str) -> None:
        self.parts = parts

    def __get__(self, layout: Layout | None, owner: type | None = None):
        return self if layout is None else layout._p(*self.parts)


@dataclass(frozen=True)
class Layout:
    results_dir: str
    families: tuple[str, ...]
    layers: tuple[int, ...]
    categories: tuple[str, ...]
    n_chunks: Mapping[str, int] = field(default_factory=dict)  # per category; absent: 1
    # each family's own layers (saes.<name>.layers); a family absent here has every layer
    family_layers: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        results_dir: str,
        families: Iterable[str],
        layers: Iterable[int],
        categories: Iterable[str],
        n_chunks: Mapping[str, int] | None = None,
        family_layers: Mapping[str, Iterable[int]] | None = None,
    ) -> Layout:
        return cls(
            str(results_dir).rstrip("/"),
            tuple(sorted(families)),
            tuple(layers),
            tuple(sorted(categories)),
            dict(n_chunks or {}),
            {f: tuple(ls) for f, ls in (family_layers or {}).items()},
        )

    def _p(self, *parts: str) -> str:
        return "/".join((self.results_dir, *parts))

    def layers_of(self, family: str) -> tuple[int, ...]:
        """The layers of one family (its own list, else every layer)."""
        return tuple(self.family_layers.get(family, self.layers))

    def sae_layers(self) -> list[tuple[str, int]]:
        """Every (family, layer): families sorted, then each family's layers in order."""
        return [(f, layer) for f in self.families for layer in self.layers_of(f)]

    def log(self, stage: str, job: str) -> str:
        return self._p("logs", stage, f"{job}.log")

    # -- data contract ------------------------------------------------------------------------
    def chunks(self, category: str) -> list[str]:
        return [chunk_label(k) for k in range(self.n_chunks.get(category, 1))]

    def tokens_chunk(self, category: str, chunk: str) -> str:
        return self._p("tokens", f"category={category}", f"chunk={chunk}", "tokens.parquet")

    def _layer_chunk(self, kind: str, family: str, layer, category: str, chunk: str) -> str:
        """<kind>/sae=<family>/layer=<layer>/category=<category>/chunk=<chunk>/<kind>.parquet"""
        where = (f"sae={family}", f"layer={layer}", f"category={category}", f"chunk={chunk}")
        return self._p(kind, *where, f"{kind}.parquet")

    def activations_chunk(self, family: str, layer, category: str, chunk: str) -> str:
        return self._layer_chunk("activations", family, layer, category, chunk)

    def pooled_chunk(self, family: str, layer, category: str, chunk: str) -> str:
        return self._layer_chunk("pooled", family, layer, category, chunk)

    def pooled(self, family: str, layer, category: str | None = None) -> list[str]:
        """Pooled-residual shards of (family, layer), in the order of ``tokens``."""
        cats = self.categories if category is None else (category,)
        return [self.pooled_chunk(family, layer, c, k) for c in cats for k in self.chunks(c)]

    def tokens(self, category: str | None = None) -> list[str]:
        """Tokens shards of a category (every category: None), one per chunk, in text order."""
        cats = self.categories if category is None else (category,)
        return [self.tokens_chunk(c, k) for c in cats for k in self.chunks(c)]

    def activations(self, family: str, layer, category: str | None = None) -> list[str]:
        """Activation shards of (family, layer) for a category (every category: None), in the
        order of ``tokens``: the i-th of each holds the same chunk."""
        cats = self.categories if category is None else (category,)
        return [self.activations_chunk(family, layer, c, k) for c in cats for k in self.chunks(c)]

    def all_activations(self, category: str | None = None) -> list[str]:
        return [p for f, layer in self.sae_layers() for p in self.activations(f, layer, category)]

    def activations_by_sae_layer(self) -> dict[tuple[str, int], list[str]]:
        return {(f, layer): self.activations(f, layer) for f, layer in self.sae_layers()}

    def all_pooled(self, category: str | None = None) -> list[str]:
        return [p for f, layer in self.sae_layers() for p in self.pooled(f, layer, category)]

    def extraction_outputs(self) -> list[str]:
        return [
            p
            for c in self.categories
            for p in self.tokens(c) + self.all_activations(c) + self.all_pooled(c)
        ]

    # -- categories from datasets (extraction/datasets.py) ----------------------------------
    dataset_provenance = _ResultPath("datasets", "provenance.md")

    def dataset_texts(self, category: str) -> str:
        return dataset_texts_path(self.results_dir, category)

    # -- analysis -----------------------------------------------------------------------------
    texts = _ResultPath("per_text", "texts.parquet")

    def per_text(self, family: str, layer) -> str:
        return self._p("per_text", f"sae={family}", f"layer={layer}.parquet")

    def all_per_text(self) -> list[str]:
        return [self.per_text(f, layer) for f, layer in self.sae_layers()]

    def per_text_by_sae_layer(self) -> dict[tuple[str, int], str]:
        return {(f, layer): self.per_text(f, layer) for f, layer in self.sae_layers()}

    def table(self, name: str, ext: str = "parquet") -> str:
        return self._p("tables", f"{name}.{ext}")

    def tables(self, names: Iterable[str]) -> dict[str, str]:
        return with_csv(names, self.table)

    def analysis_tables(self) -> dict[str, str]:
        return self.tables(PEAK_TABLES + SPECIALIST_TABLES)

    def chart(self, stem: str, ext: str) -> str:
        return self._p("charts", f"{stem}.{ext}")

    def heatmap(self, family: str, ext: str) -> str:
        return self.chart(f"specialist_scores_sae={family}", ext)

    def charts(self) -> list[tuple[str, str, str]]:
        """(title, html, png) of every analysis chart, in the index's order."""
        stems = [*PEAK_CHARTS.values(), "specialists_found"]
        out = [(CHART_TITLES[s], self.chart(s, "html"), self.chart(s, "png")) for s in stems]
        return out + [
            (f"Specialist scores, SAE {f}", self.heatmap(f, "html"), self.heatmap(f, "png"))
            for f in self.families
        ]

    def chart_files(self) -> list[str]:
        return [path for _, html, png in self.charts() for path in (html, png)]

    # The one Vega / Vega-Lite / vega-embed script every chart page loads (rule
    # analysis_chart_script; assets/vega/README.md in the package: versions and licences).
    chart_script = _ResultPath("assets", "vega", "vega.js")
    chart_script_licenses = _ResultPath("assets", "vega", "LICENSES.txt")

    views_dir = _ResultPath("token_views")

    def token_view(self, family: str, layer, category: str) -> str:
        return self._p("token_views", f"sae={family}", f"layer={layer}", f"{category}.html")

    def token_views(self) -> dict[tuple[str, int], dict[str, str]]:
        """(family, layer) -> {category: page}."""
        return {
            (f, layer): {c: self.token_view(f, layer, c) for c in self.categories}
            for f, layer in self.sae_layers()
        }

    summary = _ResultPath("summary.md")

    # The map of the run (rule report_index): every output, by stage.
    index = _ResultPath("index.html")

    # The analysis stage's page: summary, charts, tables and the token-view grid.
    analysis_page = _ResultPath("analysis.html")

    def analysis_outputs(self) -> list[str]:
        """Every final output of the analysis stage (and the report built with it)."""
        return [
            self.analysis_page,
            self.summary,
            *self.analysis_tables().values(),
            *self.chart_files(),
            self.chart_script,
            self.views_dir,  # the token views (one directory output)
        ]

    # -- dashboards ---------------------------------------------------------------------------
    def logits(self, family: str, layer) -> str:
        return self._p("logits", f"sae={family}", f"layer={layer}.parquet")

    def logit_histograms(self, family: str, layer) -> str:
        """Every feature's histogram of logit effects over the vocabulary (Neuronpedia export)."""
        return self._p("logits", f"sae={family}", f"layer={layer}_histograms.parquet")

    def dashboard_dir(self, family: str, layer) -> str:
        return self._p("dashboards", f"sae={family}", f"layer={layer}")

    dashboards_index = _ResultPath("dashboards", "index.html")

    corpus_tokens = _ResultPath("corpus", "tokens.parquet")

    def corpus_activations(self, family: str, layer) -> str:
        return self._p("corpus", "activations", f"sae={family}", f"layer={layer}.parquet")

    def dashboard_layer_inputs(self, family: str, layer, corpus: bool) -> dict[str, object]:
        """Named inputs of one (family, layer)'s dashboards (with the reference corpus's
        shards when ``corpus``)."""
        files: dict[str, object] = dict(
            tokens=self.tokens(),
            activations=self.activations(family, layer),
            per_text=self.per_text(family, layer),
            texts=self.texts,
            specialists=self.table("specialists"),
            strongest=self.table("strongest"),
            frequent=self.table("frequent"),
            logits=self.logits(family, layer),
        )
        if corpus:
            files["corpus_tokens"] = self.corpus_tokens
            files["corpus_activations"] = self.corpus_activations(family, layer)
        return files

    def dashboard_outputs(self) -> list[str]:
        return [self.dashboards_index] + [self.dashboard_dir(f, x) for f, x in self.sae_layers()]

    # -- methodology --------------------------------------------------------------------------
    def methodology_table(self, name: str, ext: str = "parquet") -> str:
        return self._p("methodology", f"{name}.{ext}")

    def methodology_pair(self, name: str) -> dict[str, str]:
        return with_csv([name], self.methodology_table)

    def methodology_chart(self, name: str, ext: str) -> str:
        return self._p("methodology", "charts", f"{name}.{ext}")

    def variant(self, category: str, name: str) -> str:
        return self._p("methodology", "variants", f"category={category}", f"{name}.parquet")

    def stability_chart(self, family: str, ext: str) -> str:
        return self.chart(f"specialist_stability_sae={family}", ext)

    methodology_summary = _ResultPath("methodology", "summary.md")

    def ablation_inputs(self, model_variants: bool) -> dict[str, list[str]]:
        """The shards, plus each category's variants tables when ``model_variants``."""
        files = dict(tokens=self.tokens(), activations=self.all_activations())
        if model_variants:
            for key, name in (("resid", "resid"), ("pad", "pad"), ("pad_texts", "texts")):
                files[key] = [self.variant(c, name) for c in self.categories]
        return files

    def methodology_outputs(self) -> list[str]:
        return [
            *(self.methodology_table(n) for n in METHODOLOGY_TABLES),
            self.table("specialists_stability"),
            self.methodology_summary,
            *(self.methodology_chart(n, e) for n in METHODOLOGY_CHARTS for e in ("html", "png")),
            *(self.stability_chart(f, e) for f in self.families for e in ("html", "png")),
        ]

    # -- validation ---------------------------------------------------------------------------
    def validation_part(self, part: str, name: str) -> str:
        """Results of the held-out job (``part`` heldout: folds, cells) or the null job (null:
        null, cells), every SAE family and layer."""
        return self._p("validation", part, f"{name}.parquet")

    def validation_layer(self, part: str, family: str, layer, name: str) -> str:
        """Per-(family, layer) results of a validation job (``part`` baselines)."""
        return self._p("validation", part, f"sae={family}", f"layer={layer}", f"{name}.parquet")

    def validation_layers(self, part: str, name: str) -> list[str]:
        return [self.validation_layer(part, f, layer, name) for f, layer in self.sae_layers()]

    def validation_table(self, name: str, ext: str = "parquet") -> str:
        return self._p("validation", f"{name}.{ext}")

    def validation_pair(self, name: str) -> dict[str, str]:
        return with_csv([name], self.validation_table)

    def validation_chart(self, name: str, family: str, ext: str) -> str:
        """``name``: heldout_auroc, null or specialist_scores (heatmap, failing cells marked)."""
        return self._p("validation", "charts", f"{name}_sae={family}.{ext}")

    def validation_charts(
        self, families: Iterable[str] | None = None
    ) -> list[tuple[str, str, str]]:
        """(title, html, png) of every validation chart of ``families`` (None: every family),
        in the index's order."""
        titles = {
            "specialist_scores": "Specialist scores, validation verdicts marked, SAE {}",
            "heldout_auroc": "Held-out AUROC by layer vs baselines, SAE {}",
            "null": "Shuffled-label null of the best score, SAE {}",
        }
        return [
            (
                title.format(f),
                self.validation_chart(n, f, "html"),
                self.validation_chart(n, f, "png"),
            )
            for f in (self.families if families is None else families)
            for n, title in titles.items()
        ]

    validation_summary = _ResultPath("validation", "summary.md")
    validation_summary_html = _ResultPath("validation", "summary.html")  # the same, as a page

    # Each cell's verdict (JSON): what the report and the dashboards show.
    validation_verdicts = _ResultPath("validation", "verdicts.json")

    def verdicts(self, stage: str) -> str:
        """A stage's table of per-cell verdict records (core/verdicts.py), read by the findings
        board (report/findings.py): ``<stage>/verdicts.parquet``."""
        return self._p(stage, "verdicts.parquet")

    def test_set(self, categories: Iterable[str], n_chunks: Mapping[str, int]) -> Layout:
        """The layout of the optional test set (validation.test_texts): the same families and
        layers, its own shard tree and per-text tables under validation/test_set/."""
        return Layout.of(
            self._p("validation", "test_set"),
            self.families,
            self.layers,
            categories,
            n_chunks,
            self.family_layers,
        )

    def validation_outputs(
        self, baselines: bool, test_set: bool, families: Iterable[str] | None = None
    ) -> list[str]:
        out = [
            *self.validation_pair("cells").values(),
            *self.validation_pair("folds").values(),
            self.validation_summary,
            self.validation_summary_html,
            self.validation_verdicts,
            self.verdicts("validation"),
            *(p for _, html, png in self.validation_charts(families) for p in (html, png)),
        ]
        if baselines:
            out += self.validation_pair("baselines").values()
        if test_set:
            out += self.validation_pair("test_set").values()
        return out

    # -- validation: the learning curve (validation/learning_curve.py) ---------------------
    def learning_curve(self, name: str, ext: str = "parquet") -> str:
        """``name``: draws, rungs, cells (tables), verdicts (the findings board's records),
        summary (md: the sentences validation/summary.md ends with)."""
        return self._p("validation", "learning_curve", f"{name}.{ext}")

    def learning_curve_chart(self, family: str, ext: str) -> str:
        return self._p("validation", "charts", f"learning_curve_sae={family}.{ext}")

    def learning_curve_outputs(self, families: Iterable[str]) -> list[str]:
        return [
            *(self.learning_curve(n) for n in ("draws", "rungs", "cells")),
            *(self.learning_curve(n, "csv") for n in ("rungs", "cells")),
            self.learning_curve("verdicts"),
            self.learning_curve("summary", "md"),
            *(self.learning_curve_chart(f, e) for f in families for e in ("html", "png")),
        ]

    # -- surface ----------------------------------------------------------------------------
    def surface_layer(self, family: str, layer, name: str) -> str:
        """Per-(family, layer) measures (``name`` specialists or tokens) of the surface stage."""
        return self._p("surface", "layers", f"sae={family}", f"layer={layer}", f"{name}.parquet")

    def surface_table(self, name: str, ext: str = "parquet") -> str:
        return self._p("surface", f"{name}.{ext}")

    def surface_pair(self, name: str) -> dict[str, str]:
        return with_csv([name], self.surface_table)

    def surface_chart(self, ext: str) -> str:
        return self._p("surface", "charts", f"token_r2_by_layer.{ext}")

    surface_summary = _ResultPath("surface", "summary.md")
    # the depth sentence (report/surface.py's depth_sentence): the stage's headline, shown by
    # summary.md / analysis.html / index.html through the findings registry
    surface_headline = _ResultPath("surface", "depth.md")

    # The probe texts (surface.probe_texts) in one text file, and which set each text is in.
    surface_probe_file = _ResultPath("surface", "probe", "texts", "probe.yaml")
    surface_probe_index = _ResultPath("surface", "probe", "index.parquet")

    def surface_probe(self, n_chunks: int) -> Layout:
        """The probe texts' layout: the same families and layers, one category (``probe``),
        its own shard tree under surface/probe/."""
        return Layout.of(
            self._p("surface", "probe"),
            self.families,
            self.layers,
            ["probe"],
            {"probe": n_chunks},
            self.family_layers,
        )

    def surface_topics_table(self, name: str, ext: str = "parquet") -> str:
        """The topic x form design's tables (``name`` forms, topics, causal)."""
        return self._p("surface", "topics", f"{name}.{ext}")

    def surface_topics_pair(self, name: str) -> dict[str, str]:
        return with_csv([name], self.surface_topics_table)

    surface_topics_summary = _ResultPath("surface", "topics", "summary.md")

    def surface_outputs(self, topics: bool = False) -> list[str]:
        out = [
            *(p for name in SURFACE_TABLES for p in self.surface_pair(name).values()),
            self.verdicts("surface"),
            self.surface_summary,
            self.surface_headline,
            self.surface_chart("html"),
            self.surface_chart("png"),
        ]
        if topics:
            out += [
                *(p for n in SURFACE_TOPIC_TABLES for p in self.surface_topics_pair(n).values()),
                self.surface_topics_summary,
            ]
        return out

    # -- circuits -----------------------------------------------------------------------------
    # The specialist set of every (family, layer), as for the causal stage (docs/circuits.md).
    circuits_roots = _ResultPath("circuits", "roots.json")

    def circuits_layer(self, family: str, layer) -> dict[str, str]:
        """One (family, layer)'s raw tables (the model job's outputs)."""
        return {
            name: self._p(
                "circuits", "layers", f"sae={family}", f"layer={layer}", f"{name}.parquet"
            )
            for name in CIRCUITS_LAYER_TABLES
        }

    def circuits_layer_files(self, families: Iterable[str] | None = None) -> list[str]:
        """Every root family's layer tables (``families`` None: every family)."""
        wanted = set(self.families if families is None else families)
        return [
            path
            for f, x in self.sae_layers()
            if f in wanted
            for path in self.circuits_layer(f, x).values()
        ]

    def circuits_table(self, name: str, ext: str = "parquet") -> str:
        return self._p("circuits", f"{name}.{ext}")

    def circuits_tables(self) -> dict[str, str]:
        return with_csv(CIRCUITS_TABLES, self.circuits_table)

    circuits_graph = _ResultPath("circuits", "graph.json")
    circuits_pages = _ResultPath("circuits", "pages")
    circuits_index = _ResultPath("circuits", "pages", "index.html")

    def circuits_outputs(self) -> list[str]:
        return [
            *self.circuits_tables().values(),
            self.circuits_graph,
            self.circuits_pages,
            self.verdicts("circuits"),
        ]

    # -- causal -------------------------------------------------------------------------------
    # The specialist set of every (family, layer): rewritten when the specialists table changes; the
    # layer jobs depend on its content only (docs/causal.md).
    causal_cells = _ResultPath("causal", "cells.json")

    def causal_layer(self, family: str, layer) -> dict[str, str]:
        """The tables one (family, layer)'s model job writes."""
        return {
            name: self._p("causal", "layers", f"sae={family}", f"layer={layer}", f"{name}.parquet")
            for name in CAUSAL_LAYER_TABLES
        }

    def causal_table(self, name: str, ext: str = "parquet") -> str:
        return self._p("causal", f"{name}.{ext}")

    def causal_tables(self) -> dict[str, str]:
        return with_csv(CAUSAL_TABLES, self.causal_table)

    # The causal pages (one directory output): index.html and one page per cell.
    causal_pages = _ResultPath("causal", "pages")

    # Each cell's verdict ("family/layer/category" -> record), read by content by the report and the
    # dashboards.
    causal_verdicts = _ResultPath("causal", "verdicts.json")

    causal_index = _ResultPath("causal", "pages", "index.html")

    def causal_page(self, family: str, layer, category: str) -> str:
        return self._p("causal", "pages", f"sae={family}", f"layer={layer}", f"{category}.html")

    def causal_outputs(self) -> list[str]:
        return [
            *self.causal_tables().values(),
            self.causal_pages,
            self.causal_verdicts,
            self.verdicts("causal"),
        ]

    # -- Neuronpedia export -------------------------------------------------------------------
    def neuronpedia_export(self, family: str, layer) -> str:
        """One SAE's runner directory: batch-N.json, skipped_indexes.json, run_settings.json."""
        return self._p("export", "neuronpedia", f"sae={family}", f"layer={layer}")

    def export_outputs(self) -> list[str]:
        return [self.neuronpedia_export(f, layer) for f, layer in self.sae_layers()]

    # -- comparison ---------------------------------------------------------------------------
    def comparison_table(self, name: str, ext: str = "parquet") -> str:
        return self._p("comparison", f"{name}.{ext}")

    def comparison_tables(self, names: Iterable[str]) -> dict[str, str]:
        return with_csv(names, self.comparison_table)

    def comparison_chart(self, name: str, ext: str) -> str:
        return self._p("comparison", "charts", f"{name}.{ext}")

    def comparison_charts(self) -> list[tuple[str, str, str]]:
        """(title, html, png) of every comparison chart, in the index's order."""
        return [
            (title, self.comparison_chart(name, "html"), self.comparison_chart(name, "png"))
            for name, title in COMPARISON_CHARTS.items()
        ]

    def comparison_outputs(self) -> list[str]:
        tables = [t for names in COMPARISON_TABLES.values() for t in names]
        return [
            *self.comparison_tables(tables).values(),
            *(p for _, html, png in self.comparison_charts() for p in (html, png)),
        ]

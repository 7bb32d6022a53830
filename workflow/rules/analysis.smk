# Analysis stage: activation shards -> per-text values -> tables, summary, charts, token views,
# index. Reads shards only (never the model): `snakemake analysis` analyses shards made anywhere.
# Each rule takes exactly the analysis settings it depends on as params, so changing
# `analysis.threshold` reruns the specialist rules only, never extraction or per-text values.
from sae_specialists.core.layout import (
    PEAK_CHARTS,
    PEAK_TABLES,
    SPECIALIST_TABLES,
    ActivationShardsOf,
)

_A = SETTINGS.analysis
# Every final analysis output (used by `rule all` and `rule analysis`).
analysis_outputs = AP.outputs
# tokens_shard/activation_shard (common.smk) give one shard per chunk of a category (a list, in
# text order); the analysis reads every chunk of every category.
ALL_TOKENS = flatten(tokens_shard(c) for c in CATEGORIES)
activations_of = ActivationShardsOf(activation_shard, tuple(sorted(CATEGORIES)))
ALL_TABLES = list(AP.tables(PEAK_TABLES + SPECIALIST_TABLES).values())
TABLE_INPUT = dict(
    strongest=AP.table("strongest"),
    frequent=AP.table("frequent"),
    selective=AP.table("selective"),
    specialists=AP.table("specialists"),
    texts=AP.texts,
)
ALL_SETTINGS = dict(
    aggregation=_A["aggregation"],
    include_bos=_A["include_bos"],
    threshold=_A["threshold"],
    candidates=_A["candidates"],
)


rule analysis:
    """Build every analysis output from existing shards (no model needed)."""
    input:
        AP.outputs(),


rule analysis_texts:
    """The text list and counted positions per text, from the tokens shards."""
    input:
        tokens=ALL_TOKENS,
    output:
        AP.texts,
    params:
        include_bos=_A["include_bos"],
    log:
        f"{R}/logs/analysis/texts.log",
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/sae_specialists.yaml"
    script:
        "../../scripts/analysis_texts.py"


rule analysis_per_text:
    """Sparse per-text values (value > 0) of one SAE family and layer."""
    input:
        tokens=ALL_TOKENS,
        activations=activations_of,
    output:
        AP.per_text("{family}", "{layer}"),
    params:
        aggregation=_A["aggregation"],
        include_bos=_A["include_bos"],
    log:
        f"{R}/logs/analysis/per_text_sae={{family}}_layer={{layer}}.log",
    resources:
        mem_mb=2000,
        runtime=20,
    conda:
        "../envs/sae_specialists.yaml"
    script:
        "../../scripts/analysis_per_text.py"


rule analysis_peak_tables:
    """Strongest and most frequent features, per-category peaks (threshold-free)."""
    input:
        per_text=AP.all_per_text(),
        texts=AP.texts,
    output:
        **AP.tables(PEAK_TABLES),
    log:
        f"{R}/logs/analysis/peak_tables.log",
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/sae_specialists.yaml"
    script:
        "../../scripts/analysis_peak_tables.py"


rule analysis_specialist_tables:
    """Most selective features, specialist candidates and specialists."""
    input:
        per_text=AP.all_per_text(),
        texts=AP.texts,
    output:
        **AP.tables(SPECIALIST_TABLES),
    params:
        threshold=_A["threshold"],
        candidates=_A["candidates"],
        resamples=_M["bootstrap_resamples"],
        seed=_M["seed"],
        ci=_M["ci"],
    log:
        f"{R}/logs/analysis/specialist_tables.log",
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/sae_specialists.yaml"
    script:
        "../../scripts/analysis_specialist_tables.py"


rule analysis_peak_charts:
    """Peak activation by layer (overall, per category) and coverage by layer."""
    input:
        strongest=AP.table("strongest"),
        frequent=AP.table("frequent"),
        category_peaks=AP.table("category_peaks"),
    output:
        peak_html=report(
            AP.chart(PEAK_CHARTS["peak"], "html"),
            caption="../report/peak_by_layer.rst",
            category="Charts",
            subcategory="Peak activation",
        ),
        peak_png=AP.chart(PEAK_CHARTS["peak"], "png"),
        peak_category_html=report(
            AP.chart(PEAK_CHARTS["peak_category"], "html"),
            caption="../report/peak_by_layer_category.rst",
            category="Charts",
            subcategory="Peak activation",
        ),
        peak_category_png=AP.chart(PEAK_CHARTS["peak_category"], "png"),
        coverage_html=report(
            AP.chart(PEAK_CHARTS["coverage"], "html"),
            caption="../report/coverage_by_layer.rst",
            category="Charts",
            subcategory="Coverage",
        ),
        coverage_png=AP.chart(PEAK_CHARTS["coverage"], "png"),
    log:
        f"{R}/logs/analysis/peak_charts.log",
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/sae_specialists.yaml"
    script:
        "../../scripts/analysis_peak_charts.py"


rule analysis_specialist_charts:
    """Specialists found per layer; specialist score heatmap per SAE family."""
    input:
        specialists=AP.table("specialists"),
    output:
        found_html=report(
            AP.chart("specialists_found", "html"),
            caption="../report/specialists_found.rst",
            category="Charts",
            subcategory="Specialists",
        ),
        found_png=AP.chart("specialists_found", "png"),
        heatmap_html=report(
            [AP.heatmap(f, "html") for f in FAMILIES],
            caption="../report/specialist_scores.rst",
            category="Charts",
            subcategory="Specialists",
        ),
        heatmap_png=[AP.heatmap(f, "png") for f in FAMILIES],
    # the longest job of a threshold-only rerun (PNG rendering): start it first
    priority: 1
    log:
        f"{R}/logs/analysis/specialist_charts.log",
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/sae_specialists.yaml"
    script:
        "../../scripts/analysis_specialist_charts.py"


rule analysis_report:
    """The browsable report: the token views of each category's specialist (every SAE family and
    layer), summary.md (the headline findings) and index.html linking every table, chart and
    view. One job: a threshold change reruns three jobs (specialist tables, then these and the
    specialist charts side by side). The charts are linked by their fixed paths."""
    input:
        **TABLE_INPUT,
        tables=ALL_TABLES,
        per_text=AP.all_per_text(),
        tokens=ALL_TOKENS,
        activations=flatten(
            activation_shard(f, layer, c) for f in FAMILIES for layer in LAYERS for c in CATEGORIES
        ),
    output:
        index=AP.index,
        summary=report(AP.summary, caption="../report/summary.rst", category="Summary"),
        # one directory output, not one output per page: Snakemake stores the checksums of
        # every input with every output, and ~50 inputs x 28 pages cost ~0.4 s per rerun
        token_views=report(
            directory(AP.views_dir),
            patterns=["sae={family}/layer={layer}/{category}.html"],
            caption="../report/token_view.rst",
            category="Token views",
        ),
    params:
        **ALL_SETTINGS,
        token_views=AP.all_token_views(),
        charts=AP.chart_files(),
    log:
        f"{R}/logs/analysis/report.log",
    resources:
        mem_mb=2000,
        runtime=20,
    conda:
        "../envs/sae_specialists.yaml"
    script:
        "../../scripts/analysis_report.py"

# Analysis stage: activation shards -> per-text values -> tables, summary, charts, token views,
# index. Reads shards only (never the model): `snakemake analysis` analyses shards made anywhere.
# Each rule takes exactly the analysis settings it uses as params, so changing
# `analysis.threshold` reruns the specialist rules only, never extraction or per-text values.
from sae_specialists.core.layout import (
    COMPARISON_TABLES,
    PEAK_CHARTS,
    PEAK_TABLES,
    SPECIALIST_TABLES,
)
from sae_specialists.report.findings import (
    headline_files,
    headline_links,
    left_out,
    verdict_tables,
)
from sae_specialists.core.vega import VERSIONS as CHART_SCRIPT_VERSIONS


rule analysis:
    """Build every analysis output from existing shards (no model needed)."""
    input:
        analysis_needs(),
        L.analysis_outputs(),


rule analysis_texts:
    """The text list and counted positions per text, from the tokens shards."""
    input:
        tokens=L.tokens(),
    output:
        L.texts,
    log:
        L.log("analysis", "texts"),
    conda:
        "../envs/sae_specialists.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        include_bos=S.analysis.include_bos,
    script:
        "../../scripts/analysis_texts.py"


rule analysis_per_text:
    """Sparse per-text values (value > 0) of one SAE family and layer."""
    input:
        tokens=L.tokens(),
        # in the order of the tokens shards: the i-th of each holds the same chunk
        activations=lambda w: L.activations(w.family, w.layer),
    output:
        L.per_text("{family}", "{layer}"),
    log:
        L.log("analysis", "per_text_sae={family}_layer={layer}"),
    conda:
        "../envs/sae_specialists.yaml"
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        aggregation=S.analysis.aggregation,
        include_bos=S.analysis.include_bos,
    script:
        "../../scripts/analysis_per_text.py"


rule analysis_peak_tables:
    """Strongest and most frequent features, per-category peaks (threshold-free)."""
    input:
        per_text=L.all_per_text(),
        texts=L.texts,
    output:
        **L.tables(PEAK_TABLES),
    log:
        L.log("analysis", "peak_tables"),
    conda:
        "../envs/sae_specialists.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../../scripts/analysis_peak_tables.py"


rule analysis_specialist_tables:
    """Most selective features, specialist candidates and specialists."""
    input:
        per_text=L.all_per_text(),
        texts=L.texts,
    output:
        **L.tables(SPECIALIST_TABLES),
    log:
        L.log("analysis", "specialist_tables"),
    conda:
        "../envs/sae_specialists.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        threshold=S.analysis.threshold,
        candidates=S.analysis.candidates,
        resamples=S.methodology.bootstrap_resamples,
        seed=S.methodology.seed,
        ci=S.methodology.ci,
    script:
        "../../scripts/analysis_specialist_tables.py"


rule analysis_chart_script:
    """The one Vega / Vega-Lite / vega-embed script every chart page of the run loads (vendored
    in the package: sae_specialists/assets/vega), with its licences."""
    output:
        script=L.chart_script,
        licenses=L.chart_script_licenses,
    log:
        L.log("analysis", "chart_script"),
    conda:
        "../envs/sae_specialists.yaml"
    resources:
        mem_mb=500,
        runtime=5,
    params:
        versions=CHART_SCRIPT_VERSIONS,  # a new vendored version rewrites the script
    script:
        "../../scripts/analysis_chart_script.py"


rule analysis_peak_charts:
    """Peak activation by layer (overall, per category) and coverage by layer."""
    input:
        chart_script=L.chart_script,
        strongest=L.table("strongest"),
        frequent=L.table("frequent"),
        category_peaks=L.table("category_peaks"),
    output:
        # the Snakemake report embeds the PNGs (a caption links each interactive page)
        peak_html=L.chart(PEAK_CHARTS["peak"], "html"),
        peak_png=report(
            L.chart(PEAK_CHARTS["peak"], "png"),
            caption="../report/peak_by_layer.rst",
            category="Analysis",
            subcategory="Peak activation",
        ),
        peak_category_html=L.chart(PEAK_CHARTS["peak_category"], "html"),
        peak_category_png=report(
            L.chart(PEAK_CHARTS["peak_category"], "png"),
            caption="../report/peak_by_layer_category.rst",
            category="Analysis",
            subcategory="Peak activation",
        ),
        coverage_html=L.chart(PEAK_CHARTS["coverage"], "html"),
        coverage_png=report(
            L.chart(PEAK_CHARTS["coverage"], "png"),
            caption="../report/coverage_by_layer.rst",
            category="Analysis",
            subcategory="Coverage",
        ),
    log:
        L.log("analysis", "peak_charts"),
    conda:
        "../envs/sae_specialists.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../../scripts/analysis_peak_charts.py"


rule analysis_specialist_charts:
    """Specialists found per layer; specialist score heatmap per SAE family."""
    input:
        chart_script=L.chart_script,
        specialists=L.table("specialists"),
    output:
        found_html=L.chart("specialists_found", "html"),
        found_png=report(
            L.chart("specialists_found", "png"),
            caption="../report/specialists_found.rst",
            category="Analysis",
            subcategory="Specialists",
        ),
        heatmap_html=[L.heatmap(f, "html") for f in FAMILIES],
        heatmap_png=report(
            [L.heatmap(f, "png") for f in FAMILIES],
            caption="../report/specialist_scores.rst",
            category="Analysis",
            subcategory="Specialists",
        ),
    log:
        L.log("analysis", "specialist_charts"),
    # the longest job of a threshold-only rerun (PNG rendering): start it first
    priority: 1
    conda:
        "../envs/sae_specialists.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        families=list(FAMILIES),  # the family of each heatmap, in output order
    script:
        "../../scripts/analysis_specialist_charts.py"


rule analysis_token_views:
    """The token views of each category's specialist (every SAE family and layer). One
    directory output, not one output per page: Snakemake stores the checksums of every input
    with every output, and ~50 inputs x 28 pages cost ~0.4 s per rerun."""
    input:
        specialists=L.table("specialists"),
        texts=L.texts,
        per_text=L.all_per_text(),
        tokens=L.tokens(),
        activations=L.all_activations(),
    output:
        # linked from the summary's caption, not embedded in the Snakemake report (126 pages on
        # the demo; analysis.html's grid opens each)
        token_views=directory(L.views_dir),
    log:
        L.log("analysis", "token_views"),
    conda:
        "../envs/sae_specialists.yaml"
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        include_bos=S.analysis.include_bos,
        threshold=S.analysis.threshold,
        # keys (family, layer[, category]) -> paths, from the layout
        per_text=L.per_text_by_sae_layer(),
        activations=L.activations_by_sae_layer(),
        token_views=L.token_views(),
        index=L.analysis_page,  # each view links back to the analysis page
    script:
        "../../scripts/analysis_token_views.py"


rule analysis_report:
    """analysis.html (the findings board of the stages that need no model, the summary, charts,
    tables and the token-view grid) and summary.md. Part of `snakemake analysis`, so it reads
    only model-free verdict tables (report/findings.py): the causal check's are on index.html.
    The charts and token views are linked by their fixed paths."""
    input:
        strongest=L.table("strongest"),
        frequent=L.table("frequent"),
        selective=L.table("selective"),
        specialists=L.table("specialists"),
        texts=L.texts,
        tables=list(L.analysis_tables().values()),
        # the verdict tables of the registered stages that need no model (report/findings.py)
        verdicts=list(verdict_tables(S, L, model_free=True).values()),
        # validation/verdicts.json for summary.md's validation section, when on the board
        validation=(
            L.validation_verdicts
            if "validation" in verdict_tables(S, L, model_free=True)
            else []
        ),
        # the headlines (e.g. the surface stage's depth sentence) of the same stages
        headlines=list(headline_files(S, L, model_free=True).values()),
    output:
        index=L.analysis_page,
        summary=report(L.summary, caption="../report/summary.rst", category="Summary"),
    log:
        L.log("analysis", "report"),
    conda:
        "../envs/sae_specialists.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        aggregation=S.analysis.aggregation,
        include_bos=S.analysis.include_bos,
        threshold=S.analysis.threshold,
        candidates=S.analysis.candidates,
        # the study's numbers are quoted only for its own model and SAEs (report/summary.py)
        model_name=S.model.name,
        sae_releases={name: family.release for name, family in S.saes.items()},
        per_text=L.per_text_by_sae_layer(),
        token_views=L.token_views(),
        dashboard_dirs={f"{f}/{l}": L.dashboard_dir(f, l) for f, l in L.sae_layers()},
        # the board's stages (in the order of `verdicts`) and those left to index.html
        verdict_stages=list(verdict_tables(S, L, model_free=True)),
        left_out=left_out(S, model_free=True),
        tables={
            n: (L.table(n), L.table(n, "csv")) for n in PEAK_TABLES + SPECIALIST_TABLES
        }
        | (
            {
                n: (L.comparison_table(n), L.comparison_table(n, "csv"))
                for names in COMPARISON_TABLES.values()
                for n in names
            }
            if S.comparison.enabled
            else {}
        ),
        # (title, html, png): linked by their fixed paths
        charts=L.charts()
        + (L.validation_charts(S.validation.families) if S.validation.enabled else [])
        + (L.comparison_charts() if S.comparison.enabled else []),
        validation_summary=L.validation_summary,
        causal_index=L.causal_index if S.causal.enabled else None,
        headline_stages=list(headline_files(S, L, model_free=True)),  # order of `headlines`
        # the stages left to index.html: their summaries, linked instead
        headline_links=headline_links(S, L, model_free=True),
    script:
        "../../scripts/analysis_report.py"

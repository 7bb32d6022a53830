# Analysis stage: activation shards -> per-text values -> tables, summary, charts, token views,
# index. Reads shards only (never the model): `snakemake analysis` analyses shards made anywhere.
# Each rule takes exactly the analysis settings it depends on as params, so changing
# `analysis.threshold` reruns the specialist rules only, never extraction or per-text values.

_A = SETTINGS.analysis
PER_TEXT_DIR = f"{R}/per_text"
TABLES_DIR = f"{R}/tables"
CHARTS_DIR = f"{R}/charts"
VIEWS_DIR = f"{R}/token_views"
PEAK_TABLES = ["strongest", "frequent", "category_peaks"]
SPECIALIST_TABLES = ["selective", "candidates", "specialists"]


def per_text_file(family, layer):
    return f"{PER_TEXT_DIR}/sae={family}/layer={layer}.parquet"


def all_per_text():
    return [per_text_file(f, l) for f in FAMILIES for l in LAYERS]


def table_files(names, ext):
    return {n + ("" if ext == "parquet" else "_csv"): f"{TABLES_DIR}/{n}.{ext}" for n in names}


def tables_outputs(names):
    return {**table_files(names, "parquet"), **table_files(names, "csv")}


def token_view_pages(family, layer):
    return [f"{VIEWS_DIR}/sae={family}/layer={layer}/{c}.html" for c in sorted(CATEGORIES)]


def all_token_views():
    return [p for f in FAMILIES for l in LAYERS for p in token_view_pages(f, l)]


def heatmap(family, ext):
    return f"{CHARTS_DIR}/specialist_scores_sae={family}.{ext}"


PEAK_CHARTS = {
    "peak": "peak_by_layer",
    "peak_category": "peak_by_layer_category",
    "coverage": "coverage_by_layer",
}


def chart_files():
    files = [f"{CHARTS_DIR}/{stem}.{ext}" for stem in PEAK_CHARTS.values() for ext in ("html", "png")]
    files += [f"{CHARTS_DIR}/specialists_found.{ext}" for ext in ("html", "png")]
    files += [heatmap(f, ext) for f in FAMILIES for ext in ("html", "png")]
    return files


def analysis_outputs():
    """Every final output of the analysis stage (used by `rule all` and `rule analysis`)."""
    return [
        f"{R}/index.html",
        f"{R}/summary.md",
        *tables_outputs(PEAK_TABLES + SPECIALIST_TABLES).values(),
        *chart_files(),
        *all_token_views(),
    ]


rule analysis:
    """Build every analysis output from existing shards (no model needed)."""
    input:
        analysis_outputs(),


rule analysis_texts:
    input:
        tokens=[tokens_shard(c) for c in CATEGORIES],
    output:
        f"{PER_TEXT_DIR}/texts.parquet",
    params:
        include_bos=_A["include_bos"],
    log:
        f"{R}/logs/analysis/texts.log",
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../../scripts/analysis_texts.py"


rule analysis_per_text:
    input:
        tokens=[tokens_shard(c) for c in CATEGORIES],
        activations=lambda w: [activation_shard(w.family, w.layer, c) for c in CATEGORIES],
    output:
        f"{PER_TEXT_DIR}/sae={{family}}/layer={{layer}}.parquet",
    params:
        aggregation=_A["aggregation"],
        include_bos=_A["include_bos"],
    log:
        f"{R}/logs/analysis/per_text_sae={{family}}_layer={{layer}}.log",
    resources:
        mem_mb=2000,
        runtime=20,
    script:
        "../../scripts/analysis_per_text.py"


rule analysis_peak_tables:
    input:
        per_text=all_per_text(),
        texts=rules.analysis_texts.output[0],
    output:
        **tables_outputs(PEAK_TABLES),
    log:
        f"{R}/logs/analysis/peak_tables.log",
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../../scripts/analysis_peak_tables.py"


rule analysis_specialist_tables:
    input:
        per_text=all_per_text(),
        texts=rules.analysis_texts.output[0],
    output:
        **tables_outputs(SPECIALIST_TABLES),
    params:
        threshold=_A["threshold"],
        candidates=_A["candidates"],
    log:
        f"{R}/logs/analysis/specialist_tables.log",
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../../scripts/analysis_specialist_tables.py"


SUMMARY_INPUT = dict(
    strongest=f"{TABLES_DIR}/strongest.parquet",
    frequent=f"{TABLES_DIR}/frequent.parquet",
    selective=f"{TABLES_DIR}/selective.parquet",
    specialists=f"{TABLES_DIR}/specialists.parquet",
    texts=f"{PER_TEXT_DIR}/texts.parquet",
)
ALL_SETTINGS = dict(
    aggregation=_A["aggregation"],
    include_bos=_A["include_bos"],
    threshold=_A["threshold"],
    candidates=_A["candidates"],
)


rule analysis_summary:
    input:
        **SUMMARY_INPUT,
    output:
        report(
            f"{R}/summary.md",
            caption="../report/summary.rst",
            category="Summary",
        ),
    params:
        **ALL_SETTINGS,
    log:
        f"{R}/logs/analysis/summary.log",
    resources:
        mem_mb=2000,
        runtime=5,
    script:
        "../../scripts/analysis_summary.py"


rule analysis_peak_charts:
    input:
        strongest=f"{TABLES_DIR}/strongest.parquet",
        frequent=f"{TABLES_DIR}/frequent.parquet",
        category_peaks=f"{TABLES_DIR}/category_peaks.parquet",
    output:
        peak_html=report(
            f"{CHARTS_DIR}/peak_by_layer.html",
            caption="../report/peak_by_layer.rst",
            category="Charts",
            subcategory="Peak activation",
        ),
        peak_png=f"{CHARTS_DIR}/peak_by_layer.png",
        peak_category_html=report(
            f"{CHARTS_DIR}/peak_by_layer_category.html",
            caption="../report/peak_by_layer_category.rst",
            category="Charts",
            subcategory="Peak activation",
        ),
        peak_category_png=f"{CHARTS_DIR}/peak_by_layer_category.png",
        coverage_html=report(
            f"{CHARTS_DIR}/coverage_by_layer.html",
            caption="../report/coverage_by_layer.rst",
            category="Charts",
            subcategory="Coverage",
        ),
        coverage_png=f"{CHARTS_DIR}/coverage_by_layer.png",
    log:
        f"{R}/logs/analysis/peak_charts.log",
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../../scripts/analysis_peak_charts.py"


rule analysis_specialist_charts:
    input:
        specialists=f"{TABLES_DIR}/specialists.parquet",
    output:
        found_html=report(
            f"{CHARTS_DIR}/specialists_found.html",
            caption="../report/specialists_found.rst",
            category="Charts",
            subcategory="Specialists",
        ),
        found_png=f"{CHARTS_DIR}/specialists_found.png",
        heatmap_html=report(
            [heatmap(f, "html") for f in FAMILIES],
            caption="../report/specialist_scores.rst",
            category="Charts",
            subcategory="Specialists",
        ),
        heatmap_png=[heatmap(f, "png") for f in FAMILIES],
    log:
        f"{R}/logs/analysis/specialist_charts.log",
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../../scripts/analysis_specialist_charts.py"


rule analysis_token_views:
    input:
        specialists=f"{TABLES_DIR}/specialists.parquet",
        per_text=per_text_file("{family}", "{layer}"),
        texts=f"{PER_TEXT_DIR}/texts.parquet",
        tokens=[tokens_shard(c) for c in CATEGORIES],
        activations=lambda w: [activation_shard(w.family, w.layer, c) for c in CATEGORIES],
    output:
        report(
            [f"{VIEWS_DIR}/sae={{family}}/layer={{layer}}/{c}.html" for c in sorted(CATEGORIES)],
            caption="../report/token_view.rst",
            category="Token views",
            subcategory="SAE {family}, layer {layer}",
        ),
    params:
        include_bos=_A["include_bos"],
        threshold=_A["threshold"],
        index=f"{R}/index.html",
    log:
        f"{R}/logs/analysis/token_views_sae={{family}}_layer={{layer}}.log",
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../../scripts/analysis_token_views.py"


rule analysis_index:
    input:
        **SUMMARY_INPUT,
        summary=f"{R}/summary.md",
        tables=list(tables_outputs(PEAK_TABLES + SPECIALIST_TABLES).values()),
        charts=chart_files(),
        token_views=all_token_views(),
        per_text=all_per_text(),
    output:
        f"{R}/index.html",
    params:
        **ALL_SETTINGS,
    log:
        f"{R}/logs/analysis/index.log",
    resources:
        mem_mb=2000,
        runtime=5,
    script:
        "../../scripts/analysis_index.py"

# Comparison stage (docs/comparison.md): SAE families (residual, attention-out, MLP-out, ...)
# against each other, across layers and across dictionary widths. Reads the analysis tables, the
# per-text files (whose metadata names each SAE's hook and width), the shards and the SAEs' own
# weight files; never the model. Each rule takes exactly the settings it uses as params.

from sae_specialists.core.layout import COMPARISON_TABLES

_C = S.comparison
# local SAE files (none for SAELens releases), so editing an SAE reruns the decoder jobs
SAE_FILES = [f for source in sae_sources().values() for f in sae_input_files(source)]
SHARDS = dict(tokens=L.tokens(), activations=L.all_activations(), texts=L.texts)


rule comparison:
    """Build every comparison output (also part of `rule all` when comparison.enabled)."""
    input:
        comparison_needs(),
        L.comparison_outputs(),


rule comparison_components:
    """Per category: the specialist of every SAE family at every layer, the strongest family
    at each layer and the family that has one first."""
    input:
        chart_script=L.chart_script,
        specialists=L.table("specialists"),
        per_text=L.all_per_text(),
    output:
        **L.comparison_tables(COMPARISON_TABLES["components"]),
        chart_html=L.comparison_chart("components", "html"),
        chart_png=report(
            L.comparison_chart("components", "png"),
            caption="../report/comparison_components.rst",
            category="Comparison",
        ),
    log:
        L.log("comparison", "components"),
    conda:
        "../envs/sae_specialists.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../../scripts/comparison_components.py"


rule comparison_related:
    """Every feature a dashboard can show (specialist candidates, strongest, most frequent):
    its nearest features by decoder cosine in its own SAE, the next layer and the other
    families at its layer, with co-activation. Threshold-free (candidates do not depend on the
    threshold), so a threshold change never reruns it nor, through it, the dashboards.
    """
    input:
        **SHARDS,
        strongest=L.table("strongest"),
        frequent=L.table("frequent"),
        per_text=L.all_per_text(),
        sae_files=SAE_FILES,
    output:
        **L.comparison_tables(COMPARISON_TABLES["related"]),
        # unit decoder rows of those features: the tracking job reads them, no SAE to load
        feature_directions=L.comparison_table("feature_directions"),
    log:
        L.log("comparison", "related"),
    conda:
        "../envs/sae_specialists.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        saes=sae_sources(),
        content=local_content(FAMILIES, model=False),  # the SAE files' content (common.smk)
        activations=L.activations_by_sae_layer(),
        neighbours=_C.neighbours,
        min_cosine=_C.related_min_cosine,
        candidates=S.analysis.candidates,
        include_bos=S.analysis.include_bos,
    script:
        "../../scripts/comparison_related.py"


rule comparison_tracking:
    """Each category's specialists linked across layers and families (decoder cosine,
    co-activation), and their next-layer neighbours: from the related-features job's tables
    (no SAE loaded, so a threshold change reruns it in seconds)."""
    input:
        **SHARDS,
        chart_script=L.chart_script,
        specialists=L.table("specialists"),
        related_features=L.comparison_table("related_features"),
        feature_directions=L.comparison_table("feature_directions"),
        per_text=L.all_per_text(),
    output:
        **L.comparison_tables(COMPARISON_TABLES["tracking"]),
        chart_html=L.comparison_chart("specialist_links", "html"),
        chart_png=report(
            L.comparison_chart("specialist_links", "png"),
            caption="../report/comparison_links.rst",
            category="Comparison",
        ),
    log:
        L.log("comparison", "tracking"),
    conda:
        "../envs/sae_specialists.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        activations=L.activations_by_sae_layer(),
        include_bos=S.analysis.include_bos,
    script:
        "../../scripts/comparison_tracking.py"


rule comparison_splits:
    """Width ladders (families reading one hook at one layer with different widths) and how
    each category's narrowest specialist splits into the wider SAEs' features."""
    input:
        **SHARDS,
        chart_script=L.chart_script,
        specialists=L.table("specialists"),
        per_text=L.all_per_text(),
        sae_files=SAE_FILES,
    output:
        **L.comparison_tables(COMPARISON_TABLES["splits"]),
        chart_html=L.comparison_chart("splits", "html"),
        chart_png=report(
            L.comparison_chart("splits", "png"),
            caption="../report/comparison_splits.rst",
            category="Comparison",
        ),
    log:
        L.log("comparison", "splits"),
    conda:
        "../envs/sae_specialists.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        saes=sae_sources(),
        content=local_content(FAMILIES, model=False),  # the SAE files' content (common.smk)
        activations=L.activations_by_sae_layer(),
        threshold=S.analysis.threshold,
        split_min_correlation=_C.split_min_correlation,
        split_min_cosine=_C.split_min_cosine,
        include_bos=S.analysis.include_bos,
    script:
        "../../scripts/comparison_splits.py"

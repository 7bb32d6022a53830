# Neuronpedia export (`snakemake export`, docs/dashboards.md): each SAE family's and layer's
# dashboards as the files SAEDashboard's Neuronpedia runner writes for upload. Not part of
# `rule all`; reads the dashboard tables and logit effects only (no model).
import os


rule export:
    """Write the Neuronpedia batch files of every SAE family and layer."""
    input:
        L.export_outputs(),


rule neuronpedia_export:
    input:
        **({"corpus_tokens": L.corpus_tokens} if DB.corpus else {}),
        dashboards=L.dashboard_dir("{family}", "{layer}"),
        logits=L.logits("{family}", "{layer}"),
        logit_histograms=L.logit_histograms("{family}", "{layer}"),
        tokens=L.tokens(),
    output:
        directory(L.neuronpedia_export("{family}", "{layer}")),
    log:
        L.log("export", "neuronpedia_sae={family}_layer={layer}"),
    conda:
        "../envs/sae_specialists.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        model_name=S.model.name or os.path.basename(str(S.model.path).rstrip("/")),
        model_id=S.export.model_id,
        sae_sets=S.export.sae_sets,
        dataset=S.export.dataset,
        features_per_batch=S.export.features_per_batch,
        corpus=bool(DB.corpus),
        # recorded in run_settings.json (the runner's names for the example groups)
        settings={
            "top_acts_group_size": DB.examples,
            "n_quantiles": DB.quantiles,
            "quantile_group_size": DB.quantile_examples,
            "include_bos": S.analysis.include_bos,
        },
    script:
        "../../scripts/dashboards_export.py"

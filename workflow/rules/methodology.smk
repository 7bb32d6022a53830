# Methodology study (docs/methodology.md): how preprocessing and selection choices make
# specialists appear or vanish. Off the main path: no extraction or analysis rule depends on
# these outputs (`snakemake analysis` never runs them); `rule all` builds them when
# `methodology.enabled` is true. Only `methodology_variants` loads the model (one job for every
# category: the model loaded once, then a naive right-padded forward pass per category); every
# other rule reads shards / per-text tables.
# Each rule takes only the settings it uses as params: changing the threshold grid or the number
# of resamples reruns the sweep or the bootstrap (and the summary), never extraction or analysis.
M = S.methodology


rule methodology:
    """Every methodology output (ablation, threshold sweep, AUROC, all-feature scoring,
    bootstrap stability, summary), whether or not methodology.enabled is set."""
    input:
        methodology_needs(),
        L.methodology_outputs(),


rule methodology_variants:
    """The model-needing variants of every category, each on its own: texts right-padded to the
    category's longest text, one forward pass without attention mask, aggregate-then-encode +
    pad activations. One job (the model loaded once: a model process costs ~5-10 s of library
    imports, the variants of a study-sized category a few seconds); editing one category's
    texts reruns every category's variants (docs/performance.md).
    """
    input:
        tokens=L.tokens(),
        model_and_saes=model_and_sae_files(FAMILIES, LAYERS),
    output:
        # one per category, in the order of params.categories
        resid=[L.variant(c, "resid") for c in L.categories],
        pad=[L.variant(c, "pad") for c in L.categories],
        texts=[L.variant(c, "texts") for c in L.categories],
    log:
        L.log("methodology", "variants"),
    conda:
        "../envs/sae_specialists.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=GPU,
    params:
        categories=list(L.categories),
        tokens={c: L.tokens(c) for c in L.categories},
        model=S.model.spec,
        saes=sae_sources(),
        dtype=S.dtype,
        content=local_content(FAMILIES, LAYERS),
        batch_size=unchecked(S.extraction.batch_size),
        device=unchecked(S.device),
    script:
        "../../scripts/methodology_variants.py"


rule methodology_ablation:
    """Specialists under every method (encode order x padding x BOS x aggregation)."""
    input:
        unpack(lambda w: L.ablation_inputs(M.model_variants)),
        chart_script=L.chart_script,
    output:
        rows=L.methodology_table("ablation"),
        rows_csv=L.methodology_table("ablation", "csv"),
        summary=L.methodology_table("ablation_summary"),
        summary_csv=L.methodology_table("ablation_summary", "csv"),
        chart_html=L.methodology_chart("ablation", "html"),
        chart_png=report(
            L.methodology_chart("ablation", "png"),
            caption="../report/methodology_ablation.rst",
            category="Methodology",
        ),
    log:
        L.log("methodology", "ablation"),
    conda:
        "../envs/sae_specialists.yaml"
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        threshold=S.analysis.threshold,
        candidates=S.analysis.candidates,
        aggregation=S.analysis.aggregation,
        include_bos=S.analysis.include_bos,
        model_variants=M.model_variants,
        activations=L.activations_by_sae_layer(),
    script:
        "../../scripts/methodology_ablation.py"


rule methodology_sweep:
    """Specialists found and best scores over the threshold grid (top-k and all features)."""
    input:
        chart_script=L.chart_script,
        per_text=L.all_per_text(),
        texts=L.texts,
    output:
        table=L.methodology_table("threshold_sweep"),
        table_csv=L.methodology_table("threshold_sweep", "csv"),
        chart_html=L.methodology_chart("threshold_sweep", "html"),
        # linked from the methodology summary's caption, not embedded (a tall chart: ~2.6 MB)
        chart_png=L.methodology_chart("threshold_sweep", "png"),
    log:
        L.log("methodology", "sweep"),
    conda:
        "../envs/sae_specialists.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        max_dense_gb=M.max_dense_gb,
        thresholds=list(M.thresholds),
        threshold=S.analysis.threshold,
        candidates=S.analysis.candidates,
    script:
        "../../scripts/methodology_sweep.py"


rule methodology_scores:
    """All-feature scoring vs the top-k candidate rule, and the AUROC of each specialist."""
    input:
        chart_script=L.chart_script,
        per_text=L.all_per_text(),
        texts=L.texts,
    output:
        **L.methodology_pair("all_features"),
        **L.methodology_pair("auroc"),
        missed=L.methodology_table("missed_by_topk"),
        missed_csv=L.methodology_table("missed_by_topk", "csv"),
        topk_html=L.methodology_chart("topk_vs_all", "html"),
        topk_png=report(
            L.methodology_chart("topk_vs_all", "png"),
            caption="../report/methodology_topk.rst",
            category="Methodology",
        ),
        auroc_html=L.methodology_chart("auroc", "html"),
        auroc_png=report(
            L.methodology_chart("auroc", "png"),
            caption="../report/methodology_auroc.rst",
            category="Methodology",
        ),
    log:
        L.log("methodology", "scores"),
    conda:
        "../envs/sae_specialists.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        max_dense_gb=M.max_dense_gb,
        threshold=S.analysis.threshold,
        candidates=S.analysis.candidates,
    script:
        "../../scripts/methodology_scores.py"


rule methodology_bootstrap:
    """Bootstrap stability of each reported specialist (+ join-ready stability table)."""
    input:
        chart_script=L.chart_script,
        per_text=L.all_per_text(),
        texts=L.texts,
    output:
        table=L.methodology_table("bootstrap"),
        table_csv=L.methodology_table("bootstrap", "csv"),
        stability=L.table("specialists_stability"),
        stability_csv=L.table("specialists_stability", "csv"),
        charts_html=[L.stability_chart(f, "html") for f in FAMILIES],
        # linked from the methodology summary's caption, not embedded (one per family)
        charts_png=[L.stability_chart(f, "png") for f in FAMILIES],
    log:
        L.log("methodology", "bootstrap"),
    conda:
        "../envs/sae_specialists.yaml"
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        max_dense_gb=M.max_dense_gb,
        threshold=S.analysis.threshold,
        candidates=S.analysis.candidates,
        resamples=M.bootstrap_resamples,
        seed=M.seed,
        ci=M.ci,
        families=list(FAMILIES),  # the family of each stability chart, in output order
    script:
        "../../scripts/methodology_bootstrap.py"


rule methodology_summary:
    """summary.md: each pitfall with this run's numbers."""
    input:
        ablation=L.methodology_table("ablation_summary"),
        sweep=L.methodology_table("threshold_sweep"),
        auroc=L.methodology_table("auroc"),
        all_features=L.methodology_table("all_features"),
        bootstrap=L.methodology_table("bootstrap"),
    output:
        report(
            L.methodology_summary,
            caption="../report/methodology_summary.rst",
            category="Methodology",
        ),
    log:
        L.log("methodology", "summary"),
    conda:
        "../envs/sae_specialists.yaml"
    resources:
        mem_mb=2000,
        runtime=5,
    params:
        threshold=S.analysis.threshold,
        candidates=S.analysis.candidates,
        resamples=M.bootstrap_resamples,
        seed=M.seed,
        ci=M.ci,
        aggregation=S.analysis.aggregation,
        include_bos=S.analysis.include_bos,
    script:
        "../../scripts/methodology_summary.py"

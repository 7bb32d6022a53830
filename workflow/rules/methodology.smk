# Methodology study (README "Methodology study"): how preprocessing and selection choices make
# specialists appear or vanish. Off the main path: no extraction or analysis rule depends on
# these outputs (`snakemake analysis` never runs them); `rule all` builds them when
# `methodology.enabled` is true. Only `methodology_variants` loads the model (one job per
# category: a naive right-padded forward pass); every other rule reads shards / per-text tables.
# Each rule takes only the settings it uses as params: changing the threshold grid or the number
# of resamples reruns the sweep or the bootstrap (and the summary), never extraction or analysis.
rule methodology:
    """Every methodology output (ablation, threshold sweep, AUROC, all-feature scoring,
    bootstrap stability, summary), whether or not methodology.enabled is set."""
    input:
        _methodology_targets(),


rule methodology_variants:
    """The model-needing variants of one category: texts right-padded to the category's longest
    text, one forward pass without attention mask, aggregate-then-encode + pad activations."""
    input:
        tokens=lambda w: flatten([tokens_shard(w.category)]),
        model_and_saes=model_and_sae_files(FAMILIES, LAYERS),
    output:
        resid=_mvariant("{category}", "resid"),
        pad=_mvariant("{category}", "pad"),
        texts=_mvariant("{category}", "texts"),
    params:
        model=SETTINGS.model,
        saes={name: config["saes"][name] for name in FAMILIES},
        layers=LAYERS,
        dtype=SETTINGS.dtype,
    log:
        f"{R}/logs/methodology/variants_category={{category}}.log",
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=1 if SETTINGS.device == "cuda" else 0,
    conda:
        "../envs/sae_specialists.yaml"
    script:
        "../../scripts/methodology_variants.py"


rule methodology_ablation:
    """Specialists under every method (encode order x padding x BOS x aggregation)."""
    input:
        unpack(_ablation_inputs),
    output:
        rows=_mtable("ablation"),
        rows_csv=_mtable("ablation", "csv"),
        summary=_mtable("ablation_summary"),
        summary_csv=_mtable("ablation_summary", "csv"),
        chart_html=report(_mchart("ablation", "html"), caption="../report/methodology_ablation.rst",
                          category="Methodology"),
        chart_png=_mchart("ablation", "png"),
    params:
        threshold=_MA["threshold"],
        candidates=_MA["candidates"],
        aggregation=_MA["aggregation"],
        include_bos=_MA["include_bos"],
        model_variants=_M["model_variants"],
    log:
        f"{R}/logs/methodology/ablation.log",
    resources:
        mem_mb=4000,
        runtime=20,
    conda:
        "../envs/sae_specialists.yaml"
    script:
        "../../scripts/methodology_ablation.py"


rule methodology_sweep:
    """Specialists found and best scores over the threshold grid (top-k and all features)."""
    input:
        per_text=AP.all_per_text(),
        texts=AP.texts,
    output:
        table=_mtable("threshold_sweep"),
        table_csv=_mtable("threshold_sweep", "csv"),
        chart_html=report(_mchart("threshold_sweep", "html"),
                          caption="../report/methodology_sweep.rst", category="Methodology"),
        chart_png=_mchart("threshold_sweep", "png"),
    params:
        max_dense_gb=_M["max_dense_gb"],
        thresholds=_M["thresholds"],
        threshold=_MA["threshold"],
        candidates=_MA["candidates"],
    log:
        f"{R}/logs/methodology/sweep.log",
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/sae_specialists.yaml"
    script:
        "../../scripts/methodology_sweep.py"


rule methodology_scores:
    """All-feature scoring vs the top-k candidate rule, and the AUROC of each specialist."""
    input:
        per_text=AP.all_per_text(),
        texts=AP.texts,
    output:
        **_pair("all_features"),
        **_pair("auroc"),
        missed=_mtable("missed_by_topk"),
        missed_csv=_mtable("missed_by_topk", "csv"),
        topk_html=report(_mchart("topk_vs_all", "html"),
                         caption="../report/methodology_topk.rst", category="Methodology"),
        topk_png=_mchart("topk_vs_all", "png"),
        auroc_html=report(_mchart("auroc", "html"),
                          caption="../report/methodology_auroc.rst", category="Methodology"),
        auroc_png=_mchart("auroc", "png"),
    params:
        max_dense_gb=_M["max_dense_gb"],
        threshold=_MA["threshold"],
        candidates=_MA["candidates"],
    log:
        f"{R}/logs/methodology/scores.log",
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/sae_specialists.yaml"
    script:
        "../../scripts/methodology_scores.py"


rule methodology_bootstrap:
    """Bootstrap stability of each reported specialist (+ join-ready stability table)."""
    input:
        per_text=AP.all_per_text(),
        texts=AP.texts,
    output:
        table=_mtable("bootstrap"),
        table_csv=_mtable("bootstrap", "csv"),
        stability=f"{R}/tables/specialists_stability.parquet",
        stability_csv=f"{R}/tables/specialists_stability.csv",
        charts_html=report([_stability_chart(f, "html") for f in FAMILIES],
                           caption="../report/methodology_stability.rst",
                           category="Methodology"),
        charts_png=[_stability_chart(f, "png") for f in FAMILIES],
    params:
        max_dense_gb=_M["max_dense_gb"],
        **_BOOT,
    log:
        f"{R}/logs/methodology/bootstrap.log",
    resources:
        mem_mb=4000,
        runtime=20,
    conda:
        "../envs/sae_specialists.yaml"
    script:
        "../../scripts/methodology_bootstrap.py"


rule methodology_summary:
    """summary.md: each pitfall with this run's numbers."""
    input:
        ablation=_mtable("ablation_summary"),
        sweep=_mtable("threshold_sweep"),
        auroc=_mtable("auroc"),
        all_features=_mtable("all_features"),
        bootstrap=_mtable("bootstrap"),
    output:
        report(f"{MR}/summary.md", caption="../report/methodology_summary.rst",
               category="Methodology"),
    params:
        **_BOOT,
        aggregation=_MA["aggregation"],
        include_bos=_MA["include_bos"],
    log:
        f"{R}/logs/methodology/summary.log",
    resources:
        mem_mb=2000,
        runtime=5,
    conda:
        "../envs/sae_specialists.yaml"
    script:
        "../../scripts/methodology_summary.py"

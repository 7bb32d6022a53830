# Feature dashboards (README "Feature dashboards"): per SAE family and layer, one self-contained page per
# specialist and per top strongest / most frequent feature, plus {R}/dashboards/index.html.
# Only `logit_effects` (model once per layer job + one SAE) and `dashboard_corpus` (optional
# reference corpus) load the model; the dashboard rules read Parquet only.
rule dashboards:
    """Build every feature dashboard (needs the analysis tables and the logit effects)."""
    input:
        dashboard_outputs(),


rule logit_effects:
    input:
        lambda w: model_and_sae_files([w.family], [w.layer]),
    output:
        logits_file("{family}", "{layer}"),
    params:
        model=SETTINGS.model,
        sae=lambda w: config["saes"][w.family],
        dtype=SETTINGS.dtype,
        top=_DB["logit_top"],
    log:
        f"{R}/logs/dashboards/logits_sae={{family}}_layer={{layer}}.log",
    threads: 2
    resources:
        mem_mb=8000,
        runtime=30,
        gpu=1 if SETTINGS.device == "cuda" else 0,
    conda:
        "../envs/sae_specialists.yaml"
    script:
        "../../scripts/logit_effects.py"


if _DB["corpus"]:

    rule dashboard_corpus:
        input:
            [_DB["corpus"]] + model_and_sae_files(FAMILIES, LAYERS),
        output:
            tokens=corpus_tokens(),
            activations=[corpus_activations(f, l) for f in FAMILIES for l in LAYERS],
        params:
            model=SETTINGS.model,
            saes={name: config["saes"][name] for name in FAMILIES},
            layers=LAYERS,
            dtype=SETTINGS.dtype,
            text_field=_DB["corpus_text_field"],
            text_split=SETTINGS.extraction.get("text_split"),
            max_texts=_DB["corpus_max_texts"],
            max_tokens=_DB["corpus_max_tokens"],
        log:
            f"{R}/logs/dashboards/corpus.log",
        threads: 2
        resources:
            mem_mb=8000,
            runtime=240,
            gpu=1 if SETTINGS.device == "cuda" else 0,
        conda:
            "../envs/sae_specialists.yaml"
        script:
            "../../scripts/dashboard_corpus.py"


rule dashboards_layer:
    input:
        unpack(_dashboard_layer_inputs),
    output:
        report(
            directory(dashboard_dir("{family}", "{layer}")),
            patterns=["feature={feature}.html"],  # each page is self-contained
            caption="../report/dashboards.rst",
            category="Feature dashboards",
            subcategory="SAE {family}, layer {layer}",
            labels={"feature": "{feature}", "SAE": "{family}", "layer": "{layer}"},
        ),
    params:
        settings={k: v for k, v in _DB.items() if not k.startswith("corpus") and k != "logit_top"},
        corpus=bool(_DB["corpus"]),
        include_bos=SETTINGS.analysis["include_bos"],
        threshold=SETTINGS.analysis["threshold"],
        aggregation=SETTINGS.analysis["aggregation"],
        token_views_dir=AP.views_dir,
        index=f"{DASHBOARDS_DIR}/index.html",
    log:
        f"{R}/logs/dashboards/dashboards_sae={{family}}_layer={{layer}}.log",
    resources:
        mem_mb=4000,
        runtime=20,
    conda:
        "../envs/sae_specialists.yaml"
    script:
        "../../scripts/dashboard_layer.py"


rule dashboards_index:
    input:
        dirs=[dashboard_dir(f, l) for f in FAMILIES for l in LAYERS],
    output:
        f"{DASHBOARDS_DIR}/index.html",
    params:
        settings={"top_k_features": _DB["top_k_features"], "corpus": _DB["corpus"]},
    log:
        f"{R}/logs/dashboards/index.log",
    resources:
        mem_mb=2000,
        runtime=5,
    conda:
        "../envs/sae_specialists.yaml"
    script:
        "../../scripts/dashboard_index.py"

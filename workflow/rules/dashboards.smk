# Feature dashboards (docs/dashboards.md): per SAE family and layer, one self-contained page per
# specialist and per top strongest / most frequent feature, plus {results_dir}/dashboards/index.html.
# Only `logit_effects` (the model once per SAE family, for all its layers) and `dashboard_corpus`
# (optional reference corpus) load the model; the dashboard rules read Parquet only.
from sae_specialists.report.findings import sources as verdict_sources
from sae_specialists.report.findings import verdict_tables

import re

DB = S.dashboards


rule dashboards:
    """Build every feature dashboard (needs the analysis tables and the logit effects)."""
    input:
        dashboard_needs(),
        L.dashboard_outputs(),


# One logit-effects job per SAE family (the model loaded once for all its layers: a model
# process costs ~5-10 s of library imports before any work). Families are grouped by their
# layers into one rule per group, as the extraction rules are (a rule's outputs are fixed when
# it is defined): `logit_effects` for the families at the top-level `layers`,
# `logit_effects_layers_<layers>` for a group listing its own. Adding a family, or changing one
# family's SAEs, reruns that family's job only.
for _layers, _families, _top_level in S.extraction_groups():

    rule:
        name:
            (
                "logit_effects"
                if _top_level
                else "logit_effects_layers_" + "_".join(map(str, _layers))
            )
        input:
            lambda w: model_and_sae_files([w.family], LAYERS),
        output:
            # one per layer of the family, in the order of params.saes
            tables=[L.logits("{family}", l) for l in _layers],
            histograms=[L.logit_histograms("{family}", l) for l in _layers],
        log:
            L.log("dashboards", "logits_sae={family}"),
        wildcard_constraints:
            family="|".join(re.escape(f) for f in _families),
        conda:
            "../envs/sae_specialists.yaml"
        threads: 2
        resources:
            mem_mb=8000,
            runtime=30,
            gpu=GPU,
        params:
            model=S.model.spec,
            saes=lambda w: sae_sources([w.family]),
            dtype=S.dtype,
            top=DB.logit_top,
            content=lambda w: local_content([w.family], LAYERS),
            # the table's format (token_bytes, byte_level: dashboards/logits.py); a new one reruns
            table_format="token_bytes-1",
            device=unchecked(S.device),
        script:
            "../../scripts/logit_effects.py"


if DB.corpus:

    rule dashboard_corpus:
        input:
            corpus=DB.corpus,
            model_and_saes=model_and_sae_files(FAMILIES, LAYERS),
        output:
            tokens=L.corpus_tokens,
            # one per (family, layer), in the order of params.saes
            activations=[L.corpus_activations(f, l) for f, l in L.sae_layers()],
        log:
            L.log("dashboards", "corpus"),
        conda:
            "../envs/sae_specialists.yaml"
        threads: 2
        resources:
            mem_mb=8000,
            runtime=240,
            gpu=GPU,
        params:
            model=S.model.spec,
            saes=sae_sources(),
            dtype=S.dtype,
            text_field=DB.corpus_text_field,
            text_split=S.extraction.text_split,
            max_texts=DB.corpus_max_texts,
            max_tokens=DB.corpus_max_tokens,
            content=local_content(FAMILIES, LAYERS, [DB.corpus]),
            batch_size=unchecked(S.extraction.batch_size),
            max_memory_gb=unchecked(S.extraction.max_memory_gb),
            device=unchecked(S.device),
        script:
            "../../scripts/dashboard_corpus.py"


rule dashboards_layer:
    input:
        unpack(lambda w: L.dashboard_layer_inputs(w.family, w.layer, bool(DB.corpus))),
        # every dashboard's related features (comparison.smk; threshold-free), when compared
        related=L.comparison_table("related_features") if S.comparison.enabled else [],
        # validation verdicts shown in the headers, by content (validation.smk)
        validation=(
            ancient(lambda w: checkpoints.validation_verdicts.get().output.verdicts)
            if S.validation.enabled
            else []
        ),
        # the causal check of this layer (causal.smk): its tables, its verdicts by content
        causal_top_tokens=(
            (lambda w: L.causal_layer(w.family, w.layer)["top_tokens"])
            if S.causal.enabled
            else []
        ),
        # the specialist set of the causal check (a checkpoint): this job waits for it, so a
        # threshold change that alters the set reruns the causal layer jobs before this job
        # reads their outputs (one `snakemake` run is enough); ancient: its date reruns nothing
        causal_cells=ancient(L.causal_cells) if S.causal.enabled else [],
        causal_steering=(
            (lambda w: L.causal_layer(w.family, w.layer)["steering"])
            if S.causal.enabled
            else []
        ),
        causal_verdicts=(
            ancient(lambda w: checkpoints.causal_verdicts.get().output[0])
            if S.causal.enabled
            else []
        ),
        # what each specialist detects (surface.smk): its "What it detects" block
        surface=L.surface_table("specialists") if S.surface.enabled else [],
    output:
        # not embedded in the Snakemake report (one page per feature): its index is, and links
        # them (workflow/report/dashboards.rst)
        directory(L.dashboard_dir("{family}", "{layer}")),
    log:
        L.log("dashboards", "dashboards_sae={family}_layer={layer}"),
    conda:
        "../envs/sae_specialists.yaml"
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        settings=DB.page_settings(),
        corpus=bool(DB.corpus),
        include_bos=S.analysis.include_bos,
        threshold=S.analysis.threshold,
        aggregation=S.analysis.aggregation,
        token_views=lambda w: L.token_views()[(w.family, int(w.layer))],
        index=L.dashboards_index,
        # every dashboard directory: related features link to the pages that exist
        dashboard_dirs={(f, l): L.dashboard_dir(f, l) for f, l in L.sae_layers()},
        validation=(
            (
                lambda w: read_verdicts(
                    checkpoints.validation_verdicts.get().output.verdicts,
                    w.family,
                    w.layer,
                )
            )
            if S.validation.enabled
            else {}
        ),
        causal=(
            (
                lambda w: read_causal_verdicts(
                    checkpoints.causal_verdicts.get().output[0], w.family, w.layer
                )
            )
            if S.causal.enabled
            else {}
        ),
        causal_pages=lambda w: {
            c: L.causal_page(w.family, w.layer, c) for c in CATEGORIES
        },
    script:
        "../../scripts/dashboard_layer.py"


rule dashboards_index:
    input:
        dirs=[L.dashboard_dir(f, l) for f, l in L.sae_layers()],
        # every enabled verdict stage's table (report/findings.py: the registry)
        verdicts=list(verdict_tables(S, L).values()),
    output:
        report(
            L.dashboards_index,
            caption="../report/dashboards.rst",
            category="Feature dashboards",
        ),
    log:
        L.log("dashboards", "index"),
    conda:
        "../envs/sae_specialists.yaml"
    resources:
        mem_mb=2000,
        runtime=5,
    params:
        settings={"top_k_features": DB.top_k_features, "corpus": DB.corpus},
        # (stage, title, mark) of each verdict table, in the order of `verdicts`
        verdict_stages=[[s.stage, s.title, s.mark] for s in verdict_sources(S)],
    script:
        "../../scripts/dashboard_index.py"

# Surface or meaning (docs/surface.md): is each specialist a token detector, a
# token-in-context detector, or does it read its category's meaning? Off the main path: no
# extraction or analysis rule depends on these outputs; `rule all` builds them when
# `surface.enabled` is true.
# - surface_layer (one job per SAE family and layer) reads the tokens and activation shards,
#   the text list and the specialists table: no model, no torch. A threshold change rewrites
#   the specialists table and reruns these jobs (their specialists may change); the surface.*
#   measure settings (trigger_mass, max_triggers) rerun them too, the verdict thresholds only
#   the cheap surface_verdicts job.
# - The folds are the validation stage's (validation.folds, validation.seed): the token R² is
#   held out on the same texts as the held-out AUROC.
# - surface.probe_texts: every probe set in one text file (surface_probe_texts), its
#   tokens and activations through the extraction rules' twins (model jobs, one per family at
#   the top-level layers, or one job for every family with extraction.jobs per_category), read by
#   surface_verdicts with the analysis' per-text values. Nothing of the study's shards changes.
from sae_specialists.extraction.corpus import n_chunks as _n_chunks
from sae_specialists.surface.probe import (
    PROBE_CATEGORY,
    form_markers,
    n_probe_texts,
    probe_files,
)
from sae_specialists.surface.topics import Design

SF = S.surface
SURFACE_LAYERS = [
    (f, l) for f, l in L.sae_layers() if SF.families is None or f in SF.families
]
PROBE_FILES = (
    probe_files(SF.probe_texts, CATEGORIES) if SF.probe_texts is not None else None
)
_TOP_LEVEL = [
    g for g in S.extraction_groups() if g[2]
]  # families at the top-level layers
# extraction.jobs per_category or single: one job extracts the probe texts for every family (the
# families listing their own layers too); per_family: the top-level families' twins only
PER_CATEGORY = S.extraction.jobs in ("per_category", "single")
PROBE_LAYERS = (
    [
        (f, l)
        for f, l in SURFACE_LAYERS
        if PER_CATEGORY or (_TOP_LEVEL and f in _TOP_LEVEL[0][1])
    ]
    if PROBE_FILES
    else []
)
PROBE_CHUNKS = (
    _n_chunks(n_probe_texts(PROBE_FILES), S.extraction.chunk_size) if PROBE_FILES else 0
)
LP = L.surface_probe(PROBE_CHUNKS)
PROBE_SOURCES = [str(p) for sets in (PROBE_FILES or {}).values() for p in sets.values()]


rule surface:
    """Every surface output, whether or not surface.enabled is set."""
    input:
        surface_needs(),
        L.surface_outputs(SF.topics is not None),


rule surface_layer:
    """Token and bigram R², top-token mass and trigger tokens outside the category of every
    specialist of one SAE family and layer."""
    input:
        tokens=L.tokens(),
        activations=lambda w: L.activations(w.family, w.layer),
        texts=L.texts,
        specialists=L.table("specialists"),
    output:
        specialists=L.surface_layer("{family}", "{layer}", "specialists"),
        tokens=L.surface_layer("{family}", "{layer}", "tokens"),
    log:
        L.log("surface", "layer_sae={family}_layer={layer}"),
    conda:
        "../envs/sae_specialists.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        include_bos=S.analysis.include_bos,
        folds=S.validation.folds,
        seed=S.validation.seed,
        trigger_mass=SF.trigger_mass,
        max_triggers=SF.max_triggers,
    script:
        "../../scripts/surface_layer.py"


rule surface_verdicts:
    """Every layer's measures with a verdict per specialist, the per-layer shares, the token R²
    chart and the findings board's records (surface/verdicts.parquet).
    """
    input:
        chart_script=L.chart_script,  # the run's shared Vega script (analysis.smk)
        specialists=[L.surface_layer(f, l, "specialists") for f, l in SURFACE_LAYERS],
        tokens=[L.surface_layer(f, l, "tokens") for f, l in SURFACE_LAYERS],
        probe_index=[L.surface_probe_index] if PROBE_LAYERS else [],
        probe_tokens=LP.tokens() if PROBE_LAYERS else [],
        # per (family, layer) of probe_layers, its chunks in the order of probe_tokens
        probe_activations=[p for f, l in PROBE_LAYERS for p in LP.activations(f, l)],
    output:
        **L.surface_pair("specialists"),
        **L.surface_pair("tokens"),
        **L.surface_pair("layers"),
        board=L.verdicts("surface"),
        # the depth sentence, shown by summary.md / analysis.html / index.html
        headline=L.surface_headline,
        chart_html=L.surface_chart("html"),
        chart_png=report(
            L.surface_chart("png"),
            caption="../report/surface.rst",
            category="What specialists detect",
        ),
    log:
        L.log("surface", "verdicts"),
    conda:
        "../envs/sae_specialists.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        token_r2_min=SF.token_r2_min,
        outside_min=SF.outside_min,
        gated_max=SF.gated_max,
        fires_min=SF.fires_min,
        auroc_min=SF.auroc_min,
        probe_layers=[[f, l] for f, l in PROBE_LAYERS],
        threshold=S.analysis.threshold,
        aggregation=S.analysis.aggregation,
        include_bos=S.analysis.include_bos,
    script:
        "../../scripts/surface_verdicts.py"


rule surface_summary:
    """surface/summary.md: the depth sentence, the per-layer shares, every specialist with its
    verdict and, when those stages ran, its validation and causal verdicts linked to their
    summaries (a job of its own, so that the surface verdicts never wait for the causal model
    jobs and the validation and causal summaries can show the surface verdicts)."""
    input:
        specialists=L.surface_table("specialists"),
        layers=L.surface_table("layers"),
        validation=[L.verdicts("validation")] if S.validation.enabled else [],
        causal=[L.verdicts("causal")] if S.causal.enabled else [],
    output:
        L.surface_summary,
    log:
        L.log("surface", "summary"),
    conda:
        "../envs/sae_specialists.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        validation_summary=L.validation_summary,  # linked, by path
        causal_pages=L.causal_pages,
        summary=dict(
            threshold=S.analysis.threshold,
            folds=S.validation.folds,
            seed=S.validation.seed,
            trigger_mass=SF.trigger_mass,
            max_triggers=SF.max_triggers,
            token_r2_min=SF.token_r2_min,
            outside_min=SF.outside_min,
            gated_max=SF.gated_max,
        ),
    script:
        "../../scripts/surface_summary.py"


if PROBE_LAYERS:

    rule surface_probe_texts:
        """Every probe set of surface.probe_texts in one text file, and the index of which
        category and set each text belongs to."""
        input:
            PROBE_SOURCES,
        output:
            texts=L.surface_probe_file,
            index=L.surface_probe_index,
        log:
            L.log("surface", "probe_texts"),
        conda:
            "../envs/sae_specialists.yaml"
        resources:
            mem_mb=1000,
            runtime=5,
        params:
            files={
                c: {k: str(p) for k, p in sets.items()}
                for c, sets in PROBE_FILES.items()
            },
        script:
            "../../scripts/surface_probe_texts.py"

    if PER_CATEGORY:

        use rule extract_category as surface_probe_extract with:
            input:
                text_file=L.surface_probe_file,
                model_and_saes=model_and_sae_files(FAMILIES, LAYERS),
            output:
                tokens=LP.tokens_chunk("{category}", "{chunk}"),
                activations=[
                    LP.activations_chunk(f, l, "{category}", "{chunk}")
                    for f, l in _ALL_SAES
                ],
                pooled=[
                    LP.pooled_chunk(f, l, "{category}", "{chunk}")
                    for f, l in _ALL_SAES
                ],
            log:
                L.log("surface", "probe_extract_category={category}/chunk={chunk}"),
            wildcard_constraints:
                category=PROBE_CATEGORY,
            params:
                n_chunks=PROBE_CHUNKS,  # the other params: the same
                content=local_content(FAMILIES, LAYERS, PROBE_SOURCES),

    else:

        use rule extract_tokens as surface_probe_tokens with:
            input:
                text_file=L.surface_probe_file,
                model=model_and_sae_files([], []),
            output:
                tokens=LP.tokens_chunk("{category}", "{chunk}"),
            log:
                L.log("surface", "probe_tokens_category={category}/chunk={chunk}"),
            wildcard_constraints:
                category=PROBE_CATEGORY,
            params:
                n_chunks=PROBE_CHUNKS,  # the other params: the same
                content=local_content((), None, PROBE_SOURCES),

        use rule extract_activations as surface_probe_extract with:
            input:
                text_file=L.surface_probe_file,
                model_and_saes=lambda w: model_and_sae_files([w.family], LAYERS),
            output:
                activations=[
                    LP.activations_chunk("{family}", l, "{category}", "{chunk}")
                    for l in _TOP_LEVEL[0][0]
                ],
                pooled=[
                    LP.pooled_chunk("{family}", l, "{category}", "{chunk}")
                    for l in _TOP_LEVEL[0][0]
                ],
            log:
                L.log(
                    "surface",
                    "probe_extract_sae={family}/category={category}/chunk={chunk}",
                ),
            wildcard_constraints:
                family="|".join(re.escape(f) for f in _TOP_LEVEL[0][1]),
                category=PROBE_CATEGORY,
            params:
                n_chunks=PROBE_CHUNKS,  # the other params: the same
                content=lambda w: local_content([w.family], LAYERS, PROBE_SOURCES),


if SF.topics is not None:
    Design.parse(SF.topics, CATEGORIES)  # 'topic/form' of categories of the texts

    rule surface_topics:
        """The topic x form design (surface.topics): each form's specialist against the other
        topics and against every category, Jaccard overlaps per topic, marker mass shares,
        the pooled-residual geometry, selectivity vs causal Δloss (docs/surface.md).
        """
        input:
            per_text=[L.per_text(f, l) for f, l in SURFACE_LAYERS],
            texts=L.texts,
            tokens=L.tokens(),
            # per (family, layer) of params.layers, its shards in the order of L.tokens()
            activations=[p for f, l in SURFACE_LAYERS for p in L.activations(f, l)],
            pooled=[p for f, l in SURFACE_LAYERS for p in L.pooled(f, l)],
            specialists=L.table("specialists"),
            causal_effects=[L.causal_table("effects")] if S.causal.enabled else [],
        output:
            **L.surface_topics_pair("forms"),
            **L.surface_topics_pair("topics"),
            **L.surface_topics_pair("causal"),
            summary=L.surface_topics_summary,
        log:
            L.log("surface", "topics"),
        conda:
            "../envs/sae_specialists.yaml"
        resources:
            mem_mb=2000,
            runtime=10,
        params:
            layers=[[f, l] for f, l in SURFACE_LAYERS],
            design=dict(SF.topics),
            markers=form_markers(SF.probe_texts, list(SF.topics)),
            threshold=S.analysis.threshold,
            candidates=S.analysis.candidates,
            topk=SF.topk,
            permutations=SF.permutations,
            seed=S.validation.seed,
            include_bos=S.analysis.include_bos,
            summary=dict(
                threshold=S.analysis.threshold,
                candidates=S.analysis.candidates,
                topk=SF.topk,
                permutations=SF.permutations,
                seed=S.validation.seed,
            ),
        script:
            "../../scripts/surface_topics.py"

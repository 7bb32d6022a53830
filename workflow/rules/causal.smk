# Causal check (docs/causal.md): does removing a specialist hurt the model on its own category,
# and what does it write when clamped on? Off the main path: no extraction or analysis rule
# depends on these outputs; `rule all` builds them when `causal.enabled` is true.
# Only `causal_layer` loads the model (one job per SAE family and layer); it reads the study's
# tokens from the tokens shards. Rerun behaviour:
# - causal.* settings are params of the causal rules only: never extraction or analysis;
# - a threshold change rewrites the specialists table, so the cheap checkpoint `causal_cells`
#   reruns and rewrites cells.json; each layer job takes that file as an `ancient` input (its
#   time stamp is ignored) and its own specialist set, read from the file's content, as a
#   param: it reruns only when its set changed.
from sae_specialists.causal.workflow import read_cells
from sae_specialists.causal.workflow import read_verdicts as read_causal_verdicts
from sae_specialists.core.layout import CAUSAL_LAYER_TABLES

C = S.causal


rule causal:
    """Every causal output (tables and pages), whether or not causal.enabled is set."""
    input:
        causal_needs(),
        L.causal_outputs(),


checkpoint causal_cells:
    """Every (family, layer)'s specialist set, from the analysis specialists table."""
    input:
        specialists=L.table("specialists"),
    output:
        L.causal_cells,
    log:
        L.log("causal", "cells"),
    conda:
        "../envs/sae_specialists.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        sae_layers=[[f, l] for f, l in L.sae_layers()],
        # families checked (causal.families; null: all): the others get empty sets
        families=list(C.families) if C.families is not None else list(FAMILIES),
    script:
        "../../scripts/causal_cells.py"


rule causal_layer:
    """One SAE family and layer: ablations, controls, top tokens, steering samples."""
    input:
        cells=ancient(lambda w: checkpoints.causal_cells.get().output[0]),
        tokens=L.tokens(),
        model_and_sae=lambda w: model_and_sae_files([w.family], [w.layer]),
    output:
        **L.causal_layer("{family}", "{layer}"),
    log:
        L.log("causal", "layer_sae={family}_layer={layer}"),
    conda:
        "../envs/sae_specialists.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=GPU,
    params:
        family=lambda w: w.family,
        layer=lambda w: int(w.layer),
        # the layer's specialist set, by content (cells.json is an ancient input)
        cells=lambda w: read_cells(
            checkpoints.causal_cells.get().output[0], w.family, w.layer
        ),
        model=S.model.spec,
        saes=lambda w: sae_sources([w.family], [int(w.layer)]),
        dtype=S.dtype,
        content=lambda w: local_content([w.family], [int(w.layer)]),
        modes=list(C.modes),
        control_draws=C.control_draws,
        seed=C.seed,
        steer_scales=list(C.steer_scales),
        prompts=list(C.prompts),
        steer_tokens=C.steer_tokens,
        top_tokens=C.top_tokens,
        batch_size=unchecked(C.batch_size),
        device=unchecked(S.device),
    script:
        "../../scripts/causal_layer.py"


rule causal_tables:
    """Effects with bootstrap intervals and verdicts, the joined tables."""
    input:
        **{
            name: [L.causal_layer(f, l)[name] for f, l in L.sae_layers()]
            for name in CAUSAL_LAYER_TABLES
        },
    output:
        **L.causal_tables(),
    log:
        L.log("causal", "tables"),
    conda:
        "../envs/sae_specialists.yaml"
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        resamples=C.bootstrap_resamples,
        seed=C.seed,
        ci=C.ci,
        min_effect=C.min_effect,
    script:
        "../../scripts/causal_tables.py"


rule causal_pages:
    """The causal pages: index.html and one page per cell, each specialist with what it
    detects (the surface stage's verdict, linked to surface/summary.md) when that stage ran.
    A job of its own: the tables never wait for the surface stage."""
    input:
        effects=L.causal_table("effects"),
        top_tokens=L.causal_table("top_tokens"),
        steering=L.causal_table("steering"),
        surface=[L.verdicts("surface")] if S.surface.enabled else [],
    output:
        pages=report(
            directory(L.causal_pages),
            patterns=["{page}.html"],  # index.html and each cell's page (small)
            caption="../report/causal.rst",
            category="Causal check",
        ),
    log:
        L.log("causal", "pages"),
    conda:
        "../envs/sae_specialists.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        surface_summary=L.surface_summary,  # linked, by path
        settings={
            "modes": list(C.modes),
            "control_draws": C.control_draws,
            "bootstrap_resamples": C.bootstrap_resamples,
            "seed": C.seed,
            "ci": C.ci,
            "min_effect": C.min_effect,
            "steer_scales": list(C.steer_scales),
            "steer_tokens": C.steer_tokens,
        },
    script:
        "../../scripts/causal_pages.py"


checkpoint causal_verdicts:
    """Each cell's verdict and headline numbers, for the report and the dashboards (which take
    this file as an ancient input and its content as a param)."""
    input:
        effects=L.causal_table("effects"),
    output:
        L.causal_verdicts,
        # the findings board's records (core/verdicts.py, report/findings.py)
        board=L.verdicts("causal"),
    log:
        L.log("causal", "verdicts"),
    conda:
        "../envs/sae_specialists.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../../scripts/causal_verdicts.py"

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
SF = S.surface
SURFACE_LAYERS = [
    (f, l) for f, l in L.sae_layers() if SF.families is None or f in SF.families
]


rule surface:
    """Every surface output, whether or not surface.enabled is set."""
    input:
        surface_needs(),
        L.surface_outputs(),


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
    chart, surface/summary.md and the findings board's records (surface/verdicts.parquet).
    """
    input:
        specialists=[L.surface_layer(f, l, "specialists") for f, l in SURFACE_LAYERS],
        tokens=[L.surface_layer(f, l, "tokens") for f, l in SURFACE_LAYERS],
    output:
        **L.surface_pair("specialists"),
        **L.surface_pair("tokens"),
        **L.surface_pair("layers"),
        board=L.verdicts("surface"),
        summary=L.surface_summary,
        chart_html=L.surface_chart("html"),
        chart_png=L.surface_chart("png"),
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
        "../../scripts/surface_verdicts.py"

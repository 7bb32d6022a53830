# Specialist circuits (docs/circuits.md): what feeds a specialist, and what it feeds. Off the
# main path: no extraction or analysis rule depends on these outputs; `rule all` builds them when
# `circuits.enabled` is true.
# - circuits_layer loads the model and every SAE of the run once per (family, layer) and writes
#   raw sums over every feature; circuits_tables ranks them (top_k), draws the pages (display)
#   and writes the findings board's records, without the model: changing top_k, floor or the
#   display reruns circuits_tables only.
# - a threshold change rewrites the specialists table, so the cheap checkpoint circuits_roots
#   reruns; each layer job takes roots.json as an `ancient` input and its own specialist set,
#   read from the file's content, as a param: it reruns only when its set changed.
from sae_specialists.circuits.workflow import read_roots
from sae_specialists.core.layout import CIRCUITS_LAYER_TABLES

CI = S.circuits
CIRCUITS_FAMILIES = list(CI.families) if CI.families is not None else list(FAMILIES)
CIRCUITS_LAYERS = [(f, l) for f, l in L.sae_layers() if f in CIRCUITS_FAMILIES]


rule circuits:
    """Every circuits output, whether or not circuits.enabled is set."""
    input:
        L.circuits_layer_files(CIRCUITS_FAMILIES),
        L.circuits_outputs(),


checkpoint circuits_roots:
    """Every (family, layer)'s specialist set, from the analysis specialists table."""
    input:
        specialists=L.table("specialists"),
    output:
        L.circuits_roots,
    log:
        L.log("circuits", "roots"),
    conda:
        "../envs/sae_specialists.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        sae_layers=[[f, l] for f, l in L.sae_layers()],
        families=CIRCUITS_FAMILIES,
    script:
        "../../scripts/circuits_roots.py"


rule circuits_layer:
    """One SAE family and layer: each specialist's downstream edges (ablation), upstream
    attributions and their verification by ablation, on its category's texts."""
    input:
        roots=ancient(lambda w: checkpoints.circuits_roots.get().output[0]),
        tokens=L.tokens(),
        model_and_sae=model_and_sae_files(FAMILIES, LAYERS),
    output:
        **L.circuits_layer("{family}", "{layer}"),
    log:
        L.log("circuits", "layer_sae={family}_layer={layer}"),
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
        # the layer's specialist set, by content (roots.json is an ancient input)
        roots=lambda w: read_roots(
            checkpoints.circuits_roots.get().output[0], w.family, w.layer
        ),
        model=S.model.spec,
        saes=sae_sources(),  # every SAE of the run: the edges reach all of them
        dtype=S.dtype,
        content=local_content(FAMILIES, LAYERS),
        verify=CI.verify,
        max_texts=CI.max_texts,
        batch_size=unchecked(CI.batch_size),
        device=unchecked(S.device),
    script:
        "../../scripts/circuits_layer.py"


rule circuits_tables:
    """Ranked edges, nodes and the per-specialist summary (Parquet + CSV), graph.json, the
    graph pages and the findings board's records. No model."""
    input:
        **{
            name: [L.circuits_layer(f, l)[name] for f, l in CIRCUITS_LAYERS]
            for name in CIRCUITS_LAYER_TABLES
        },
        specialists=L.table("specialists"),
        logits=[L.logits(f, l) for f, l in L.sae_layers()],
        dashboards=[L.dashboard_dir(f, l) for f, l in L.sae_layers()],
    output:
        **L.circuits_tables(),
        graph=L.circuits_graph,
        pages=directory(L.circuits_pages),
        verdicts=L.verdicts("circuits"),
    log:
        L.log("circuits", "tables"),
    conda:
        "../envs/sae_specialists.yaml"
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        top_k=CI.top_k,
        floor=CI.floor,
        display=dict(CI.display),
        logit_paths={f"{f}/{l}": L.logits(f, l) for f, l in L.sae_layers()},
        dashboard_dirs={f"{f}/{l}": L.dashboard_dir(f, l) for f, l in L.sae_layers()},
        settings={
            "top_k": CI.top_k,
            "verify": CI.verify,
            "max_texts": CI.max_texts,
            "floor": CI.floor,
            "families": CIRCUITS_FAMILIES,
        },
    script:
        "../../scripts/circuits_tables.py"

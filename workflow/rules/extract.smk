# Extraction: one job per category loads the model and every SAE once, runs one forward pass per
# batch for all hooks, and writes the category's token shard and one activation shard per
# (family, layer). Only model/SAE/layer/text settings are params here: analysis settings and the
# batch size never trigger re-extraction.
from sae_specialists.models import model_input_files
from sae_specialists.saes import sae_input_files


def extraction_inputs(wildcards):
    files = [text_file(wildcards.category)] + model_input_files(SETTINGS.model)
    for family in SETTINGS.saes.values():
        for layer in LAYERS:
            files += sae_input_files(family.source(layer))
    return files


rule extract_activations:
    input:
        extraction_inputs,
    output:
        tokens=tokens_shard("{category}"),
        activations=[
            activation_shard(f, l, "{category}") for f in FAMILIES for l in LAYERS
        ],
    params:
        model=SETTINGS.model,
        saes={name: config["saes"][name] for name in FAMILIES},
        layers=LAYERS,
        dtype=SETTINGS.dtype,
        max_tokens=SETTINGS.extraction["max_tokens"],
        long_texts=SETTINGS.extraction["long_texts"],
    log:
        f"{R}/logs/extract/{{category}}.log",
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=1 if SETTINGS.device == "cuda" else 0,
    script:
        "../../scripts/extract.py"

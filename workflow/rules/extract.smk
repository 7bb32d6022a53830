# Extraction: one job per (category, chunk of extraction.chunk_size texts) loads the model and
# every SAE once, streams the chunk's texts window by window (one forward pass per batch for all
# hooks), and writes the chunk's token shard and one activation shard per (family, layer).
# Only model/SAE/layer/text settings are params here: analysis settings and the batch size never
# trigger re-extraction. Editing one category file reruns that category's chunks only.

rule extract_activations:
    input:
        extraction_inputs,
    output:
        tokens=tokens_chunk_shard("{category}", "{chunk}"),
        activations=[
            activation_chunk_shard(f, l, "{category}", "{chunk}") for f in FAMILIES for l in LAYERS
        ],
    params:
        model=SETTINGS.model,
        saes={name: config["saes"][name] for name in FAMILIES},
        layers=LAYERS,
        dtype=SETTINGS.dtype,
        max_tokens=SETTINGS.extraction["max_tokens"],
        long_texts=SETTINGS.extraction["long_texts"],
        chunk_size=CHUNK_SIZE,
        text_field=SETTINGS.extraction["text_field"],
        text_split=SETTINGS.extraction["text_split"],
        n_chunks=lambda w: N_CHUNKS[w.category],
    log:
        f"{R}/logs/extract/category={{category}}/chunk={{chunk}}.log",
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=1 if SETTINGS.device == "cuda" else 0,
    conda:
        "../envs/sae_specialists.yaml"
    script:
        "../../scripts/extract.py"

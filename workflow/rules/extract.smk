# Extraction: one job per (category, chunk of extraction.chunk_size texts) loads the model and
# every SAE once, streams the chunk's texts window by window (one forward pass per batch for all
# hooks), and writes the chunk's token shard and one activation shard and one pooled-residual
# shard per (family, layer).
# Only model/SAE/layer/text settings are compared for reruns: analysis settings, the batch size
# and the device never trigger re-extraction. Editing one category file reruns its chunks only.


rule extract_activations:
    input:
        text_file=lambda w: str(CATEGORIES[w.category]),
        model_and_saes=model_and_sae_files(FAMILIES, LAYERS),
    output:
        tokens=L.tokens_chunk("{category}", "{chunk}"),
        # one per (family, layer), in the order of params.saes
        activations=[L.activations_chunk(f, l, "{category}", "{chunk}") for f, l in L.sae_layers()],
        # per-text pooled SAE inputs (validation baselines), same order
        pooled=[L.pooled_chunk(f, l, "{category}", "{chunk}") for f, l in L.sae_layers()],
    params:
        model=S.model.spec,
        saes=sae_sources(),
        dtype=S.dtype,
        max_tokens=S.extraction.max_tokens,
        long_texts=S.extraction.long_texts,
        chunk_size=S.extraction.chunk_size,
        text_field=S.extraction.text_field,
        text_split=S.extraction.text_split,
        n_chunks=lambda w: N_CHUNKS[w.category],
        batch_size=unchecked(S.extraction.batch_size),
        device=unchecked(S.device),
    log:
        L.log("extract", "category={category}/chunk={chunk}"),
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=GPU,
    conda:
        "../envs/sae_specialists.yaml"
    script:
        "../../scripts/extract.py"

# Extraction (docs/data-contract.md), per (category, chunk of extraction.chunk_size texts):
# - extract_tokens writes the chunk's token shard (the model's tokenizer; no forward pass);
# - one job per SAE family loads the model and that family's SAEs, streams the chunk's texts
#   window by window (one forward pass per batch, stopping after the family's deepest hook) and
#   writes one activation and one pooled-residual shard per layer of the family.
# One job per family: adding a family, or changing one family's layers or SAEs, extracts that
# family only (the others' jobs, params and outputs are unchanged). Families are grouped by
# their layers into one rule per group (a rule's outputs are fixed when it is defined): the
# families at the top-level `layers` run as extract_activations, a group of families listing
# their own layers as extract_activations_layers_<layers> (e.g. a width ladder at one layer).
# extraction.jobs: per_category instead runs one job per (category, chunk) for the tokens and
# every family (extract_category: one model load and one forward pass for all families; any
# SAE change re-extracts every family). It writes the same files, so the per-family rules stay
# defined (the validation test set's twins use them) and a ruleorder gives the files to it.
# extraction.jobs: single runs one job for every (category, chunk) of the run (extract_all: one
# model load in all; any text or SAE change re-extracts everything): for small corpora, where
# loading the model costs more than the forward passes. The same files again, by ruleorder.
# Only model/SAE/layer/text settings are compared for reruns: analysis settings, the batch size
# and the device never trigger re-extraction. Editing one category file reruns its chunks only.
import re


rule extract_tokens:
    input:
        text_file=lambda w: str(CATEGORIES[w.category]),
        model=model_and_sae_files([], []),
    output:
        tokens=L.tokens_chunk("{category}", "{chunk}"),
    log:
        L.log("extract", "tokens_category={category}/chunk={chunk}"),
    conda:
        "../envs/sae_specialists.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        model=S.model.spec,
        dtype=S.dtype,
        max_tokens=S.extraction.max_tokens,
        long_texts=S.extraction.long_texts,
        chunk_size=S.extraction.chunk_size,
        text_field=S.extraction.text_field,
        text_split=S.extraction.text_split,
        n_chunks=lambda w: N_CHUNKS[w.category],
        content=lambda w: local_content((), None, [CATEGORIES[w.category]]),
        # the tokens shard's format (token_bytes: docs/data-contract.md); a new format
        # re-tokenizes (tokenizer only, no model) instead of failing the shard check later
        tokens_format="token_bytes-1",
        batch_size=unchecked(S.extraction.batch_size),
        max_memory_gb=unchecked(S.extraction.max_memory_gb),
        jobs=unchecked(S.extraction.jobs),
        device=unchecked(S.device),
    script:
        "../../scripts/extract_tokens.py"


for _layers, _families, _top_level in S.extraction_groups():

    rule:
        name:
            (
                "extract_activations"
                if _top_level
                else "extract_activations_layers_" + "_".join(map(str, _layers))
            )
        input:
            text_file=lambda w: str(CATEGORIES[w.category]),
            model_and_saes=lambda w: model_and_sae_files([w.family], LAYERS),
        output:
            # one per layer of the family, in the order of params.saes
            activations=[
                L.activations_chunk("{family}", l, "{category}", "{chunk}")
                for l in _layers
            ],
            # per-text pooled SAE inputs (validation baselines), same order
            pooled=[
                L.pooled_chunk("{family}", l, "{category}", "{chunk}") for l in _layers
            ],
        log:
            L.log("extract", "sae={family}/category={category}/chunk={chunk}"),
        wildcard_constraints:
            family="|".join(re.escape(f) for f in _families),
        conda:
            "../envs/sae_specialists.yaml"
        threads: 2
        resources:
            mem_mb=8000,
            runtime=120,
            gpu=GPU,
        params:
            model=S.model.spec,
            saes=lambda w: sae_sources([w.family]),
            dtype=S.dtype,
            max_tokens=S.extraction.max_tokens,
            long_texts=S.extraction.long_texts,
            chunk_size=S.extraction.chunk_size,
            text_field=S.extraction.text_field,
            text_split=S.extraction.text_split,
            n_chunks=lambda w: N_CHUNKS[w.category],
            content=lambda w: local_content(
                [w.family], LAYERS, [CATEGORIES[w.category]]
            ),
            batch_size=unchecked(S.extraction.batch_size),
            max_memory_gb=unchecked(S.extraction.max_memory_gb),
            jobs=unchecked(S.extraction.jobs),
            device=unchecked(S.device),
        script:
            "../../scripts/extract.py"


# single defines it too: the surface stage's probe extraction is its twin (surface.smk)
if S.extraction.jobs in ("per_category", "single"):
    _ALL_SAES = list(sae_sources())  # (family, layer) in the job's output order

    rule extract_category:
        input:
            text_file=lambda w: str(CATEGORIES[w.category]),
            model_and_saes=model_and_sae_files(FAMILIES, LAYERS),
        output:
            tokens=L.tokens_chunk("{category}", "{chunk}"),
            activations=[
                L.activations_chunk(f, l, "{category}", "{chunk}")
                for f, l in _ALL_SAES
            ],
            pooled=[L.pooled_chunk(f, l, "{category}", "{chunk}") for f, l in _ALL_SAES],
        log:
            L.log("extract", "category={category}/chunk={chunk}"),
        conda:
            "../envs/sae_specialists.yaml"
        threads: 2
        resources:
            mem_mb=8000,
            runtime=120,
            gpu=GPU,
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
            content=lambda w: local_content(FAMILIES, LAYERS, [CATEGORIES[w.category]]),
            tokens_format="token_bytes-1",
            batch_size=unchecked(S.extraction.batch_size),
            max_memory_gb=unchecked(S.extraction.max_memory_gb),
            jobs=unchecked(S.extraction.jobs),
            device=unchecked(S.device),
        script:
            "../../scripts/extract.py"

    # the compiled form of `ruleorder: extract_category > NAME`, for each per-family rule
    for _name in ["extract_tokens"] + [
        r.name for r in workflow.rules if r.name.startswith("extract_activations")
    ]:
        workflow.ruleorder("extract_category", _name)


if S.extraction.jobs == "single":
    # (category, chunk) units in the order of the outputs
    _UNITS = [(c, k) for c in L.categories for k in L.chunks(c)]

    use rule extract_category as extract_all with:
        input:
            text_files=sorted({str(CATEGORIES[c]) for c in L.categories}),
            model_and_saes=model_and_sae_files(FAMILIES, LAYERS),
        output:
            tokens=[L.tokens_chunk(c, k) for c, k in _UNITS],
            activations=[
                L.activations_chunk(f, l, c, k)
                for c, k in _UNITS
                for f, l in _ALL_SAES
            ],
            pooled=[L.pooled_chunk(f, l, c, k) for c, k in _UNITS for f, l in _ALL_SAES],
        log:
            L.log("extract", "all"),
        params:
            # the other params: extract_category's
            units=[
                {
                    "category": c,
                    "chunk": int(k),
                    "n_chunks": N_CHUNKS[c],
                    "text_file": str(CATEGORIES[c]),
                }
                for c, k in _UNITS
            ],
            n_chunks=None,  # per unit
            content=lambda w: local_content(
                FAMILIES, LAYERS, [CATEGORIES[c] for c in L.categories]
            ),

    # the compiled form of `ruleorder: extract_all > NAME`, for each other extraction rule
    for _name in ["extract_category", "extract_tokens"] + [
        r.name for r in workflow.rules if r.name.startswith("extract_activations")
    ]:
        workflow.ruleorder("extract_all", _name)

"""Rule extract_activations: one (category, chunk) -> token shard + activation shards."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))  # noqa: F821
from sae_specialists.core.jobs import rule_logging  # noqa: E402
from sae_specialists.core.settings import check_config  # noqa: E402
from sae_specialists.extraction.pipeline import extract_category  # noqa: E402

with rule_logging(snakemake):  # noqa: F821
    settings = check_config(snakemake.config)  # noqa: F821
    category = snakemake.wildcards.category  # noqa: F821
    outputs = iter(snakemake.output.activations)  # noqa: F821
    activation_out = {
        (family, layer): next(outputs)
        for family in sorted(settings.saes)
        for layer in settings.layers
    }
    torch_threads = snakemake.threads  # noqa: F821
    import torch

    torch.set_num_threads(torch_threads)
    extract_category(
        settings,
        category,
        snakemake.input[0],  # noqa: F821
        snakemake.output.tokens,  # noqa: F821
        activation_out,
        chunk=int(snakemake.wildcards.chunk),  # noqa: F821
        n_chunks=int(snakemake.params.n_chunks),  # noqa: F821
    )

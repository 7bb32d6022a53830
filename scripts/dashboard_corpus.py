"""Rule dashboard_corpus: the reference corpus -> token shard + one activation shard per SAE."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))  # noqa: F821
from sae_specialists.core.jobs import rule_logging  # noqa: E402
from sae_specialists.core.settings import check_config  # noqa: E402
from sae_specialists.dashboards.corpus import extract_corpus  # noqa: E402
from sae_specialists.dashboards.settings import dashboard_settings  # noqa: E402

with rule_logging(snakemake):  # noqa: F821
    settings = check_config(snakemake.config)  # noqa: F821
    outputs = iter(snakemake.output.activations)  # noqa: F821
    activation_out = {
        (family, layer): next(outputs)
        for family in sorted(settings.saes)
        for layer in settings.layers
    }
    import torch

    torch.set_num_threads(snakemake.threads)  # noqa: F821
    extract_corpus(
        settings,
        dashboard_settings(snakemake.config),  # noqa: F821
        snakemake.output.tokens,  # noqa: F821
        activation_out,
    )

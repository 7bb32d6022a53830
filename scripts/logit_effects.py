"""Rule logit_effects: one SAE family and layer -> the logit effects of every feature."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))  # noqa: F821
from sae_specialists.core.jobs import rule_logging  # noqa: E402
from sae_specialists.core.settings import check_config  # noqa: E402
from sae_specialists.dashboards.logits import compute_logit_effects  # noqa: E402

with rule_logging(snakemake):  # noqa: F821
    import torch

    torch.set_num_threads(snakemake.threads)  # noqa: F821
    compute_logit_effects(
        check_config(snakemake.config),  # noqa: F821
        str(snakemake.wildcards.family),  # noqa: F821
        int(snakemake.wildcards.layer),  # noqa: F821
        snakemake.output[0],  # noqa: F821
        top=int(snakemake.params.top),  # noqa: F821
    )

"""Rule build_demo_assets: the offline demo's tiny model and planted SAEs."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))  # noqa: F821
from sae_specialists.core.jobs import rule_logging  # noqa: E402
from sae_specialists.demo import build_demo  # noqa: E402

with rule_logging(snakemake):  # noqa: F821
    build_demo(snakemake.params.out_dir, seed=snakemake.params.seed)  # noqa: F821

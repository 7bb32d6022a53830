"""Rule validation_baselines (logic: sae_specialists.validation.entry.baselines)."""

from sae_specialists.core.jobs import run
from sae_specialists.validation.entry import baselines

run(baselines, snakemake)

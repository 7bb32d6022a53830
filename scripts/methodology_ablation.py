"""Rule methodology_ablation (logic: sae_specialists.methodology.entry.ablation)."""

from sae_specialists.core.jobs import run
from sae_specialists.methodology.entry import ablation

run(ablation, snakemake)

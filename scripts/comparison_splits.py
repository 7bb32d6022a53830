"""Rule comparison_splits (logic: sae_specialists.comparison.entry.splits)."""

from sae_specialists.comparison.entry import splits
from sae_specialists.core.jobs import run

run(splits, snakemake)

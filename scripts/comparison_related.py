"""Rule comparison_related (logic: sae_specialists.comparison.entry.related)."""

from sae_specialists.comparison.entry import related
from sae_specialists.core.jobs import run

run(related, snakemake)

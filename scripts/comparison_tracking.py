"""Rule comparison_tracking (logic: sae_specialists.comparison.entry.tracking)."""

from sae_specialists.comparison.entry import tracking
from sae_specialists.core.jobs import run

run(tracking, snakemake)

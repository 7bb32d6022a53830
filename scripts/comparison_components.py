"""Rule comparison_components (logic: sae_specialists.comparison.entry.components)."""

from sae_specialists.comparison.entry import components
from sae_specialists.core.jobs import run

run(components, snakemake)

"""Rule validation_charts (logic: sae_specialists.validation.entry.charts)."""

from sae_specialists.core.jobs import run
from sae_specialists.validation.entry import charts

run(charts, snakemake)

"""Rule clean_foreign (logic: sae_specialists.report.overview.clean_foreign)."""

from sae_specialists.core.jobs import run
from sae_specialists.report.overview import clean_foreign

run(clean_foreign, snakemake)

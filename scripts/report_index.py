"""Rule report_index (logic: sae_specialists.report.overview.index)."""

from sae_specialists.core.jobs import run
from sae_specialists.report.overview import index

run(index, snakemake)

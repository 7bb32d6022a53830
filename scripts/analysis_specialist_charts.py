"""Rule analysis_specialist_charts (logic: sae_specialists.analysis.entry.specialist_charts)."""

from sae_specialists.analysis.entry import specialist_charts
from sae_specialists.core.jobs import run

run(specialist_charts, snakemake)

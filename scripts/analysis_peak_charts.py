"""Rule analysis_peak_charts (logic: sae_specialists.analysis.entry.peak_charts)."""

from sae_specialists.analysis.entry import peak_charts
from sae_specialists.core.jobs import run

run(peak_charts, snakemake)

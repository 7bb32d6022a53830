"""Rule analysis_peak_tables (logic: sae_specialists.analysis.entry.peak_tables)."""

from sae_specialists.analysis.entry import peak_tables
from sae_specialists.core.jobs import run

run(peak_tables, snakemake)

"""Rule analysis_specialist_tables (logic: sae_specialists.analysis.entry.specialist_tables)."""

from sae_specialists.analysis.entry import specialist_tables
from sae_specialists.core.jobs import run

run(specialist_tables, snakemake)

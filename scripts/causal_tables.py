"""Rule causal_tables (logic: sae_specialists.causal.entry.tables)."""

from sae_specialists.causal.entry import tables
from sae_specialists.core.jobs import run

run(tables, snakemake)

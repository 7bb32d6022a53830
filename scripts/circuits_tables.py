"""Rule circuits_tables (logic: sae_specialists.circuits.entry.tables)."""

from sae_specialists.circuits.entry import tables
from sae_specialists.core.jobs import run

run(tables, snakemake)

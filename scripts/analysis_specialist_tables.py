"""Snakemake script of rule analysis_specialist_tables.

Logic: sae_specialists.analysis.entry.specialist_tables
"""

from sae_specialists.analysis import entry

entry.specialist_tables(snakemake)  # noqa: F821  (injected by Snakemake)

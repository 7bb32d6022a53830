"""Snakemake script of rule analysis_peak_tables.

Logic: sae_specialists.analysis.entry.peak_tables
"""

from sae_specialists.analysis import entry

entry.peak_tables(snakemake)  # noqa: F821  (injected by Snakemake)

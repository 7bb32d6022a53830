"""Snakemake script for rule analysis_peak_tables (logic: sae_specialists.analysis.entry.peak_tables)."""

from sae_specialists.analysis import entry

entry.peak_tables(snakemake)  # noqa: F821  (injected by Snakemake)

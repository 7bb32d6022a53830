"""Snakemake script for rule analysis_peak_charts (logic: sae_specialists.analysis.entry.peak_charts)."""

from sae_specialists.analysis import entry

entry.peak_charts(snakemake)  # noqa: F821  (injected by Snakemake)

"""Snakemake script for rule analysis_specialist_charts (logic: sae_specialists.analysis.entry.specialist_charts)."""

from sae_specialists.analysis import entry

entry.specialist_charts(snakemake)  # noqa: F821  (injected by Snakemake)

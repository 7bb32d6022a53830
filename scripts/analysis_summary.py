"""Snakemake script for rule analysis_summary (logic: sae_specialists.analysis.entry.summary)."""

from sae_specialists.analysis import entry

entry.summary(snakemake)  # noqa: F821  (injected by Snakemake)

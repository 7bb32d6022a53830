"""Snakemake script for rule analysis_per_text (logic: sae_specialists.analysis.entry.per_text)."""

from sae_specialists.analysis import entry

entry.per_text(snakemake)  # noqa: F821  (injected by Snakemake)

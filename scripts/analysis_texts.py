"""Snakemake script for rule analysis_texts (logic: sae_specialists.analysis.entry.texts)."""

from sae_specialists.analysis import entry

entry.texts(snakemake)  # noqa: F821  (injected by Snakemake)

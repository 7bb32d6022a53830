"""Snakemake script for rule methodology_summary (logic: sae_specialists.methodology.entry.report)."""

from sae_specialists.methodology import entry

entry.report(snakemake)  # noqa: F821  (injected by Snakemake)

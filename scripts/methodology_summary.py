"""Snakemake script for rule methodology_summary (logic: methodology.entry.report)."""

from sae_specialists.methodology import entry

entry.report(snakemake)  # noqa: F821  (injected by Snakemake)

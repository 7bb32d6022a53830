"""Snakemake script for rule methodology_sweep (logic: methodology.entry.sweep)."""

from sae_specialists.methodology import entry

entry.sweep(snakemake)  # noqa: F821  (injected by Snakemake)

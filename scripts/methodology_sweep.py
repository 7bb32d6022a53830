"""Snakemake script for rule methodology_sweep (logic: sae_specialists.methodology.entry.sweep)."""

from sae_specialists.methodology import entry

entry.sweep(snakemake)  # noqa: F821  (injected by Snakemake)

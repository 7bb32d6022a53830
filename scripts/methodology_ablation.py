"""Snakemake script for rule methodology_ablation (logic: methodology.entry.ablation)."""

from sae_specialists.methodology import entry

entry.ablation(snakemake)  # noqa: F821  (injected by Snakemake)

"""Snakemake script for rule methodology_variants (logic: sae_specialists.methodology.entry.variants)."""

from sae_specialists.methodology import entry

entry.variants(snakemake)  # noqa: F821  (injected by Snakemake)

"""Snakemake script for rule methodology_variants (logic: methodology.entry.variants)."""

from sae_specialists.methodology import entry

entry.variants(snakemake)  # noqa: F821  (injected by Snakemake)

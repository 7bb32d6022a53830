"""Snakemake script for rule methodology_bootstrap (logic: methodology.entry.bootstrap)."""

from sae_specialists.methodology import entry

entry.bootstrap(snakemake)  # noqa: F821  (injected by Snakemake)

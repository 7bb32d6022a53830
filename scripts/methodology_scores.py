"""Snakemake script for rule methodology_scores (logic: methodology.entry.scores)."""

from sae_specialists.methodology import entry

entry.scores(snakemake)  # noqa: F821  (injected by Snakemake)

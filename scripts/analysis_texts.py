"""Snakemake script of rule analysis_texts.

Logic: sae_specialists.analysis.entry.texts
"""

from sae_specialists.analysis import entry

entry.texts(snakemake)  # noqa: F821  (injected by Snakemake)

"""Snakemake script of rule analysis_index.

Logic: sae_specialists.analysis.entry.index
"""

from sae_specialists.analysis import entry

entry.index(snakemake)  # noqa: F821  (injected by Snakemake)

"""Snakemake script of rule analysis_per_text.

Logic: sae_specialists.analysis.entry.per_text
"""

from sae_specialists.analysis import entry

entry.per_text(snakemake)  # noqa: F821  (injected by Snakemake)

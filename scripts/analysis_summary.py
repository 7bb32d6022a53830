"""Snakemake script of rule analysis_summary.

Logic: sae_specialists.analysis.entry.summary
"""

from sae_specialists.analysis import entry

entry.summary(snakemake)  # noqa: F821  (injected by Snakemake)

"""Snakemake script of rule analysis_specialist_charts.

Logic: sae_specialists.analysis.entry.specialist_charts
"""

from sae_specialists.analysis import entry

entry.specialist_charts(snakemake)  # noqa: F821  (injected by Snakemake)

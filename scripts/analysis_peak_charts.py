"""Snakemake script of rule analysis_peak_charts.

Logic: sae_specialists.analysis.entry.peak_charts
"""

from sae_specialists.analysis import entry

entry.peak_charts(snakemake)  # noqa: F821  (injected by Snakemake)

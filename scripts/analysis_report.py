"""Snakemake script of rule analysis_report (summary.md + index.html).

Logic: sae_specialists.analysis.entry.report
"""

from sae_specialists.analysis import entry

entry.report(snakemake)  # noqa: F821  (injected by Snakemake)

"""Snakemake script of rule analysis_report (token views, summary.md + index.html).

Logic: sae_specialists.report.entry.report
"""

from sae_specialists.report import entry

entry.report(snakemake)  # noqa: F821  (injected by Snakemake)

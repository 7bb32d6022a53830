"""Rule analysis_report (logic: sae_specialists.report.entry.report)."""

from sae_specialists.core.jobs import run
from sae_specialists.report.entry import report

run(report, snakemake)

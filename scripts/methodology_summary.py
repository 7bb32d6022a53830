"""Rule methodology_summary (logic: sae_specialists.methodology.entry.report)."""

from sae_specialists.core.jobs import run
from sae_specialists.methodology.entry import report

run(report, snakemake)

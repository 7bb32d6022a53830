"""Rule analysis_chart_script (logic: sae_specialists.analysis.entry.chart_script)."""

from sae_specialists.analysis.entry import chart_script
from sae_specialists.core.jobs import run

run(chart_script, snakemake)

"""Rule analysis_per_text (logic: sae_specialists.analysis.entry.per_text)."""

from sae_specialists.analysis.entry import per_text
from sae_specialists.core.jobs import run

run(per_text, snakemake)

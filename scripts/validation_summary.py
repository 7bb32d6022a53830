"""Rule validation_summary (logic: sae_specialists.validation.entry.summary)."""

from sae_specialists.core.jobs import run
from sae_specialists.validation.entry import summary

run(summary, snakemake)

"""Rule surface_summary (logic: sae_specialists.surface.entry.summary)."""

from sae_specialists.core.jobs import run
from sae_specialists.surface.entry import summary

run(summary, snakemake)

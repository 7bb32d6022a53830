"""Rule causal_pages (logic: sae_specialists.causal.entry.pages)."""

from sae_specialists.causal.entry import pages
from sae_specialists.core.jobs import run

run(pages, snakemake)

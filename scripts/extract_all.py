"""Rule extract_all (logic: extraction.entry.extract_all)."""

from sae_specialists.core.jobs import run
from sae_specialists.extraction.entry import extract_all

run(extract_all, snakemake)

"""Rules extract_activations, extract_category and extract_all (logic: extraction.entry.extract)."""

from sae_specialists.core.jobs import run
from sae_specialists.extraction.entry import extract

run(extract, snakemake)

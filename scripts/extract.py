"""Rules extract_activations and extract_category (logic: extraction.entry.extract)."""

from sae_specialists.core.jobs import run
from sae_specialists.extraction.entry import extract

run(extract, snakemake)

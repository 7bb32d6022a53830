"""Rule extract_activations (logic: sae_specialists.extraction.entry.extract)."""

from sae_specialists.core.jobs import run
from sae_specialists.extraction.entry import extract

run(extract, snakemake)

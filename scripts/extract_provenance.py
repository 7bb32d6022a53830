"""Rule dataset_provenance (logic: sae_specialists.extraction.entry.dataset_provenance)."""

from sae_specialists.core.jobs import run
from sae_specialists.extraction.entry import dataset_provenance

run(dataset_provenance, snakemake)

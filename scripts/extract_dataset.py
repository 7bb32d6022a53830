"""Rule materialise_dataset (logic: sae_specialists.extraction.entry.materialise_dataset)."""

from sae_specialists.core.jobs import run
from sae_specialists.extraction.entry import materialise_dataset

run(materialise_dataset, snakemake)

"""Rule validation_heldout (logic: sae_specialists.validation.entry.heldout)."""

from sae_specialists.core.jobs import run
from sae_specialists.validation.entry import heldout

run(heldout, snakemake)

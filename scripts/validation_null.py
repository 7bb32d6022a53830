"""Rule validation_null (logic: sae_specialists.validation.entry.null)."""

from sae_specialists.core.jobs import run
from sae_specialists.validation.entry import null

run(null, snakemake)

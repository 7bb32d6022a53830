"""Rule validation_verdicts (logic: sae_specialists.validation.entry.verdicts)."""

from sae_specialists.core.jobs import run
from sae_specialists.validation.entry import verdicts

run(verdicts, snakemake)

"""Rule surface_verdicts (logic: sae_specialists.surface.entry.verdicts)."""

from sae_specialists.core.jobs import run
from sae_specialists.surface.entry import verdicts

run(verdicts, snakemake)

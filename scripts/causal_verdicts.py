"""Rule causal_verdicts (logic: sae_specialists.causal.entry.verdicts)."""

from sae_specialists.causal.entry import verdicts
from sae_specialists.core.jobs import run

run(verdicts, snakemake)

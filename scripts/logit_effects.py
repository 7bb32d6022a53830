"""Rule logit_effects (logic: sae_specialists.dashboards.entry.logits)."""

from sae_specialists.core.jobs import run
from sae_specialists.dashboards.entry import logits

run(logits, snakemake)

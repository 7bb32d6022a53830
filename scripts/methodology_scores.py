"""Rule methodology_scores (logic: sae_specialists.methodology.entry.scores)."""

from sae_specialists.core.jobs import run
from sae_specialists.methodology.entry import scores

run(scores, snakemake)

"""Rule causal_layer (logic: sae_specialists.causal.entry.layer)."""

from sae_specialists.causal.entry import layer
from sae_specialists.core.jobs import run

run(layer, snakemake)

"""Rule circuits_layer (logic: sae_specialists.circuits.entry.layer)."""

from sae_specialists.circuits.entry import layer
from sae_specialists.core.jobs import run

run(layer, snakemake)

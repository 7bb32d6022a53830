"""Rule surface_layer (logic: sae_specialists.surface.entry.layer)."""

from sae_specialists.core.jobs import run
from sae_specialists.surface.entry import layer

run(layer, snakemake)

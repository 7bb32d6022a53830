"""Rule dashboards_layer (logic: sae_specialists.dashboards.entry.layer)."""

from sae_specialists.core.jobs import run
from sae_specialists.dashboards.entry import layer

run(layer, snakemake)

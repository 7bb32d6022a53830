"""Rule dashboards_index (logic: sae_specialists.dashboards.entry.index)."""

from sae_specialists.core.jobs import run
from sae_specialists.dashboards.entry import index

run(index, snakemake)

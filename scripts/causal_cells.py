"""Rule causal_cells (logic: sae_specialists.causal.entry.cells)."""

from sae_specialists.causal.entry import cells
from sae_specialists.core.jobs import run

run(cells, snakemake)

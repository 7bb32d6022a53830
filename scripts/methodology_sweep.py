"""Rule methodology_sweep (logic: sae_specialists.methodology.entry.sweep)."""

from sae_specialists.core.jobs import run
from sae_specialists.methodology.entry import sweep

run(sweep, snakemake)

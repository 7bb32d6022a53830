"""Rule methodology_bootstrap (logic: sae_specialists.methodology.entry.bootstrap)."""

from sae_specialists.core.jobs import run
from sae_specialists.methodology.entry import bootstrap

run(bootstrap, snakemake)

"""Rule methodology_variants (logic: sae_specialists.methodology.entry.variants)."""

from sae_specialists.core.jobs import run
from sae_specialists.methodology.entry import variants

run(variants, snakemake)

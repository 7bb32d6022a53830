"""Rule circuits_roots (logic: sae_specialists.circuits.entry.roots)."""

from sae_specialists.circuits.entry import roots
from sae_specialists.core.jobs import run

run(roots, snakemake)

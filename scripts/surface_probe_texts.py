"""Rule surface_probe_texts (logic: sae_specialists.surface.entry.probe_texts)."""

from sae_specialists.core.jobs import run
from sae_specialists.surface.entry import probe_texts

run(probe_texts, snakemake)

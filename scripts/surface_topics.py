"""Rule surface_topics (logic: sae_specialists.surface.entry.topics)."""

from sae_specialists.core.jobs import run
from sae_specialists.surface.entry import topics

run(topics, snakemake)

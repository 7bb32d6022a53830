"""Rule dashboard_corpus (logic: sae_specialists.dashboards.entry.corpus)."""

from sae_specialists.core.jobs import run
from sae_specialists.dashboards.entry import corpus

run(corpus, snakemake)

"""Rule analysis_token_views (logic: sae_specialists.report.entry.token_views)."""

from sae_specialists.core.jobs import run
from sae_specialists.report.entry import token_views

run(token_views, snakemake)

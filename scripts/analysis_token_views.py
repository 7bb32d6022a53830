"""Snakemake script of rule analysis_token_views.

Logic: sae_specialists.analysis.entry.token_views
"""

from sae_specialists.analysis import entry

entry.token_views(snakemake)  # noqa: F821  (injected by Snakemake)

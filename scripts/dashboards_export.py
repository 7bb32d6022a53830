"""Rule neuronpedia_export (logic: sae_specialists.dashboards.neuronpedia_export.export_layer)."""

from sae_specialists.core.jobs import run
from sae_specialists.dashboards.neuronpedia_export import export_layer

run(export_layer, snakemake)

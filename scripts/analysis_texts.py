"""Rule analysis_texts (logic: sae_specialists.analysis.entry.texts)."""

from sae_specialists.analysis.entry import texts
from sae_specialists.core.jobs import run

run(texts, snakemake)

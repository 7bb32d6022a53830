"""Rule validation_learning_curve (logic: sae_specialists.validation.entry.learning_curve)."""

from sae_specialists.core.jobs import run
from sae_specialists.validation.entry import learning_curve

run(learning_curve, snakemake)

"""Rule validation_test_set (logic: sae_specialists.validation.entry.test_set)."""

from sae_specialists.core.jobs import run
from sae_specialists.validation.entry import test_set

run(test_set, snakemake)

"""Rule extract_tokens (logic: sae_specialists.extraction.entry.tokens)."""

from sae_specialists.core.jobs import run
from sae_specialists.extraction.entry import tokens

run(tokens, snakemake)

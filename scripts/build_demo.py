"""Rule build_demo_assets (logic: sae_specialists.demo.entry.build)."""

from sae_specialists.core.jobs import run
from sae_specialists.demo.entry import build

run(build, snakemake)

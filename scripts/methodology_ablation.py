"""Snakemake script for rule methodology_ablation (logic: methodology.entry.ablation)."""

from sae_specialists.analysis.renderer import warm_up_in_background

warm_up_in_background()  # vl-convert's start-up (~0.6 s) runs while the job imports

from sae_specialists.methodology import entry  # noqa: E402

entry.ablation(snakemake)  # noqa: F821  (injected by Snakemake)

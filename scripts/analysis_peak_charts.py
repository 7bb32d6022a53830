"""Snakemake script of rule analysis_peak_charts.

Logic: sae_specialists.analysis.entry.peak_charts
"""

from sae_specialists.analysis.renderer import warm_up_in_background

warm_up_in_background()  # vl-convert's start-up (~0.6 s) runs while the job imports

from sae_specialists.analysis import entry  # noqa: E402

entry.peak_charts(snakemake)  # noqa: F821  (injected by Snakemake)

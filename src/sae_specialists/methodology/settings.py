"""The ``methodology:`` config section, with its defaults (also in the JSON schema)."""

from __future__ import annotations

import copy
from typing import Any

DEFAULTS: dict[str, Any] = {
    # build the methodology outputs as part of `rule all`; off when a config has no
    # `methodology:` section (the shipped config.yaml and demo.yaml switch it on)
    "enabled": False,
    "model_variants": True,  # the variants that need a padded forward pass (one job per category)
    # thresholds of the sensitivity sweep (the analysis threshold is always added)
    "thresholds": [0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0],
    "bootstrap_resamples": 1000,  # resamples of texts within categories
    "seed": 0,  # numpy Generator seed of the bootstrap
    "ci": 0.95,  # coverage of the percentile intervals
    # refuse (clear error) when the dense per-text matrices would need more memory than this
    "max_dense_gb": 4.0,
}


def methodology_settings(config: dict) -> dict[str, Any]:
    """``config["methodology"]`` merged over the defaults."""
    out = copy.deepcopy(DEFAULTS)
    out.update(dict(config.get("methodology") or {}))
    out["thresholds"] = [float(t) for t in out["thresholds"]]
    return out


def sweep_thresholds(grid: list[float], analysis_threshold: float) -> list[float]:
    """The sweep grid, sorted and de-duplicated, always including the analysis threshold."""
    return sorted({float(t) for t in grid} | {float(analysis_threshold)})

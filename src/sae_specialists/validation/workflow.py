"""Parse-time helpers of workflow/rules/validation.smk (and of the rules that show verdicts):
the test-set check, which layers get probe baselines, reading verdicts.json."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..core.errors import ConfigError
from ..core.io import read_cell_json
from ..core.layout import Layout


def check_test_categories(test_dir: str, test: Iterable[str], study: Iterable[str]) -> None:
    """The test set (``validation.test_texts``) must hold exactly the study's categories."""
    test, study = set(test), set(study)
    if test != study:
        missing, extra = sorted(study - test), sorted(test - study)
        raise ConfigError(
            f"config: validation.test_texts = {test_dir!r} must hold the study's categories "
            f"({', '.join(sorted(study))})"
            + (f"; missing: {', '.join(missing)}" if missing else "")
            + (f"; not in the study: {', '.join(extra)}" if extra else "")
            + ". Add or rename the category files there, or set validation.test_texts: null."
        )


def validated_layers(layout: Layout, families) -> list[tuple[str, int]]:
    """(family, layer)s the stage validates: ``families`` (None: every family) at their
    layers."""
    return [(f, layer) for f, layer in layout.sae_layers() if families is None or f in families]


def baseline_layers(layout: Layout, enabled: bool, families=None) -> tuple[list, list]:
    """(family, layer)s that get probe baselines, and those skipped: a layer is skipped when
    its activation shards exist without pooled-residual shards (extracted elsewhere, or before
    pooled residuals existed), instead of being re-extracted (which needs the model)."""
    if not enabled:
        return [], []
    out, skipped = [], []
    for family, layer in validated_layers(layout, families):
        pooled = all(Path(p).exists() for p in layout.pooled(family, layer))
        extracted = all(Path(p).exists() for p in layout.activations(family, layer))
        (out if pooled or not extracted else skipped).append((family, layer))
    return out, skipped


def skipped_message(skipped: list) -> str:
    return (
        "validation: no pooled-residual shards for "
        + ", ".join(f"{f} layer {layer}" for f, layer in skipped)
        + " (shards extracted elsewhere or before pooled residuals existed): their probe "
        "baselines are skipped. To add them, rerun the extraction (needs the model): "
        "snakemake --forcerun extract_activations (extract_category with extraction.jobs: "
        "per_category, extract_all with single); or set validation.baselines: false."
    )


def read_verdicts(path: str, family: str | None = None, layer=None) -> dict:
    """verdicts.json's content ("family/layer/category" -> verdict); with ``family`` and
    ``layer``: that layer's, keyed by category."""
    return read_cell_json(path, family, layer)

"""Configuration checks that a JSON schema cannot express, and the resolved settings."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError

EXTRACTION_DEFAULTS = {
    "batch_size": 8,
    "max_tokens": None,
    "long_texts": "truncate",
    "chunk_size": 1000,  # texts per extraction job (README "Performance and large corpora")
    "text_field": "text",  # JSONL key / Parquet column of large corpora (corpus.py)
    "text_split": "lines",  # .txt corpora: lines | blank_lines
}
ANALYSIS_DEFAULTS = {"aggregation": "mean", "threshold": 5.0, "candidates": 5, "include_bos": False}


@dataclass(frozen=True)
class SAEFamily:
    """One SAE family: a release + SAE id template, or a path template, with `{layer}`."""

    name: str
    release: str | None = None
    id_template: str | None = None
    path_template: str | None = None

    def source(self, layer: int) -> dict:
        """Where the SAE of `layer` comes from: {'release', 'sae_id'} or {'path'}."""
        if self.release is not None:
            return {"release": self.release, "sae_id": self.id_template.format(layer=layer)}
        return {"path": self.path_template.format(layer=layer)}


@dataclass(frozen=True)
class Settings:
    model: dict
    device: str
    dtype: str
    saes: dict[str, SAEFamily]
    layers: list[int]
    texts: Path
    results_dir: str
    extraction: dict = field(default_factory=dict)
    analysis: dict = field(default_factory=dict)
    demo: dict | None = None


def _family(name: str, spec: dict, n_layers: int) -> SAEFamily:
    template = spec.get("id", spec.get("path"))
    key = "id" if "id" in spec else "path"
    placeholders = set(re.findall(r"{([^{}]*)}", template))
    if placeholders - {"layer"}:
        raise ConfigError(
            f"config: saes.{name}.{key} = {template!r} has placeholder(s) "
            f"{sorted(placeholders - {'layer'})}; only '{{layer}}' is allowed."
        )
    if n_layers > 1 and "layer" not in placeholders:
        raise ConfigError(
            f"config: saes.{name}.{key} = {template!r} has no '{{layer}}' but {n_layers} layers "
            "are configured, so every layer would read the same SAE. "
            f'Write it as e.g. "blocks.{{layer}}.hook_resid_pre" or "saes/{name}/layer{{layer}}".'
        )
    if "release" in spec:
        return SAEFamily(name, release=spec["release"], id_template=spec["id"])
    return SAEFamily(name, path_template=spec["path"])


def check_config(config: dict) -> Settings:
    """Resolve a schema-validated config into Settings, with the checks a schema cannot do."""
    layers = list(config["layers"])
    if len(set(layers)) != len(layers):
        raise ConfigError(f"config: layers {layers} has duplicates; list each layer once.")
    saes = {name: _family(name, spec, len(layers)) for name, spec in config["saes"].items()}
    return Settings(
        model=dict(config["model"]),
        device=config.get("device", "auto"),
        dtype=config.get("dtype", "float32"),
        saes=saes,
        layers=sorted(layers),
        texts=Path(config["texts"]),
        results_dir=str(config.get("results_dir", "results")).rstrip("/"),
        extraction={**EXTRACTION_DEFAULTS, **config.get("extraction", {})},
        analysis={**ANALYSIS_DEFAULTS, **config.get("analysis", {})},
        demo=config.get("demo"),
    )

"""Where an SAE lives on Neuronpedia (``/{model_id}/{layer}-{sae_set}[__{suffix}]``): the ids the
Neuronpedia export writes (neuronpedia_export.py), and which the start checks compare across SAE
families so two families never export under one source (startup.check_export_ids). Light: no
polars, no torch."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class NeuronpediaIds:
    """Where the SAE lives on Neuronpedia: ``/{model_id}/{layer}-{sae_set}[__{suffix}]``."""

    model_id: str
    layer: int
    sae_set: str
    sae_id_suffix: str | None = None

    @property
    def source(self) -> str:
        base = f"{self.layer}-{self.sae_set}"
        return base + (f"__{self.sae_id_suffix}" if self.sae_id_suffix else "")


def slug(name: str) -> str:
    """A Neuronpedia id part: lowercase letters, digits, dots and dashes."""
    out = re.sub(r"[^a-z0-9.]+", "-", str(name).lower()).strip("-")
    return out or "sae"


def neuronpedia_ids(
    neuronpedia_id: str | None,
    *,
    layer: int,
    model_name: str,
    family: str,
    model_id: str | None = None,
    sae_set: str | None = None,
) -> NeuronpediaIds:
    """The ids of a layer's SAE: from its SAELens release's Neuronpedia id when it has one, else
    from ``model_id`` / ``sae_set`` (default: slugs of the model's name and the family)."""
    if neuronpedia_id and not (model_id or sae_set):
        known_model, _, source = neuronpedia_id.partition("/")
        base, _, suffix = source.partition("__")
        prefix = f"{int(layer)}-"
        if known_model and base.startswith(prefix):
            return NeuronpediaIds(known_model, int(layer), base[len(prefix) :], suffix or None)
    return NeuronpediaIds(model_id or slug(model_name), int(layer), sae_set or slug(family), None)

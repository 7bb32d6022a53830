"""The model and SAEs a job runs: what every model-loading job (extraction, logit effects,
methodology variants, causal) receives as params, and one way to load them."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.settings import Settings


@dataclass(frozen=True)
class ModelAndSAEs:
    """The model spec (``{'name'}`` or ``{'path'}``), the source of each (family, layer)'s SAE
    (families sorted, then layers: the order of a job's per-SAE outputs), device and dtype."""

    model: dict
    saes: dict[tuple[str, int], dict]
    device: str = "auto"
    dtype: str = "float32"

    @classmethod
    def of(cls, settings: Settings, families=None, layers=None) -> ModelAndSAEs:
        return cls(
            settings.model.spec,
            settings.sae_sources(families, layers),
            settings.device,
            settings.dtype,
        )

    @property
    def layers(self) -> list[int]:
        return sorted({layer for _, layer in self.saes})

    @property
    def blocks(self) -> list[int]:
        """The blocks the SAEs read: each layer, or its 'block' (hook_layer_offset)."""
        return sorted({source.get("block", layer) for (_, layer), source in self.saes.items()})

    def load(self):
        """(model, [LoadedSAE] in ``saes`` order, device): the model once, then every SAE;
        fails with a clear message when a configured layer does not exist."""
        from .hooks import check_layers_exist
        from .models import load_model, resolve_device
        from .saes import load_sae

        device = resolve_device(self.device)
        model = load_model(self.model, device=device, dtype=self.dtype)
        check_layers_exist(model, self.blocks)
        saes = [
            load_sae(family, layer, source, device=device, dtype=self.dtype)
            for (family, layer), source in self.saes.items()
        ]
        return model, saes, device

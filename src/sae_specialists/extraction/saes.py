"""Load SAEs: SAELens pretrained releases, or local SAELens `save_model` directories.

The hook an SAE reads comes from the SAE's own metadata (``sae.cfg.metadata.hook_name``), never
from parsing its id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import HubUnreachableError, SAEError
from .hub import LOCAL_FORMATS_HINT, prepare_hub_access

SAE_FILES = ("cfg.json", "sae_weights.safetensors")
HOOK_LAYER = re.compile(r"^blocks\.(\d+)\.")


@dataclass
class LoadedSAE:
    family: str
    layer: int
    sae: object  # sae_lens.SAE
    hook_name: str
    source: dict  # {'release', 'sae_id'} or {'path'}
    neuronpedia_id: str | None

    @property
    def d_sae(self) -> int:
        return int(self.sae.cfg.d_sae)

    @property
    def d_in(self) -> int:
        return int(self.sae.cfg.d_in)


def sae_input_files(source: dict) -> list[str]:
    if "path" not in source:
        return []
    return [str(Path(source["path"]) / name) for name in SAE_FILES]


def pretrained_directory() -> dict:
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    return get_pretrained_saes_directory()


def check_release_id(release: str, sae_id: str) -> None:
    """Fail with the valid ids when `release`/`sae_id` is not in SAELens's directory."""
    directory = pretrained_directory()
    if release not in directory:
        close = sorted(r for r in directory if r.split("-")[0] == release.split("-")[0])[:20]
        raise SAEError(
            f"saes: unknown SAELens release {release!r}. "
            f"Releases with a similar name: {close or 'none'}. "
            "See sae_lens's pretrained_saes.yaml for the full list."
        )
    ids = list(directory[release].saes_map)
    if sae_id not in ids:
        raise SAEError(f"saes: release {release!r} has no SAE id {sae_id!r}. Valid ids: {ids}")


def neuronpedia_id(release: str | None, sae_id: str | None) -> str | None:
    if release is None:
        return None
    lookup = pretrained_directory().get(release)
    if lookup is None:
        return None
    return (lookup.neuronpedia_id or {}).get(sae_id)


def check_local_sae_dir(path: str | Path) -> Path:
    from .models import check_local_dir

    path = Path(path)
    return check_local_dir(
        path,
        SAEError,
        "saes: local SAE directory",
        [name for name in SAE_FILES if not (path / name).is_file()],
        "An SAE directory is what SAELens `sae.save_model(DIR)` writes (cfg.json, "
        "sae_weights.safetensors).",
    )


def load_sae(family: str, layer: int, source: dict, device: str = "cpu", dtype: str = "float32"):
    """Load one SAE and read its hook from its own metadata."""
    from sae_lens import SAE

    if "path" in source:
        sae = SAE.load_from_disk(str(check_local_sae_dir(source["path"])), device=device)
        np_id = None
    else:
        release, sae_id = source["release"], source["sae_id"]
        check_release_id(release, sae_id)
        reachable = prepare_hub_access()
        try:
            sae = SAE.from_pretrained(release, sae_id, device=device)
        except Exception as err:  # noqa: BLE001 - any download/cache failure gets one message
            if not reachable:
                raise HubUnreachableError(
                    f"saes: could not load SAE {release}/{sae_id} (not in the local Hugging Face "
                    "cache). " + LOCAL_FORMATS_HINT
                ) from None
            raise SAEError(f"saes: could not load SAE {release}/{sae_id}: {err}") from err
        np_id = neuronpedia_id(release, sae_id)
    hook_name = getattr(sae.cfg.metadata, "hook_name", None)
    if not hook_name:
        raise SAEError(
            f"saes: SAE for family {family!r} layer {layer} ({source}) has no hook_name in its "
            "metadata; set cfg.metadata.hook_name before save_model."
        )
    problem = hook_layer_problem(
        family, layer, hook_name, source.get("block", layer), f"saes: SAE {family!r} ({source})"
    )
    if problem:
        raise SAEError(problem)
    if dtype != "float32":
        from .models import torch_dtype

        sae = sae.to(dtype=torch_dtype(dtype))
    sae.eval()
    return LoadedSAE(family, layer, sae, hook_name, dict(source), np_id)


def hook_layer_problem(family: str, layer: int, hook: str, block: int, where: str) -> str | None:
    """The error when the SAE configured for ``layer`` reads a hook outside ``block`` (the
    layer + the family's hook_layer_offset), so its numbers would be reported under the wrong
    layer; None when it fits (or the hook is outside the blocks: embed, ln_final)."""
    actual = hook_block(hook)
    if actual is None or actual == int(block):
        return None
    offset = int(block) - int(layer)
    mapping = f"layer {layer} + hook_layer_offset {offset} = " if offset else ""
    return (
        f"{where}: the SAE reads {hook!r} (block {actual}) but is configured for layer {layer} "
        f"({mapping}block {block}): its numbers would be reported under the wrong layer. Point "
        f"saes.{family} at the layer-{layer} SAE, or, if this family labels its SAEs differently "
        f"(e.g. blocks.11.hook_resid_post as layer 12), set saes.{family}.hook_layer_offset: "
        f"{actual - int(layer)} (block = layer + offset; docs/configuration.md)."
    )


def hook_block(hook_name: str) -> int | None:
    """The transformer block a hook lives in (None for hooks outside the blocks)."""
    match = HOOK_LAYER.match(hook_name)
    return int(match.group(1)) if match else None

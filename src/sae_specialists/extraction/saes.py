"""Load SAEs: SAELens pretrained releases, or local SAELens `save_model` directories.

The hook an SAE reads comes from the SAE's own metadata (``sae.cfg.metadata.hook_name``), never
from parsing its id.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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


# -- local SAE files, checked without torch (start checks) ---------------------------------------

SAE_FIX = "Re-save the SAE with SAELens's `sae.save_model(DIR)`, or point the config elsewhere."
# shapes of SAELens's tensors in terms of the cfg (others, if any, are only checked finite)
SAE_TENSOR_SHAPES = {
    "W_enc": ("d_in", "d_sae"),
    "W_dec": ("d_sae", "d_in"),
    "b_enc": ("d_sae",),
    "b_dec": ("d_in",),
    "threshold": ("d_sae",),
    "log_threshold": ("d_sae",),
}
REQUIRED_TENSORS = ("W_enc", "W_dec")
# safetensors float dtypes: numpy dtype to read them as, and the exponent mask of the bits (a
# value is NaN or infinite exactly when its exponent bits are all set)
_FLOAT_BITS = {
    "F64": (np.uint64, 0x7FF0000000000000),
    "F32": (np.uint32, 0x7F800000),
    "F16": (np.uint16, 0x7C00),
    "BF16": (np.uint16, 0x7F80),
}
_SCAN_BYTES = 1 << 26  # finiteness is checked 64 MB at a time: memory stays bounded


def read_sae_cfg(path: str | Path, where: str) -> dict:
    """``path``/cfg.json as a dict, checked: a JSON object with positive integers ``d_in`` and
    ``d_sae`` and a hook name (``metadata.hook_name`` or ``hook_name``); else an SAEError."""
    cfg_file = Path(path) / "cfg.json"
    try:
        cfg = json.loads(cfg_file.read_bytes())
    except (OSError, ValueError) as err:
        raise SAEError(f"{where}: {cfg_file} is not readable JSON ({err}). {SAE_FIX}") from None
    if not isinstance(cfg, dict):
        raise SAEError(
            f"{where}: {cfg_file} holds a JSON {type(cfg).__name__}, not an object with d_in, "
            f"d_sae and metadata.hook_name. {SAE_FIX}"
        )
    for key in ("d_in", "d_sae"):
        value = cfg.get(key)
        if value is None:
            raise SAEError(f"{where}: {cfg_file} has no {key!r}. {SAE_FIX}")
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise SAEError(
                f"{where}: {cfg_file}: {key} is {value!r}; it must be a positive integer. {SAE_FIX}"
            )
    metadata = cfg.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise SAEError(f"{where}: {cfg_file}: metadata must be a JSON object. {SAE_FIX}")
    hook = sae_hook_name(cfg)
    if hook is not None and not isinstance(hook, str):
        raise SAEError(
            f"{where}: {cfg_file}: hook_name is {hook!r}; it must be a TransformerLens hook "
            f"name such as 'blocks.1.hook_resid_pre'. {SAE_FIX}"
        )
    return cfg


def sae_hook_name(cfg: dict):
    """The hook an SAE's cfg.json names (``metadata.hook_name``, else ``hook_name``)."""
    metadata = cfg.get("metadata") if isinstance(cfg.get("metadata"), dict) else {}
    return metadata.get("hook_name") or cfg.get("hook_name")


def safetensors_header(file: Path, where: str) -> tuple[dict, int]:
    """(tensor name -> {dtype, shape, data_offsets}, offset of the data) of a safetensors file,
    from its header alone."""
    try:
        with open(file, "rb") as handle:
            head = handle.read(8)
            size = int.from_bytes(head, "little") if len(head) == 8 else -1
            total = os.fstat(handle.fileno()).st_size
            if not 0 < size <= total - 8:
                raise ValueError("no safetensors header")
            header = json.loads(handle.read(size))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        header.pop("__metadata__", None)
        for name, info in header.items():
            start, stop = info["data_offsets"]
            if not (isinstance(info["shape"], list) and 0 <= start <= stop <= total - 8 - size):
                raise ValueError(f"tensor {name!r} lies outside the file")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SAEError(
            f"{where}: {file} is not a readable safetensors file ({err}). {SAE_FIX}"
        ) from None
    return header, 8 + size


def check_sae_files(path: str | Path, where: str) -> dict:
    """A local SAE directory's cfg.json and weights, checked without loading them: the cfg
    (``read_sae_cfg``), every SAELens tensor's shape against ``d_in``/``d_sae``, and every
    float value finite (a NaN or infinity anywhere names the file and tensor). Streams the
    weights, 64 MB at a time. Returns the cfg."""
    path = Path(path)
    cfg = read_sae_cfg(path, where)
    file = path / "sae_weights.safetensors"
    header, data_start = safetensors_header(file, where)
    missing = [name for name in REQUIRED_TENSORS if name not in header]
    if missing:
        raise SAEError(
            f"{where}: {file} has no tensor {missing[0]!r} (it has {sorted(header)[:8]}). {SAE_FIX}"
        )
    for name, dims in SAE_TENSOR_SHAPES.items():
        if name not in header:
            continue
        want = [cfg[d] for d in dims]
        got = header[name]["shape"]
        if got != want:
            shown = ", ".join(f"{d}={cfg[d]}" for d in dict.fromkeys(dims))
            raise SAEError(
                f"{where}: {file}: tensor {name} has shape {got} but cfg.json says {shown} "
                f"(expected {want}). The config and the weights are of different SAEs. {SAE_FIX}"
            )
    with open(file, "rb") as handle:
        for name, info in sorted(header.items()):
            bits = _FLOAT_BITS.get(info["dtype"])
            if bits is None:
                continue
            start, stop = info["data_offsets"]
            bad = _non_finite(handle, data_start + start, stop - start, *bits)
            if bad is not None:
                raise SAEError(
                    f"{where}: {file}: tensor {name} holds a NaN or infinite value (element "
                    f"{bad} of {name}{tuple(info['shape'])}, flat index). Every feature it "
                    "touches would vanish from the tables or score infinity: fix or retrain the "
                    "SAE."
                )
    return cfg


def _non_finite(handle, offset: int, length: int, kind, mask: int) -> int | None:
    """Flat index of the first NaN/infinite value in ``length`` bytes at ``offset``, or None."""
    width = np.dtype(kind).itemsize
    step = _SCAN_BYTES - _SCAN_BYTES % width
    done = 0
    handle.seek(offset)
    while done < length:
        chunk = handle.read(min(step, length - done))
        if not chunk:
            break
        values = np.frombuffer(chunk, dtype=np.dtype(kind).newbyteorder("<"))
        hits = np.flatnonzero((values & kind(mask)) == kind(mask))
        if hits.size:
            return done // width + int(hits[0])
        done += len(chunk)
    return None


def load_sae(family: str, layer: int, source: dict, device: str = "cpu", dtype: str = "float32"):
    """Load one SAE and read its hook from its own metadata."""
    from sae_lens import SAE

    if "path" in source:
        where = f"saes: SAE {family!r} layer {layer}"
        check_sae_files(check_local_sae_dir(source["path"]), where)  # before SAELens reads it
        sae = SAE.load_from_disk(str(source["path"]), device=device)
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
        check_finite_parameters(sae, f"saes: SAE {release}/{sae_id} (family {family!r})")
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


def check_finite_parameters(sae, where: str) -> None:
    """Every float parameter of a loaded SAE finite (releases: their files are not checked at
    start), else an SAEError naming the tensor."""
    import torch

    for name, tensor in sae.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise SAEError(
                f"{where}: tensor {name} holds a NaN or infinite value. Every feature it touches "
                "would vanish from the tables or score infinity: use another SAE."
            )


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

"""Load the language model: a TransformerLens pretrained name, or a local model directory.

Local model format (a directory):
- ``config.json``: keyword arguments of ``HookedTransformerConfig`` (dtype as a string);
- ``model.safetensors``: the HookedTransformer state dict;
- tokenizer files written by a transformers tokenizer's ``save_pretrained``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ..core.errors import HubUnreachableError, ModelError
from .hub import LOCAL_FORMATS_HINT, prepare_hub_access

MODEL_FILES = ("config.json", "model.safetensors")


def resolve_device(device: str) -> str:
    import torch

    if device != "auto":
        if device == "cuda" and not torch.cuda.is_available():
            raise ModelError(
                "config: device is 'cuda' but no CUDA GPU is visible. Use auto or cpu."
            )
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def model_input_files(model_spec: dict) -> list[str]:
    """Files a rule should depend on, so that changing a local model reruns extraction."""
    if "path" not in model_spec:
        return []
    return [str(Path(model_spec["path"]) / name) for name in MODEL_FILES]


def model_label(model_spec: dict) -> str:
    """The model's name or local path, as recorded in shard metadata."""
    return model_spec["name"] if "name" in model_spec else model_spec["path"]


def check_local_dir(
    path: str | Path, error: type, what: str, missing: list[str], holds: str
) -> Path:
    """``path`` as a directory that exists and lacks none of ``missing`` (the files it needs
    that are not there), else ``error`` naming it; ``holds`` says what such a directory holds."""
    path = Path(path)
    if not path.is_dir():
        raise error(f"{what} {str(path)!r} does not exist. {holds}")
    if missing:
        raise error(f"{what} {str(path)!r} is missing {', '.join(missing)}. {holds}")
    return path


def check_local_model_dir(path: str | Path) -> Path:
    path = Path(path)
    missing = [name for name in MODEL_FILES if not (path / name).is_file()]
    if path.is_dir() and not any(path.glob("tokenizer*")):
        missing.append("tokenizer files (tokenizer.json / tokenizer_config.json)")
    return check_local_dir(
        path,
        ModelError,
        "model: local model directory",
        missing,
        "A model directory holds config.json (HookedTransformerConfig kwargs), model.safetensors "
        "(state dict) and the tokenizer's save_pretrained files (docs/configuration.md).",
    )


def load_local_model(path: str | Path, device: str = "cpu", dtype: str = "float32"):
    """Build a HookedTransformer from a local model directory."""
    from safetensors.torch import load_file
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformers import AutoTokenizer

    path = check_local_model_dir(path)
    kwargs = json.loads((path / "config.json").read_text())
    kwargs["dtype"] = torch_dtype(kwargs.get("dtype", dtype) if dtype == "float32" else dtype)
    kwargs["device"] = device
    try:
        cfg = HookedTransformerConfig(**kwargs)
    except TypeError as err:
        raise ModelError(
            f"model: {path}/config.json is not valid HookedTransformerConfig: {err}"
        ) from None
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=False)
    state = load_file(str(path / "model.safetensors"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith(("IGNORE", ".mask"))]
    if missing or unexpected:
        raise ModelError(
            f"model: {path}/model.safetensors does not match config.json "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]})."
        )
    model.to(device).to(cfg.dtype)
    model.eval()
    return model


# TransformerLens keeps these architectures' tokenizers as given (HookedTransformer.set_tokenizer)
_KEEP_TOKENIZER_ARCHITECTURES = ("OlmoForCausalLM", "OlmoeForCausalLM", "Olmo2ForCausalLM")


@dataclasses.dataclass(frozen=True)
class TokenizerOnly:
    """What tokenizing needs of a model (``tokenizer`` and ``cfg.n_ctx``), without its weights
    (TransformerLens and SAELens are not imported; ``transformers`` still imports torch): the
    token-shard job of a local model (extraction.pipeline)."""

    tokenizer: object
    cfg: object


def load_local_tokenizer(path: str | Path) -> TokenizerOnly:
    """A local model directory's tokenizer exactly as ``load_local_model`` hands it to the
    model: TransformerLens's ``set_tokenizer`` steps (re-created with ``add_bos_token=True``
    when it has a BOS token it does not add itself; missing EOS, pad and BOS tokens filled in),
    and the config's context length. Costs ``transformers``' tokenizer import (~2 s) instead of
    TransformerLens's (~7 s); tests/test_extract.py proves it gives the same token shards."""
    import types

    from transformers import AutoTokenizer

    path = check_local_model_dir(path)
    kwargs = json.loads((path / "config.json").read_text())
    if "n_ctx" not in kwargs:
        raise ModelError(f"model: {path}/config.json has no n_ctx (HookedTransformerConfig).")
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if kwargs.get("original_architecture") not in _KEEP_TOKENIZER_ARCHITECTURES:
        tokenizer = _with_bos(tokenizer)
    if tokenizer.padding_side is None:
        tokenizer.padding_side = "right"
    if tokenizer.eos_token is None:
        tokenizer.eos_token = "<|endoftext|>"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.bos_token is None:
        tokenizer.bos_token = tokenizer.eos_token
    return TokenizerOnly(tokenizer, types.SimpleNamespace(n_ctx=int(kwargs["n_ctx"])))


def _with_bos(tokenizer):
    """TransformerLens's ``get_tokenizer_with_bos``: some tokenizers (Llama's) split text
    differently when created with ``add_bos_token=True``."""
    from copy import deepcopy

    from transformers import AutoTokenizer

    if tokenizer.bos_token is None:
        return tokenizer
    init_kwargs = deepcopy(tokenizer.init_kwargs)
    name_or_path = init_kwargs.pop("name_or_path")
    add_bos_token = init_kwargs.pop("add_bos_token", None)
    if add_bos_token is None:
        add_bos_token = getattr(tokenizer, "add_bos_token", False)
    if add_bos_token:
        return tokenizer
    try:
        with_bos = AutoTokenizer.from_pretrained(name_or_path, add_bos_token=True, **init_kwargs)
    except ValueError:
        return tokenizer
    with_bos.padding_side = tokenizer.padding_side
    return with_bos


def save_local_model(model, path: str | Path) -> None:
    """Write a HookedTransformer in the local model format."""
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    fields = {f.name for f in dataclasses.fields(model.cfg) if f.init}
    kwargs = {}
    for name in sorted(fields):
        value = getattr(model.cfg, name)
        if name in ("dtype",):
            value = str(value).removeprefix("torch.")
        if name in ("device", "tokenizer_name", "n_devices"):
            continue
        try:
            json.dumps(value)
        except TypeError:
            continue
        kwargs[name] = value
    (path / "config.json").write_text(json.dumps(kwargs, indent=2, sort_keys=True))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path / "model.safetensors"))
    model.tokenizer.save_pretrained(str(path))


def load_model(model_spec: dict, device: str = "auto", dtype: str = "float32"):
    """The configured model, on `device`, in eval mode."""
    device = resolve_device(device)
    if "path" in model_spec:
        return load_local_model(model_spec["path"], device=device, dtype=dtype)
    name = model_spec["name"]
    reachable = prepare_hub_access()
    from transformer_lens import HookedTransformer

    try:
        model = HookedTransformer.from_pretrained(name, device=device, dtype=dtype)
    except Exception as err:  # noqa: BLE001 - any download/cache failure gets one message
        if not reachable:
            raise HubUnreachableError(
                f"model: could not load {name!r} (not in the local Hugging Face cache). "
                + LOCAL_FORMATS_HINT
            ) from None
        raise ModelError(f"model: could not load TransformerLens model {name!r}: {err}") from err
    model.eval()
    return model

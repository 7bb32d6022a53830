"""Fail fast, with one clear message, when the Hugging Face hub cannot be reached.

Without this, transformers/huggingface_hub retry for minutes before giving up. We probe the hub
once with a short timeout *before* importing the libraries that download; when it is unreachable
we switch them to cache-only mode (HF_HUB_OFFLINE=1), so anything already cached still loads, and
anything missing fails at once with our message.

At startup (startup.py: ``hub_warning`` when the workflow is read, ``check_hub_for_jobs`` before
the first job) the same probe decides early: with the hub unreachable, every model and SAE the
run would download (``HubItem``) must already be in the Hugging Face cache.
"""

from __future__ import annotations

import importlib.util
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

PROBE_TIMEOUT_S = 5.0

LOCAL_FORMATS_HINT = (
    "This machine cannot reach the Hugging Face hub. Either run where the hub is reachable (or "
    "pre-populate the HF cache there and copy it), or bring local files: `model: {path: DIR}` "
    "and `saes: {family: {path: 'DIR/layer{layer}'}}` (docs/configuration.md, 'Local formats'). "
    "To try the workflow offline, run the demo: snakemake --cores 4 --configfile config/demo.yaml"
)


def hub_reachable(timeout: float = PROBE_TIMEOUT_S) -> bool:
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parsed = urlparse(endpoint)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def prepare_hub_access() -> bool:
    """Probe the hub; if unreachable, switch HF libraries to cache-only. Returns reachability.

    Must run before transformers / huggingface_hub are imported for the offline switch to take
    effect everywhere; we also patch the constant in case they already were.
    """
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    if hub_reachable():
        return True
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        import huggingface_hub.constants as hf_constants

        hf_constants.HF_HUB_OFFLINE = True
    except ImportError:
        pass
    return False


@dataclass(frozen=True)
class HubItem:
    """A model or SAE a job would download from the hub: ``what`` names it for the user;
    ``repo_id`` is its hub repository and ``folder`` its folder there ("" = the repository)."""

    what: str
    repo_id: str
    folder: str = ""


def hub_offline() -> bool:
    """HF_HUB_OFFLINE is set: the HF libraries use their cache only."""
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache the libraries read (HF_HUB_CACHE, HF_HOME/hub, ...)."""
    from huggingface_hub import constants

    return Path(os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE)


def in_cache(item: HubItem, cache: Path | None = None) -> bool:
    """Whether a snapshot of ``item.repo_id`` in the cache holds a file in ``item.folder``."""
    repo = (cache or hub_cache_dir()) / ("models--" + item.repo_id.replace("/", "--"))
    for snapshot in (repo / "snapshots").glob("*"):
        folder = snapshot / item.folder if item.folder else snapshot
        if folder.is_dir() and any(f.is_file() for f in folder.iterdir()):
            return True
    return False


def unavailable(items: Iterable[HubItem], cache: Path | None = None) -> list[HubItem]:
    """The ``items`` a job could not load: those missing from the cache, unless the hub is
    reachable. The cache is looked at first (files only), so a run whose models and SAEs are
    all cached never probes the network; the probe (one short TCP connect) runs only when
    something is missing, and never under HF_HUB_OFFLINE."""
    missing = [item for item in dict.fromkeys(items) if not in_cache(item, cache)]
    if not missing or (not hub_offline() and hub_reachable()):
        return []
    return missing


def unavailable_message(missing: Iterable[HubItem]) -> str:
    names = "; ".join(item.what for item in missing)
    where = "HF_HUB_OFFLINE is set" if hub_offline() else "the hub cannot be reached"
    return (
        f"{where}, and the Hugging Face cache ({hub_cache_dir()}) lacks what the run would "
        f"download: {names}. " + LOCAL_FORMATS_HINT
    )


@lru_cache(maxsize=1)
def _transformer_lens_aliases() -> dict[str, str]:
    """TransformerLens's model names and aliases (lowercase) -> official (hub) name, read from
    its registry file without importing transformer_lens (which imports torch)."""
    spec = importlib.util.find_spec("transformer_lens")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(next(iter(spec.submodule_search_locations))) / "supported_models.py"
    if not path.is_file():
        return {}
    module_spec = importlib.util.spec_from_file_location("_tl_supported_models", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    names = {name.lower(): name for name in getattr(module, "OFFICIAL_MODEL_NAMES", [])}
    for official, aliases in getattr(module, "MODEL_ALIASES", {}).items():
        names.update({alias.lower(): official for alias in aliases})
    return names


def model_repo(name: str) -> str:
    """The hub repository TransformerLens downloads the model ``name`` (or an alias) from."""
    return _transformer_lens_aliases().get(name.lower(), name)

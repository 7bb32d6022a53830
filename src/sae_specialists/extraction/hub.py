"""Fail fast, with one clear message, when the Hugging Face hub cannot be reached.

Without this, transformers/huggingface_hub retry for minutes before giving up. We probe the hub
once with a short timeout *before* importing the libraries that download; when it is unreachable
we switch them to cache-only mode (HF_HUB_OFFLINE=1), so anything already cached still loads, and
anything missing fails at once with our message.
"""

from __future__ import annotations

import os
import socket
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

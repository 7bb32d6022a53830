"""Decoder directions: rows of an SAE's W_dec (d_sae x d_in), read from the SAE's own files.

The comparison never loads the model: an SAE that reads a hook in the residual basis
(hooks.in_residual_basis) writes its reconstruction there, so its decoder rows are directions
of the residual stream and two such SAEs' rows compare by cosine. hook_z SAEs would need the
model's W_O: they are left out of every cosine (with a note) and compared by co-activation.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable

import numpy as np

EPS = 1e-12


def unit_rows(w_dec: np.ndarray, features: Iterable[int]) -> np.ndarray:
    """Rows ``features`` of ``w_dec`` scaled to unit norm (float64; a zero row stays zero)."""
    rows = np.asarray(w_dec, dtype=np.float64)[np.asarray(list(features), dtype=np.int64)]
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.maximum(norms, EPS)


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of every row of ``a`` with every row of ``b``."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), EPS)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), EPS)
    return a @ b.T


def nearest(
    queries: np.ndarray, pool: np.ndarray, k: int, exclude: list[int | None] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows of ``pool`` with the highest decoder cosine to each query row.

    Returns (indices, cosines), each (n_queries, k'), k' = min(k, pool rows minus excluded);
    order: cosine descending, then lower index. ``exclude[i]`` (optional) is a pool row left out
    for query i (the query itself, for neighbours in its own SAE).
    """
    pool = np.asarray(pool, dtype=np.float64)
    norms = np.maximum(np.linalg.norm(pool, axis=1), EPS)
    q = np.asarray(queries, dtype=np.float64)
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), EPS)
    cos = (q @ pool.T) / norms[None, :]
    n_avail = pool.shape[0] - (1 if exclude is not None else 0)
    k = max(0, min(k, n_avail))
    out_idx = np.zeros((q.shape[0], k), dtype=np.int64)
    out_cos = np.zeros((q.shape[0], k), dtype=np.float64)
    for i in range(q.shape[0]):
        row = cos[i].copy()
        if exclude is not None and exclude[i] is not None:
            row[exclude[i]] = -np.inf
        # lexsort: last key is primary -> cosine descending, then index ascending
        order = np.lexsort((np.arange(row.size), -row))[:k]
        out_idx[i], out_cos[i] = order, row[order]
    return out_idx, out_cos


class DecoderCache:
    """W_dec of (sae, layer) on demand, keeping the ``size`` most recently used in memory
    (a 98,304 x 768 float32 decoder is 0.3 GB; the comparison walks SAEs in layer order)."""

    def __init__(self, load: Callable[[Hashable], np.ndarray], size: int = 2):
        self._load, self._size = load, size
        self._items: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self.loads = 0

    def __getitem__(self, key: Hashable) -> np.ndarray:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = self._load(key)
        self.loads += 1
        self._items[key] = value
        while len(self._items) > self._size:
            self._items.popitem(last=False)
        return value


# SAELens architectures whose loaded W_dec is the stored tensor as it is (no folding on load)
PLAIN_DECODER_ARCHITECTURES = ("standard", "jumprelu", "topk", "gated")
NUMPY_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16}


def load_decoder(family: str, layer: int, source: dict) -> np.ndarray:
    """W_dec (float32, d_sae x d_in) of one SAE, loaded on the CPU by the project's one SAE
    loader (extraction.saes.load_sae: a local ``save_model`` directory or a SAELens release,
    with its clear errors when the files or the hub are missing). A local SAE of a plain
    architecture is read from its file without torch or SAELens (``local_decoder``)."""
    if "path" in source:
        decoder = local_decoder(source["path"], f"saes: SAE {family!r} layer {layer}")
        if decoder is not None:
            return decoder
    from ..extraction.saes import load_sae

    loaded = load_sae(family, layer, source, device="cpu", dtype="float32")
    return loaded.sae.W_dec.detach().float().cpu().numpy()


def local_decoder(path: str, where: str) -> np.ndarray | None:
    """W_dec of a local SAELens ``save_model`` directory read straight from
    sae_weights.safetensors, after the checks ``load_sae`` makes of the files (cfg, shapes,
    every value finite): the same matrix SAELens loads (tests/test_comparison_units.py), in
    ~0.1 s instead of the ~7 s of importing SAELens. None when SAELens could change the stored
    tensor on load (another architecture) or numpy cannot read its dtype (bfloat16): the
    caller then loads the SAE with SAELens."""
    from safetensors import safe_open

    from ..extraction.saes import check_local_sae_dir, check_sae_files, safetensors_header

    directory = check_local_sae_dir(path)
    cfg = check_sae_files(directory, where)
    if cfg.get("architecture", "standard") not in PLAIN_DECODER_ARCHITECTURES:
        return None
    file = directory / "sae_weights.safetensors"
    header, _ = safetensors_header(file, where)
    if header["W_dec"]["dtype"] not in NUMPY_DTYPES:
        return None
    with safe_open(str(file), framework="numpy") as weights:
        return np.ascontiguousarray(weights.get_tensor("W_dec"), dtype=np.float32)

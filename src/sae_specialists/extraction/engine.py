"""Extraction: texts -> one forward pass per batch -> per-token SAE features -> sparse shards.

For each batch of texts, one forward pass captures every configured hook and stops after the
deepest one (the unembedding is never computed). Each *token's* activation is encoded by each
layer's SAE (never an average of residuals), and only activations > 0 are kept. Padding
positions are never encoded nor stored; the prepended BOS position is stored and flagged.

Engine (``Extractor``), built once per job for a model and its SAEs:

- Texts arrive as a stream and are processed in *windows* of about ``WINDOW_TOKENS`` tokens
  (file order). Inside a window texts are sorted by length and cut into batches, so batches
  carry little padding; each window's rows are written out before the next one starts, so
  memory is bounded by the window, never by the corpus.
- One ``run_with_cache`` per batch with ``names_filter`` = the hooks needed, under
  ``torch.inference_mode``. ``blocks.L.hook_resid_pre`` (L >= 1) is read as
  ``blocks.{L-1}.hook_resid_post`` (the same tensor), so the forward stops *before* block L.
  While it runs, TransformerLens's unfused modules are swapped for fused torch ops computing the
  same functions (``fast_modules``): GELU-tanh and LayerNorm (one pass instead of 8-9), plain
  causal attention (one QKV matmul + ``F.scaled_dot_product_attention``); restored afterwards,
  and never for a module whose own hooks are read.
- Per hook, the non-padding rows are gathered once and encoded in row blocks of
  ``encode_rows`` (a cache-sized buffer, reused). Standard and JumpReLU SAEs take a fused path:
  one matmul into the reused buffer, then the ReLU / threshold *is* the sparse selection
  (``pre > -b_enc``: exactly the positions where ``relu(x @ W_enc + b_enc) > 0``), then only
  the selected values get their bias added. No dense ``[batch, seq, d_sae]`` tensor, no ReLU
  pass, no bias pass. Other SAE architectures use ``sae.encode`` per row block.
- Rows of a window are ordered by (text in file order, token_pos, feature), exactly as if the
  whole category had been extracted at once and sorted, whatever the batch size.
- Per hook, the same gathered rows are also pooled per text (float64 sums): the mean over the
  non-BOS positions and the BOS position's vector, for the pooled-residual shards (one row per
  text; the validation stage's probe baselines).
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from importlib.metadata import version

import numpy as np
import pyarrow as pa
from tqdm.auto import tqdm

from ..core.contract import ACTIVATIONS_SCHEMA, POOLED_SCHEMA, TOKENS_SCHEMA
from ..core.tokens import token_bytes, token_text
from .encode import ENCODE_ROWS, ENCODE_ROWS_DEFAULT, Encoder, check_encode_input, check_hook_shape
from .hooks import capture_hooks, check_saes_match_model, fast_modules, stop_layer
from .models import model_label
from .saes import LoadedSAE
from .tokenize import WINDOW_TOKENS, TokenizedText, length_sorted_batches, split_window

log = logging.getLogger(__name__)

# -- memory allocator ---------------------------------------------------------------------------


def tune_allocator() -> bool:
    """Keep large freed buffers in the process (glibc): no mmap/munmap + page faults per batch.

    glibc serves allocations above 32 MiB with a fresh mmap and unmaps them on free, so every
    encode buffer and activation tensor would be page-faulted in again on each batch (on a VM
    that costs more system time than the BLAS work). Raising the mmap and trim thresholds makes
    freed memory reusable; the peak RSS stays what the job needs. No-op off glibc.
    """
    libc = _libc()
    if libc is None:
        return False
    try:
        m_trim_threshold, m_mmap_threshold = -1, -3
        ok = libc.mallopt(m_mmap_threshold, 1 << 30) and libc.mallopt(m_trim_threshold, 1 << 30)
    except AttributeError:
        return False
    return bool(ok)


def release_free_memory() -> bool:
    """Return the heap's free pages to the OS (glibc ``malloc_trim(0)``); no-op off glibc.

    Called between windows: with the raised trim threshold above, buffers freed at the end of a
    window would otherwise stay resident, and as window shapes vary the heap fragments and the
    RSS creeps up window after window. Trimming once per window (~32k tokens) costs a few page
    faults in the next window's first batch and keeps the peak RSS at what one window needs.
    """
    libc = _libc()
    try:
        return bool(libc.malloc_trim(0)) if libc is not None else False
    except AttributeError:
        return False


@functools.lru_cache(maxsize=1)
def _libc():
    """The C library (ctypes), None where it cannot be found or loaded (looked up once)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


# -- the engine -------------------------------------------------------------------------------


@dataclass
class WindowResult:
    tokenized: list[TokenizedText]
    tokens: pa.Table
    activations: dict[tuple[str, int], pa.Table]
    n_tokens: int
    seconds: float
    pooled: dict[tuple[str, int], pa.Table] | None = None  # (family, layer) -> POOLED_SCHEMA
    rows: int = 0  # activation rows of the window, every SAE (set by the pipeline)


@dataclass
class _Pooled:
    """Per text of a window, one hook: sum and count of the non-BOS rows, the BOS row."""

    sums: np.ndarray  # float64 [n_texts, d]
    counts: np.ndarray  # int64 [n_texts]
    bos: np.ndarray  # float32 [n_texts, d]
    has_bos: np.ndarray  # bool [n_texts]


class Extractor:
    """Model + SAEs of one job: turns windows of tokenized texts into shard tables."""

    def __init__(
        self, model, saes: list[LoadedSAE], batch_size: int = 8, encode_rows: int | None = None
    ):
        import torch

        check_saes_match_model(model, saes)
        self.model = model
        self.saes = saes
        self.batch_size = int(batch_size)
        self.device = next(model.parameters()).device
        tok = model.tokenizer
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
        self.capture = capture_hooks(model, sorted({s.hook_name for s in saes}))
        self.captured = sorted(set(self.capture.values()))
        self.stop = stop_layer(model, self.captured)
        rows = encode_rows or ENCODE_ROWS.get(self.device.type, ENCODE_ROWS_DEFAULT)
        self.encode_rows = int(rows)
        self._workspace: dict = {}  # encode buffers, shared by all SAEs
        self.encoders = [Encoder(s, self._workspace) for s in saes]
        self.by_hook: dict[str, list[Encoder]] = {}
        for enc in self.encoders:
            self.by_hook.setdefault(self.capture[enc.s.hook_name], []).append(enc)
        self._decoded: dict[int, bytes] = {}
        self._pooled: dict[str, _Pooled] = {}
        self._checked = False
        self._torch = torch

    # one window -------------------------------------------------------------------------
    def run(self, tokenized: list[TokenizedText], progress=None, sink=None) -> WindowResult:
        """Extract one window. With ``sink``, each SAE's table is handed to ``sink(key, table)``
        as soon as it is built and then dropped (``activations`` stays empty), so a window
        holds at most one SAE's finished table at a time."""
        torch = self._torch
        start = time.perf_counter()
        parts: dict[tuple[str, int], list] = {(s.family, s.layer): [] for s in self.saes}
        self._pooled: dict[str, _Pooled] = {}
        with torch.inference_mode(), fast_modules(self.model, self.captured):
            for batch in length_sorted_batches(tokenized, self.batch_size):
                self._batch(tokenized, batch, parts)
                if progress is not None:
                    progress.update(len(batch))
        ids = pa.array([t.text.text_id for t in tokenized], pa.string())
        tables = {}
        for key in list(parts):
            table = _activation_table(parts.pop(key), ids)
            if sink is None:
                tables[key] = table
            else:
                sink(key, table)
            del table
        n_tokens = sum(len(t.ids) for t in tokenized)
        pooled = self.pooled_tables(tokenized)
        return WindowResult(
            tokenized,
            self.tokens_table(tokenized),
            tables,
            n_tokens,
            time.perf_counter() - start,
            pooled,
        )

    def _batch(self, tokenized, batch, parts):
        torch = self._torch
        lengths = [len(tokenized[i].ids) for i in batch]
        width = max(lengths)
        tokens = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            tokens[row, : lengths[row]] = torch.tensor(tokenized[i].ids)
            mask[row, : lengths[row]] = 1
        real = mask.bool()
        rows, positions = real.nonzero(as_tuple=True)
        tok_text = np.asarray(batch, dtype=np.int32)[rows.numpy()]
        tok_pos = positions.numpy().astype(np.int32)
        tokens, mask = tokens.to(self.device), mask.to(self.device)
        _, cache = self.model.run_with_cache(
            tokens,
            attention_mask=mask,
            names_filter=self.captured,
            stop_at_layer=self.stop,
            return_cache_object=False,
        )
        real = real.to(self.device)
        for hook, encoders in self.by_hook.items():
            if not self._checked:
                for enc in encoders:
                    check_hook_shape(enc.s, cache[hook].shape, len(batch), width)
            acts = cache.pop(hook)[real]  # [n_real, ...] (one gather per hook)
            if not self._checked:
                for enc in encoders:
                    check_encode_input(enc.s, acts, True)
            self._pool(hook, acts, rows, positions, batch, len(tokenized))
            n = acts.shape[0]
            # equal blocks of <= encode_rows rows: no small remainder block (a GEMM of a few
            # rows reads the whole encoder matrix for little work)
            size = -(-n // -(-n // self.encode_rows)) if n else 1
            for lo in range(0, n, size):
                block = acts[lo : lo + size]
                for enc in encoders:
                    r, f, v = enc(block)
                    r = r.cpu().numpy() + lo
                    parts[(enc.s.family, enc.s.layer)].append(
                        (tok_text[r], tok_pos[r], f.cpu().numpy().astype(np.int32), v.cpu().numpy())
                    )
            del acts
        self._checked = True
        del cache

    def _pool(self, hook, acts, rows, positions, batch, n_window) -> None:
        """Add one batch's rows of ``hook`` to the per-text sums (non-BOS) and BOS vectors."""
        torch = self._torch
        flat = acts.reshape(acts.shape[0], -1)
        acc = self._pooled.get(hook)
        if acc is None:
            d = flat.shape[1]
            acc = self._pooled[hook] = _Pooled(
                np.zeros((n_window, d)),
                np.zeros(n_window, dtype=np.int64),
                np.zeros((n_window, d), dtype=np.float32),
                np.zeros(n_window, dtype=bool),
            )
        pos = positions.numpy()
        local = rows.numpy()
        texts = np.asarray(batch)
        counted = torch.as_tensor(pos > 0, device=flat.device)
        sums = torch.zeros((len(batch), flat.shape[1]), dtype=torch.float64, device=flat.device)
        sums.index_add_(0, rows.to(flat.device)[counted], flat[counted].double())
        acc.sums[texts] += sums.cpu().numpy()
        acc.counts[texts] += np.bincount(local[pos > 0], minlength=len(batch))
        first = np.flatnonzero(pos == 0)
        acc.bos[texts[local[first]]] = (
            flat[torch.as_tensor(first, device=flat.device)].float().cpu().numpy()
        )
        acc.has_bos[texts[local[first]]] = True

    # tables ------------------------------------------------------------------------------
    def tokens_table(self, tokenized: list[TokenizedText]) -> pa.Table:
        return _tokens_table(self.model.tokenizer, tokenized, self._decoded)

    def pooled_tables(self, tokenized: list[TokenizedText]) -> dict[tuple[str, int], pa.Table]:
        """(family, layer) -> the window's pooled-residual table of the SAE's hook."""
        by_hook = {hook: _pooled_table(acc, tokenized) for hook, acc in self._pooled.items()}
        self._pooled = {}
        return {
            (s.family, s.layer): by_hook[self.capture[s.hook_name]]
            for s in self.saes
            if self.capture[s.hook_name] in by_hook
        }


# Activation tables as the engine builds them: text_id dictionary-encoded (4 bytes a row instead
# of the id string). Written with store_schema=False, Parquet stores it as a plain string column,
# so the file follows ACTIVATIONS_SCHEMA exactly (shards.check_schema).
ACTIVATIONS_DICT_SCHEMA = pa.schema(
    [pa.field("text_id", pa.dictionary(pa.int32(), pa.string()))]
    + [ACTIVATIONS_SCHEMA.field(i) for i in range(1, len(ACTIVATIONS_SCHEMA))]
)


def _activation_table(chunks, ids: pa.Array) -> pa.Table:
    """Per-batch (text index, pos, feature, value) chunks -> one (text, pos, feature)-ordered
    table (ACTIVATIONS_DICT_SCHEMA); consumes ``chunks``."""
    if chunks:
        columns = [np.concatenate(c) for c in zip(*chunks, strict=True)]
        chunks.clear()
        # each text's rows are contiguous and already (pos, feature)-ordered: a stable sort on
        # the text index alone gives (text, pos, feature) order
        order = np.argsort(columns[0], kind="stable")
        columns = [c[order] for c in columns]
        del order
    else:
        columns = [np.zeros(0, dtype=np.int32)] * 3 + [np.zeros(0, dtype=np.float32)]
    text_index, pos, feature, value = columns
    return pa.table(
        {
            "text_id": pa.DictionaryArray.from_arrays(pa.array(text_index, pa.int32()), ids),
            "token_pos": pa.array(pos, pa.int32()),
            "feature": pa.array(feature, pa.int32()),
            "activation": pa.array(value.astype(np.float32, copy=False), pa.float32()),
        },
        schema=ACTIVATIONS_DICT_SCHEMA,
    )


def _list_array(matrix: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """[n, d] float32 -> list<float32> array of n rows (null where ``valid`` is False)."""
    n, d = matrix.shape
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * d, pa.int32())
    values = pa.array(np.ascontiguousarray(matrix, dtype=np.float32).reshape(-1), pa.float32())
    mask = None if valid is None or valid.all() else pa.array(~valid, pa.bool_())
    return pa.ListArray.from_arrays(offsets, values, mask=mask)


def _pooled_table(acc: _Pooled, tokenized: list[TokenizedText]) -> pa.Table:
    """One row per text of the window (POOLED_SCHEMA): the mean over its non-BOS positions
    (zeros when it has none), their number and its BOS vector."""
    counts = acc.counts
    means = acc.sums / np.maximum(counts, 1)[:, None]
    return pa.table(
        {
            "text_id": pa.array([t.text.text_id for t in tokenized], pa.string()),
            "category": pa.array([t.text.category for t in tokenized], pa.string()),
            "n_counted": pa.array(counts.astype(np.int32), pa.int32()),
            "resid_mean": _list_array(means.astype(np.float32)),
            "resid_bos": _list_array(acc.bos, acc.has_bos),
        },
        schema=POOLED_SCHEMA,
    )


def _tokens_table(tokenizer, tokenized: list[TokenizedText], raw: dict[int, bytes]) -> pa.Table:
    """The tokens shard: ``token_bytes`` is each token's raw bytes, ``token`` their text on
    their own (core/tokens.py; ``raw`` caches the bytes of ids seen before)."""
    lengths = np.array([len(t.ids) for t in tokenized], dtype=np.int64)
    total = int(lengths.sum())
    if total:
        ids = np.concatenate([np.asarray(t.ids, dtype=np.int64) for t in tokenized])
    else:
        ids = np.zeros(0, dtype=np.int64)
    text_index = np.repeat(np.arange(len(tokenized), dtype=np.int32), lengths)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    token_pos = (np.arange(total, dtype=np.int64) - starts).astype(np.int32)
    unique, inverse = np.unique(ids, return_inverse=True)
    missing = [int(i) for i in unique if int(i) not in raw]
    if missing:
        raw.update(token_bytes(tokenizer, missing))
    take = pa.array(inverse.reshape(-1).astype(np.int32), pa.int32())
    strings = pa.array([token_text(raw[int(i)]) for i in unique], pa.string())
    raws = pa.array([raw[int(i)] for i in unique], pa.binary())
    text_ids = pa.array([t.text.text_id for t in tokenized], pa.string())
    categories = pa.array([t.text.category for t in tokenized], pa.string())
    index = pa.array(text_index, pa.int32())
    return pa.table(
        {
            "text_id": text_ids.take(index),
            "category": categories.take(index),
            "token_pos": pa.array(token_pos, pa.int32()),
            "token_id": pa.array(ids.astype(np.int32), pa.int32()),
            "token": strings.take(take),
            "token_bytes": raws.take(take),
            "bos": pa.array(token_pos == 0, pa.bool_()),
        },
        schema=TOKENS_SCHEMA,
    )


def extract(
    model,
    saes: list[LoadedSAE],
    tokenized: list[TokenizedText],
    batch_size: int = 8,
    progress_desc: str = "extract",
):
    """Run the forward passes and encodings; return (tokens table, {(family, layer): table}).

    In memory, for tests and small inputs; jobs stream windows to disk (pipeline.py).
    """
    engine = Extractor(model, saes, batch_size)
    tokens, tables = [], {(s.family, s.layer): [] for s in saes}
    with tqdm(total=len(tokenized), desc=progress_desc, unit="text", mininterval=2.0) as bar:
        for window in _windows_of(tokenized, WINDOW_TOKENS):
            result = engine.run(window, progress=bar)
            tokens.append(result.tokens)
            for key, table in result.activations.items():
                tables[key].append(table)
    if not tokens:
        return _tokens_table(model.tokenizer, [], {}), {
            key: ACTIVATIONS_SCHEMA.empty_table() for key in tables
        }
    return pa.concat_tables(tokens), {
        key: pa.concat_tables([t.cast(ACTIVATIONS_SCHEMA) for t in parts])
        for key, parts in tables.items()
    }


def _windows_of(tokenized: list[TokenizedText], window_tokens: int):
    rest = list(tokenized)
    while rest:
        window, rest = split_window(rest, window_tokens)
        yield window


def tokens_table(model, tokenized: list[TokenizedText]) -> pa.Table:
    return _tokens_table(model.tokenizer, tokenized, {})


def library_versions() -> dict:
    names = ("sae-specialists", "torch", "transformer-lens", "sae-lens", "transformers")
    return {name: version(name) for name in names}


def shard_metadata(
    model_spec: dict,
    s: LoadedSAE,
    category: str,
    n_texts: int,
    n_tokens: int,
    dtype: str,
    chunk: dict | None = None,
) -> dict:
    meta = {
        "model": model_label(model_spec),
        "family": s.family,
        "layer": s.layer,
        "release": s.source.get("release"),
        "sae_id": s.source.get("sae_id"),
        "sae_path": s.source.get("path"),
        "hook_name": s.hook_name,
        "d_sae": s.d_sae,
        "d_in": s.d_in,
        "neuronpedia_id": s.neuronpedia_id,
        "category": category,
        "n_texts": n_texts,
        "n_tokens": n_tokens,
        "dtype": dtype,
        "versions": library_versions(),
    }
    if chunk is not None:
        meta.update(chunk)
    return meta

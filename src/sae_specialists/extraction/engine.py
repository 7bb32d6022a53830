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
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import version

import numpy as np
import pyarrow as pa
from tqdm.auto import tqdm

from ..core.contract import ACTIVATIONS_SCHEMA, TOKENS_SCHEMA
from ..core.errors import ModelError, SAEError, TextsError
from .models import model_label
from .saes import LoadedSAE, hook_block
from .texts import Text

log = logging.getLogger(__name__)

WINDOW_TOKENS = 32_768  # tokens per window: length-sorting scope, unit of work and of writing
TOKENIZE_TEXTS = 512  # texts tokenized per tokenizer call while filling a window
ENCODE_ROWS = {"cpu": 512}  # rows per SAE encode block (cpu: buffer ~ L2/L3 sized)
ENCODE_ROWS_DEFAULT = 8192  # cuda / mps
RESID_PRE = re.compile(r"^blocks\.(\d+)\.hook_resid_pre$")
FAST_GELU = {"gelu_new", "gelu_fast", "gelu_pytorch_tanh"}


@dataclass
class TokenizedText:
    text: Text
    ids: list[int]  # BOS first
    truncated_from: int | None = None


def context_limit(model, max_tokens: int | None) -> int:
    n_ctx = int(model.cfg.n_ctx)
    return min(max_tokens, n_ctx) if max_tokens else n_ctx


def tokenize_texts(model, texts: list[Text], max_tokens=None, long_texts="truncate"):
    """Tokenize each text on its own (no padding) and prepend the model's BOS token."""
    tokenizer = model.tokenizer
    if tokenizer.bos_token_id is None:
        raise ModelError("model: the tokenizer has no BOS token; set bos_token when saving it.")
    limit = context_limit(model, max_tokens)
    texts = list(texts)
    if not texts:
        return []
    encoded = tokenizer([t.text for t in texts], add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id
    out = [TokenizedText(text, [bos] + list(ids)) for text, ids in zip(texts, encoded, strict=True)]
    too_long = [t for t in out if len(t.ids) > limit]
    if too_long:
        listing = ", ".join(f"{t.text.text_id} ({len(t.ids)} tokens)" for t in too_long)
        if long_texts == "error":
            raise TextsError(
                f"texts: {len(too_long)} text(s) are longer than the limit of {limit} tokens "
                f"(BOS included): {listing}. Shorten or split them, or set "
                "extraction.long_texts: truncate."
            )
        log.warning(
            "texts: truncating %d text(s) to %d tokens (BOS included): %s",
            len(too_long), limit, listing,
        )
        for t in too_long:
            t.truncated_from = len(t.ids)
            t.ids = t.ids[:limit]
    return out


def tokenized_windows(model, texts: Iterable[Text], max_tokens=None, long_texts="truncate",
                      window_tokens: int = WINDOW_TOKENS) -> Iterator[list[TokenizedText]]:
    """Tokenize a stream of texts and group it, in order, into windows of ~window_tokens."""
    pending: list[TokenizedText] = []
    n_tokens = 0
    group: list[Text] = []

    def flush_group():
        nonlocal n_tokens
        for t in tokenize_texts(model, group, max_tokens, long_texts):
            pending.append(t)
            n_tokens += len(t.ids)

    for text in texts:
        group.append(text)
        if len(group) >= TOKENIZE_TEXTS:
            flush_group()
            group = []
            while n_tokens >= window_tokens:
                window, rest = _split_window(pending, window_tokens)
                yield window
                pending = rest
                n_tokens = sum(len(t.ids) for t in pending)
    if group:
        flush_group()
    while pending:
        window, pending = _split_window(pending, window_tokens)
        yield window


def _split_window(items: list[TokenizedText], window_tokens: int):
    total = 0
    for i, t in enumerate(items):
        total += len(t.ids)
        if total >= window_tokens:
            return items[: i + 1], items[i + 1 :]
    return items, []


def length_sorted_batches(tokenized: list[TokenizedText], batch_size: int) -> list[list[int]]:
    """Indices of texts grouped into batches of similar length (longest first)."""
    order = sorted(range(len(tokenized)), key=lambda i: (-len(tokenized[i].ids), i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def stop_layer(model, hook_names: list[str]) -> int | None:
    """First block that no configured hook needs (None: run every block)."""
    blocks = [hook_block(name) for name in hook_names]
    if any(b is None for b in blocks):
        return None
    deepest = max(blocks) + 1
    return deepest if deepest <= model.cfg.n_layers else None


def capture_hooks(model, hook_names: Iterable[str]) -> dict[str, str]:
    """Map each SAE hook to the hook actually captured in the forward pass.

    ``blocks.L.hook_resid_pre`` (L >= 1) is the very tensor ``blocks.{L-1}`` returns as its
    ``hook_resid_post``: capturing that lets the forward stop before block L.
    """
    out = {}
    for name in hook_names:
        match = RESID_PRE.match(name)
        layer = int(match.group(1)) if match else 0
        post = f"blocks.{layer - 1}.hook_resid_post"
        out[name] = post if layer >= 1 and post in model.hook_dict else name
    return out


def check_saes_match_model(model, saes: list[LoadedSAE]) -> None:
    for s in saes:
        if s.hook_name not in model.hook_dict:
            similar = [h for h in model.hook_dict if h.endswith(s.hook_name.split(".")[-1])][:6]
            raise SAEError(
                f"saes: SAE {s.family!r} layer {s.layer} ({s.source}) reads hook "
                f"{s.hook_name!r}, which the model does not have (it has e.g. {similar}). "
                "Pick SAEs trained on this model."
            )


def check_layers_exist(model, layers: list[int]) -> None:
    n_layers = int(model.cfg.n_layers)
    bad = [layer for layer in layers if layer >= n_layers]
    if bad:
        raise ModelError(
            f"config: layers {bad} do not exist: the model has {n_layers} layers "
            f"(0 to {n_layers - 1}). Fix `layers:` in the config."
        )


def _encode_input(sae: LoadedSAE, acts, first_batch: bool):
    """Flatten hook_z-style [n, heads, d_head] inputs when the SAE expects it; check d_in."""
    width = int(np.prod(acts.shape[1:]))
    if first_batch and width != sae.d_in:
        raise SAEError(
            f"saes: SAE {sae.family!r} layer {sae.layer} ({sae.source}) expects d_in={sae.d_in} "
            f"but hook {sae.hook_name!r} of the model gives width {width}. "
            "The SAE was trained on another model or hook."
        )
    return acts


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


# -- fast forward ---------------------------------------------------------------------------------


def _module_hooks_read(module_name: str, captured: set[str]) -> bool:
    prefix = f"{module_name}." if module_name else ""
    return any(h.startswith(prefix) for h in captured)


def _sdpa_ok(model, module) -> bool:
    """Plain causal multi-head attention that F.scaled_dot_product_attention computes exactly."""
    import torch

    cfg = model.cfg
    softcap = getattr(cfg, "attn_scores_soft_cap", -1.0)
    return (
        type(module).__name__ == "Attention"
        and cfg.positional_embedding_type == "standard"
        and cfg.attention_dir == "causal"
        and getattr(module, "_attention_dir_override", None) is None
        and getattr(module, "attn_type", "global") == "global"
        and cfg.n_key_value_heads is None
        and not (cfg.use_split_qkv_input or cfg.use_attn_in or cfg.use_attn_result)
        and not getattr(cfg, "load_in_4bit", False)
        and not getattr(cfg, "use_qk_norm", False)
        and getattr(cfg, "clip_qkv", None) is None
        and (softcap is None or softcap <= 0)
        and not getattr(cfg, "use_logn_attn", False)
        and not getattr(cfg, "use_attention_sinks", False)
        and getattr(module, "q_norm", None) is None
        and isinstance(getattr(module, "W_Q", None), torch.nn.Parameter)
    )


def _sdpa_forward(module, masks: dict):
    """A forward for a TransformerLens Attention module: one fused QKV matmul, fused
    scaled-dot-product attention (causal + key-padding mask), one output matmul."""
    import torch
    import torch.nn.functional as F

    n_heads, d_head = module.W_Q.shape[0], module.W_Q.shape[2]
    w_qkv = torch.cat([w.permute(0, 2, 1).reshape(n_heads * d_head, -1)
                       for w in (module.W_Q, module.W_K, module.W_V)]).contiguous()
    b_qkv = torch.cat([b.reshape(-1) for b in (module.b_Q, module.b_K, module.b_V)])
    w_o = module.W_O.permute(2, 0, 1).reshape(module.W_O.shape[2], -1).contiguous()
    b_o = module.b_O
    scale = 1.0 / float(module.attn_scale)
    original = type(module).forward

    def forward(query_input, key_input, value_input, past_kv_cache_entry=None,
                additive_attention_mask=None, attention_mask=None, position_bias=None):
        if (past_kv_cache_entry is not None or additive_attention_mask is not None
                or position_bias is not None or query_input.dim() != 3):
            return original(module, query_input, key_input, value_input, past_kv_cache_entry,
                            additive_attention_mask, attention_mask, position_bias)
        batch, seq, _ = query_input.shape
        qkv = F.linear(query_input, w_qkv, b_qkv).view(batch, seq, 3, n_heads, d_head)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [batch, heads, seq, d_head]
        # causal & key-padding mask: built once per forward pass, shared by every layer
        if masks.get("key") is not attention_mask or masks.get("seq") != seq:
            causal = torch.ones(seq, seq, dtype=torch.bool, device=q.device).tril_()
            if attention_mask is not None:
                masks["mask"] = causal[None, None] & attention_mask.bool()[:, None, None, :]
            else:
                masks["mask"] = causal[None, None]
            masks["key"], masks["seq"] = attention_mask, seq
        z = F.scaled_dot_product_attention(q, k, v, attn_mask=masks["mask"], scale=scale)
        z = z.transpose(1, 2).reshape(batch, seq, n_heads * d_head)
        return F.linear(z, w_o, b_o)

    return forward


@contextlib.contextmanager
def fast_modules(model, captured: Iterable[str]):
    """Swap TransformerLens's unfused modules for fused torch ops while extracting.

    - GELU-tanh (gelu_new): ``F.gelu(approximate="tanh")``, one pass instead of eight;
    - LayerNorm / LayerNormPre: ``F.layer_norm`` (biased variance, as TransformerLens), one pass
      instead of nine, computed once when a block normalises the same tensor for Q, K and V;
    - plain causal attention: one fused QKV matmul and ``F.scaled_dot_product_attention``
      instead of three projections (each re-laying out its weights), explicit scores, mask
      passes, softmax and NaN cleanup.
    Same functions; outputs differ by float rounding only. Only float32/float64 models, only
    modules none of whose hooks is read (a module whose hook is read keeps its own forward);
    block-level hooks (resid_pre/mid/post, attn_out, mlp_out) fire as usual. Restored on exit.
    """
    import torch
    import torch.nn.functional as F

    captured = set(captured)
    restore = []
    memo: list = [None, None, None]  # the last LayerNorm call: module, input, output
    masks: dict = {}  # the attention mask of the current forward pass
    if model.cfg.dtype not in (torch.float32, torch.float64):
        yield
        return
    try:
        for name, module in model.named_modules():
            kind = type(module).__name__
            if _module_hooks_read(name, captured):
                continue
            if kind in ("LayerNorm", "LayerNormPre"):
                length = int(getattr(module, "length", model.cfg.d_model))
                w, b = (module.w, module.b) if kind == "LayerNorm" else (None, None)

                def forward(x, m=module, n=length, w=w, b=b, e=float(module.eps)):
                    if m is memo[0] and x is memo[1]:
                        return memo[2]
                    y = F.layer_norm(x, (n,), w, b, e)
                    memo[:] = [m, x, y]
                    return y

                module.forward = forward
                restore.append((module, "forward", None))
            elif kind == "Attention" and _sdpa_ok(model, module):
                module.forward = _sdpa_forward(module, masks)
                restore.append((module, "forward", None))
            elif (getattr(module, "act_fn", None) is not None
                  and model.cfg.act_fn in FAST_GELU
                  and getattr(module, "hook_mid", None) is None):
                restore.append((module, "act_fn", module.act_fn))
                module.act_fn = _gelu_tanh
        yield
    finally:
        memo[:] = [None, None, None]
        masks.clear()
        for module, attr, old in reversed(restore):
            if attr == "forward":
                del module.forward
            else:
                setattr(module, attr, old)


def _gelu_tanh(x):
    import torch.nn.functional as F

    return F.gelu(x, approximate="tanh")


# -- SAE encoders -------------------------------------------------------------------------------


def _workspace(space: dict, name: str, numel: int, dtype, device):
    """A flat buffer shared by every encoder of a job (grown on demand, never shrunk)."""
    import torch

    buf = space.get((name, dtype))
    if buf is None or buf.numel() < numel:
        space.pop((name, dtype), None)
        buf = torch.empty(numel, dtype=dtype, device=device)
        space[(name, dtype)] = buf
    return buf[:numel]


class _Encoder:
    """Encode rows of one hook with one SAE into sparse (row, feature, value) triples."""

    def __init__(self, s: LoadedSAE, workspace: dict):
        import torch

        self.s = s
        self.workspace = workspace
        sae = s.sae
        self.dtype = sae.W_enc.dtype
        kind = type(sae).__name__
        hooked = any(getattr(m, "_forward_hooks", None) for m in sae.modules())
        self.fast = (
            kind in ("StandardSAE", "JumpReLUSAE")
            and getattr(sae.cfg, "normalize_activations", "none") in ("none", None)
            and not hooked
        )
        if self.fast:
            self.W = sae.W_enc.detach()
            self.b = sae.b_enc.detach()
            self.b_dec = sae.b_dec.detach() if sae.cfg.apply_b_dec_to_input else None
            if kind == "StandardSAE":
                self.neg_b = -self.b
                self.threshold = None
            else:
                self.threshold = torch.clamp(sae.threshold.detach().to(self.dtype), min=0)

    def __call__(self, x):
        """x: [m, d_in] (m <= encode_rows) -> (rows int64, features int64, values float32)."""
        import torch

        m = x.shape[0]
        if not self.fast:
            feats = self.s.sae.encode(x.to(self.dtype))
            rows, feats_idx = (feats > 0).nonzero(as_tuple=True)
            return rows, feats_idx, feats[rows, feats_idx].float()
        x = x.reshape(m, -1).to(self.dtype)
        if self.b_dec is not None:
            x = x - self.b_dec
        width = self.W.shape[1]
        buf = _workspace(self.workspace, "pre", m * width, self.dtype, x.device)
        mask = _workspace(self.workspace, "mask", m * width, torch.bool, x.device)
        pre = torch.mm(x, self.W, out=buf.view(m, width))
        mask = mask.view(m, width)
        if self.threshold is None:
            # pre > -b  <=>  pre + b > 0  (exactly: a float sum is 0 only if the exact sum is)
            torch.gt(pre, self.neg_b, out=mask)
            rows, feats_idx = mask.nonzero(as_tuple=True)
            values = pre[rows, feats_idx] + self.b[feats_idx]
        else:
            pre.add_(self.b)
            torch.gt(pre, self.threshold, out=mask)
            rows, feats_idx = mask.nonzero(as_tuple=True)
            values = pre[rows, feats_idx]
        return rows, feats_idx, values.float()


# -- the engine -------------------------------------------------------------------------------


@dataclass
class WindowResult:
    tokenized: list[TokenizedText]
    tokens: pa.Table
    activations: dict[tuple[str, int], pa.Table]
    n_tokens: int
    seconds: float


class Extractor:
    """Model + SAEs of one job: turns windows of tokenized texts into shard tables."""

    def __init__(self, model, saes: list[LoadedSAE], batch_size: int = 8,
                 encode_rows: int | None = None):
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
        self.encoders = [_Encoder(s, self._workspace) for s in saes]
        self.by_hook: dict[str, list[_Encoder]] = {}
        for enc in self.encoders:
            self.by_hook.setdefault(self.capture[enc.s.hook_name], []).append(enc)
        self._decoded: dict[int, str] = {}
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
        return WindowResult(tokenized, self.tokens_table(tokenized), tables, n_tokens,
                            time.perf_counter() - start)

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
            acts = cache.pop(hook)[real]  # [n_real, ...] (one gather per hook)
            if not self._checked:
                for enc in encoders:
                    _encode_input(enc.s, acts, True)
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
                        (tok_text[r], tok_pos[r], f.cpu().numpy().astype(np.int32),
                         v.cpu().numpy())
                    )
            del acts
        self._checked = True
        del cache

    # tables ------------------------------------------------------------------------------
    def tokens_table(self, tokenized: list[TokenizedText]) -> pa.Table:
        return _tokens_table(self.model.tokenizer, tokenized, self._decoded)


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


def _tokens_table(tokenizer, tokenized: list[TokenizedText], decoded: dict[int, str]) -> pa.Table:
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
    missing = [int(i) for i in unique if int(i) not in decoded]
    if missing:
        decoded.update(zip(missing, tokenizer.batch_decode([[i] for i in missing]), strict=True))
    strings = pa.array([decoded[int(i)] for i in unique], pa.string())
    text_ids = pa.array([t.text.text_id for t in tokenized], pa.string())
    categories = pa.array([t.text.category for t in tokenized], pa.string())
    index = pa.array(text_index, pa.int32())
    return pa.table(
        {
            "text_id": text_ids.take(index),
            "category": categories.take(index),
            "token_pos": pa.array(token_pos, pa.int32()),
            "token_id": pa.array(ids.astype(np.int32), pa.int32()),
            "token": strings.take(pa.array(inverse.reshape(-1).astype(np.int32), pa.int32())),
            "bos": pa.array(token_pos == 0, pa.bool_()),
        },
        schema=TOKENS_SCHEMA,
    )


def extract(model, saes: list[LoadedSAE], tokenized: list[TokenizedText], batch_size: int = 8,
            progress_desc: str = "extract"):
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
        window, rest = _split_window(rest, window_tokens)
        yield window


def tokens_table(model, tokenized: list[TokenizedText]) -> pa.Table:
    return _tokens_table(model.tokenizer, tokenized, {})


def library_versions() -> dict:
    names = ("sae-specialists", "torch", "transformer-lens", "sae-lens", "transformers")
    return {name: version(name) for name in names}


def shard_metadata(model_spec: dict, s: LoadedSAE, category: str, n_texts: int, n_tokens: int,
                   dtype: str, chunk: dict | None = None) -> dict:
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

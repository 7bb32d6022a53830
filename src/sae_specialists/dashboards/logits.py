"""Logit effects of SAE features: each feature's decoder direction through the unembedding.

For feature f, ``effect = W_dec[f] @ W_U`` (one value per vocabulary token; the unembedding bias
and the final layer norm's scale are left out, as in SAEDashboard / Neuronpedia: for
TransformerLens pretrained models the final LayerNorm weights are folded into W_U). The tokens
with the ``top`` largest effects are the ones the feature's direction *raises* most when written to
the residual stream; the ``top`` smallest, the ones it *lowers* most.

SAEs on the residual stream, ``hook_attn_out`` or ``hook_mlp_out`` (d_in = d_model) use W_dec as
is; SAEs on ``hook_z`` go through the layer's W_O, SAEs on ``mlp.hook_post`` through W_out.

Output (one Parquet file per SAE family and layer, every feature; one job per family):
feature, direction ('positive' | 'negative'), rank (1 = strongest), token_id, token (the
token's text on its own,
core/tokens.py: incomplete UTF-8 as \\xNN, control characters visible), token_bytes (its raw
bytes), token_display (the text with whitespace visible: ␣ ↵ ⇥ ␍), effect. This module imports
torch; the dashboard modules only read its Parquet output.
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa

from ..core.contract import TOKEN_FIELDS
from ..core.errors import SAEError
from ..core.io import write_table_atomic
from ..core.tokens import is_byte_level, token_bytes, token_display, token_text
from ..extraction.loading import ModelAndSAEs
from ..extraction.models import model_label
from ..extraction.saes import hook_block

log = logging.getLogger(__name__)

LOGITS_SCHEMA = pa.schema(
    [
        ("feature", pa.int32()),
        ("direction", pa.string()),
        ("rank", pa.int32()),
        *TOKEN_FIELDS,
        ("token_display", pa.string()),
        ("effect", pa.float32()),
    ]
)


def decoder_directions(model, sae, hook_name: str):
    """(d_sae, d_model) residual-stream directions the SAE's features write."""
    import torch

    w_dec = sae.W_dec.detach().to(torch.float32)
    d_model = int(model.cfg.d_model)
    if w_dec.shape[1] == d_model:
        return w_dec
    block = hook_block(hook_name)
    if hook_name.endswith("hook_z") and block is not None:
        w_o = model.blocks[block].attn.W_O.detach().to(torch.float32)  # heads, d_head, d_model
        return w_dec @ w_o.reshape(-1, d_model).to(w_dec.device)
    if hook_name.endswith("mlp.hook_post") and block is not None:
        w_out = model.blocks[block].mlp.W_out.detach().to(torch.float32)  # d_mlp, d_model
        return w_dec @ w_out.to(w_dec.device)
    raise SAEError(
        f"logit effects: the SAE on hook {hook_name!r} has d_in={w_dec.shape[1]} but the model's "
        f"d_model is {d_model}, and the hook is neither the residual stream, hook_z nor "
        "mlp.hook_post, so its decoder rows cannot be mapped to the unembedding."
    )


def top_effects(directions, w_u, top: int = 10, chunk: int = 1024):
    """Top ``top`` positive and negative effects of each row of ``directions`` @ ``w_u``.

    Returns numpy arrays (pos_ids, pos_vals, neg_ids, neg_vals), each (n_features, top); the
    negative values are the most negative effects, most negative first. Works in chunks of
    ``chunk`` features so the (features x vocabulary) matrix is never held whole.
    """
    return effects_pass(directions, w_u, top, chunk)[:4]


def effects_pass(directions, w_u, top: int = 10, chunk: int = 1024, bins: int = 0):
    """``top_effects``'s four arrays, then (when ``bins``) the histogram of each feature's
    effects over the whole vocabulary: lo, hi (n_features,) and counts (n_features, bins), on
    ``bins`` equal bins from the feature's smallest to its largest effect (SAEDashboard's
    logits histogram: ``torch.histc`` of the row)."""
    import torch

    w_u = w_u.to(torch.float32)
    k = min(int(top), int(w_u.shape[1]))
    out: list[list[np.ndarray]] = [[] for _ in range(7 if bins else 4)]
    with torch.inference_mode():
        for start in range(0, directions.shape[0], chunk):
            effects = directions[start : start + chunk].to(w_u.device, torch.float32) @ w_u
            pos = torch.topk(effects, k, dim=1, largest=True, sorted=True)
            neg = torch.topk(effects, k, dim=1, largest=False, sorted=True)
            parts = [pos.indices, pos.values, neg.indices, neg.values]
            if bins:
                lo, hi = effects.min(dim=1).values, effects.max(dim=1).values
                width = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
                index = ((effects - lo[:, None]) / width[:, None] * bins).long()
                index = index.clamp_(0, bins - 1)  # the max falls in the last bin, as histc
                counts = torch.zeros(effects.shape[0], bins, dtype=torch.int64)
                counts.scatter_add_(1, index.cpu(), torch.ones_like(index, dtype=torch.int64).cpu())
                parts += [lo, hi, counts]
            for i, t in enumerate(parts):
                out[i].append(t.cpu().numpy())
    return tuple(np.concatenate(p) for p in out)


HISTOGRAM_BINS = 50  # SAEDashboard's LogitsHistogramConfig.n_bins

LOGIT_HISTOGRAM_SCHEMA = pa.schema(
    [("feature", pa.int32()), ("bin", pa.int32())]
    + [("lo", pa.float32()), ("hi", pa.float32()), ("count", pa.int64())]  # the bin's edges, count
)


def histogram_table(lo: np.ndarray, hi: np.ndarray, counts: np.ndarray) -> pa.Table:
    """One row per (feature, bin) of ``effects_pass``'s histograms."""
    n, bins = counts.shape
    step = (hi - lo) / bins
    b = np.tile(np.arange(bins), n)
    f = np.repeat(np.arange(n), bins)
    return pa.table(
        {
            "feature": f.astype(np.int32),
            "bin": b.astype(np.int32),
            "lo": (lo[f] + step[f] * b).astype(np.float32),
            "hi": (lo[f] + step[f] * (b + 1)).astype(np.float32),
            "count": counts.reshape(-1).astype(np.int64),
        },
        schema=LOGIT_HISTOGRAM_SCHEMA,
    )


def token_strings(tokenizer, ids) -> dict[int, tuple[str, bytes, str]]:
    """(text, raw bytes, display text) of each token id (core/tokens.py); ids past the
    tokenizer (a padded vocabulary) read ``<token N>`` and have no bytes."""
    raw = token_bytes(tokenizer, ids)
    n_vocab = len(tokenizer)
    out = {}
    for i, data in raw.items():
        if i >= n_vocab:
            out[i] = (f"<token {i}>", b"", f"<token {i}>")
        else:
            out[i] = (token_text(data), data, token_display(data))
    return out


def logit_effects_table(
    model, sae, hook_name: str, top: int = 10, bins: int = 0
) -> pa.Table | tuple[pa.Table, pa.Table]:
    """The logit-effects table of every feature of ``sae`` (see the module doc); with ``bins``,
    also the histogram table of every feature's effects over the vocabulary."""
    directions = decoder_directions(model, sae, hook_name)
    result = effects_pass(directions, model.W_U.detach(), top, bins=bins)
    pos_ids, pos_vals, neg_ids, neg_vals = result[:4]
    n, k = pos_ids.shape
    strings = token_strings(model.tokenizer, np.concatenate([pos_ids.ravel(), neg_ids.ravel()]))
    feature = np.repeat(np.arange(n, dtype=np.int32), k)
    rank = np.tile(np.arange(1, k + 1, dtype=np.int32), n)
    ids = np.concatenate([pos_ids.ravel(), neg_ids.ravel()]).astype(np.int32)
    text, raws, display = zip(*(strings[int(i)] for i in ids), strict=True) if n else ((),) * 3
    table = pa.table(
        {
            "feature": np.concatenate([feature, feature]),
            "direction": pa.array(["positive"] * (n * k) + ["negative"] * (n * k), pa.string()),
            "rank": np.concatenate([rank, rank]),
            "token_id": ids,
            "token": pa.array(text, pa.string()),
            "token_bytes": pa.array(raws, pa.binary()),
            "token_display": pa.array(display, pa.string()),
            "effect": np.concatenate([pos_vals.ravel(), neg_vals.ravel()]).astype(np.float32),
        },
        schema=LOGITS_SCHEMA,
    )
    # rows: feature, then positive before negative, then rank
    direction_key = np.repeat([0, 1], n * k)
    order = np.lexsort((np.concatenate([rank, rank]), direction_key, table["feature"].to_numpy()))
    table = table.take(pa.array(order))
    return (table, histogram_table(*result[4:])) if bins else table


def compute_logit_effects(
    job: ModelAndSAEs,
    outputs: list[str],
    top: int = 10,
    histograms: list[str] | None = None,
) -> None:
    """Rule logit_effects: load the model once and every SAE of ``job`` (one family, all its
    layers); write each SAE's logit-effects Parquet to ``outputs`` (in ``job.saes`` order) and,
    to ``histograms`` (same order), every feature's histogram of effects over the vocabulary,
    ``HISTOGRAM_BINS`` bins (the Neuronpedia export's logits histogram)."""
    model, saes, _ = job.load()
    if len(outputs) != len(saes) or (histograms and len(histograms) != len(saes)):
        raise ValueError(f"logit effects: {len(saes)} SAEs but {len(outputs)} output paths")
    for i, s in enumerate(saes):
        if histograms:
            table, hist = logit_effects_table(model, s.sae, s.hook_name, top, bins=HISTOGRAM_BINS)
        else:
            table, hist = logit_effects_table(model, s.sae, s.hook_name, top), None
        meta = {
            "model": model_label(job.model),
            "family": s.family,
            "layer": int(s.layer),
            "hook_name": s.hook_name,
            "d_sae": s.d_sae,
            "d_vocab": int(model.cfg.d_vocab),
            "neuronpedia_id": s.neuronpedia_id,
            # the tokenizer writes its vocabulary in GPT-2's byte alphabet (Neuronpedia export)
            "byte_level": is_byte_level(model.tokenizer),
            "top": int(top),
            "definition": "effect = W_dec[feature] @ W_U (no bias, final LayerNorm as in W_U)",
        }
        write_table_atomic(table, outputs[i], meta)
        if hist is not None:
            write_table_atomic(hist, histograms[i], meta)
        log.info("logit effects: %s layer %d, %d features, top %d", s.family, s.layer, s.d_sae, top)

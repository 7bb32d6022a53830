"""Extraction: texts -> one forward pass per batch -> per-token SAE features -> sparse shards.

For each batch of texts, one forward pass captures every configured hook and stops after the
deepest one (the unembedding is never computed). Each *token's* activation is encoded by each
layer's SAE (never an average of residuals), and only activations > 0 are kept. Padding
positions are never encoded nor stored; the prepended BOS position is stored and flagged.
Texts are sorted by length before batching so batches carry little padding.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.metadata import version

import numpy as np
import pyarrow as pa
from tqdm.auto import tqdm

from .errors import ModelError, SAEError, TextsError
from .saes import LoadedSAE, hook_block
from .shards import ACTIVATIONS_SCHEMA, TOKENS_SCHEMA
from .texts import Text

log = logging.getLogger(__name__)


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
    out: list[TokenizedText] = []
    for text in texts:
        ids = [tokenizer.bos_token_id] + tokenizer(text.text, add_special_tokens=False)["input_ids"]
        out.append(TokenizedText(text, ids))
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
            len(too_long),
            limit,
            listing,
        )
        for t in too_long:
            t.truncated_from = len(t.ids)
            t.ids = t.ids[:limit]
    return out


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


def extract(
    model,
    saes: list[LoadedSAE],
    tokenized: list[TokenizedText],
    batch_size: int = 8,
    progress_desc: str = "extract",
):
    """Run the forward passes and encodings; return (tokens table, {(family, layer): table})."""
    import torch

    check_saes_match_model(model, saes)
    hook_names = sorted({s.hook_name for s in saes})
    stop = stop_layer(model, hook_names)
    device = next(model.parameters()).device
    pad_id = model.tokenizer.pad_token_id if model.tokenizer.pad_token_id is not None else 0
    parts: dict[tuple[str, int], list[tuple[np.ndarray, ...]]] = {
        (s.family, s.layer): [] for s in saes
    }
    first = True
    batches = length_sorted_batches(tokenized, batch_size)
    with torch.inference_mode():
        for batch in tqdm(batches, desc=progress_desc, unit="batch", mininterval=2.0):
            lengths = [len(tokenized[i].ids) for i in batch]
            width = max(lengths)
            tokens = torch.full((len(batch), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                tokens[row, : lengths[row]] = torch.tensor(tokenized[i].ids)
                mask[row, : lengths[row]] = 1
            tokens, mask = tokens.to(device), mask.to(device)
            _, cache = model.run_with_cache(
                tokens,
                attention_mask=mask,
                names_filter=hook_names,
                stop_at_layer=stop,
                return_cache_object=False,
            )
            real = mask.bool()
            rows, positions = real.nonzero(as_tuple=True)
            text_index = torch.tensor(batch, device=device)[rows].cpu().numpy()
            positions = positions.cpu().numpy()
            for s in saes:
                acts = _encode_input(s, cache[s.hook_name][real], first)
                feats = s.sae.encode(acts.to(s.sae.dtype))
                token_row, feature = (feats > 0).nonzero(as_tuple=True)
                values = feats[token_row, feature].float().cpu().numpy()
                token_row = token_row.cpu().numpy()
                parts[(s.family, s.layer)].append(
                    (text_index[token_row], positions[token_row], feature.cpu().numpy(), values)
                )
            first = False
            del cache
    tables = {key: _activation_table(chunks, tokenized) for key, chunks in parts.items()}
    return tokens_table(model, tokenized), tables


def _activation_table(chunks, tokenized: list[TokenizedText]) -> pa.Table:
    if chunks:
        text_index, pos, feature, value = (np.concatenate(c) for c in zip(*chunks, strict=True))
    else:
        text_index = pos = feature = np.zeros(0, dtype=np.int64)
        value = np.zeros(0, dtype=np.float32)
    order = np.lexsort((feature, pos, text_index))
    ids = np.array([t.text.text_id for t in tokenized], dtype=object)
    return pa.table(
        {
            "text_id": pa.array(ids[text_index[order]].tolist(), pa.string()),
            "token_pos": pa.array(pos[order].astype(np.int32)),
            "feature": pa.array(feature[order].astype(np.int32)),
            "activation": pa.array(value[order].astype(np.float32)),
        },
        schema=ACTIVATIONS_SCHEMA,
    )


def tokens_table(model, tokenized: list[TokenizedText]) -> pa.Table:
    tokenizer = model.tokenizer
    unique = sorted({i for t in tokenized for i in t.ids})
    decoded = dict(zip(unique, tokenizer.batch_decode([[i] for i in unique]), strict=True))
    columns: dict[str, list] = {k: [] for k in TOKENS_SCHEMA.names}
    for t in tokenized:
        n = len(t.ids)
        columns["text_id"] += [t.text.text_id] * n
        columns["category"] += [t.text.category] * n
        columns["token_pos"] += list(range(n))
        columns["token_id"] += t.ids
        columns["token"] += [decoded[i] for i in t.ids]
        columns["bos"] += [True] + [False] * (n - 1)
    return pa.table(columns, schema=TOKENS_SCHEMA)


def library_versions() -> dict:
    names = ("sae-specialists", "torch", "transformer-lens", "sae-lens", "transformers")
    return {name: version(name) for name in names}


def shard_metadata(
    model_spec: dict, s: LoadedSAE, category: str, n_texts: int, n_tokens: int, dtype: str
) -> dict:
    return {
        "model": model_spec.get("name") or model_spec.get("path"),
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

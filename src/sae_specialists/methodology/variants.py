"""The method variants that need the model: one naive, right-padded forward pass per category.

What a naive batched notebook does, and what is reproduced here (the study's two pitfalls):

- **Padding.** The texts of a category are right-padded to the longest text of the category with
  the tokenizer's pad token (GPT-2 has none: TransformerLens, like most notebooks, uses
  ``<|endoftext|>``, which is also GPT-2's BOS) and run *without an attention mask*. With a
  causal model and right padding the real positions are unaffected (they never attend to later
  positions, and positions do not shift), so the padded positions are the only difference: their
  activations are whatever the model computes at pad tokens that attend to the text and to
  earlier pads. A variant "with padding" counts those positions in the aggregate (a mean over
  all padded positions dilutes a short text; a max can pick up a pad activation).
- **Averaging before encoding.** The residual (the SAE's hook activation) is aggregated over the
  counted positions first (mean, or element-wise max) and the aggregate is encoded once, instead
  of encoding every token and aggregating the features. The SAE's ReLU (or threshold) is applied
  after the average, so a feature that fires strongly on a few tokens can vanish entirely.

Outputs of one category job (``run_category``):

- ``resid``: per (SAE family, layer, text, padding, include_bos, aggregation): the SAE encoding of
  the aggregated residual, rows with value > 0 (sae, layer, text_id, padding, include_bos,
  aggregation, feature, value);
- ``pad``: per (family, layer, text, feature): sum and max over the text's pad positions of the
  per-token SAE activation (rows where the feature is active on at least one pad position);
  ``ablation`` adds these to the shards' real positions for the *encode-then-aggregate* variants
  with padding, so those differ from the correct method by the pad positions only;
- ``texts``: text_id, category, n_positions, padded_length, n_pad, pad_token_id.

Token ids come from the category's tokens shards (the exact tokens of the extraction: BOS
first, truncation applied), never from re-tokenizing. A text whose set of counted positions is
empty (a BOS-only text with BOS excluded and no padding) gets no feature (value 0), as in the
analysis. Everything torch-free (masks, aggregation, sparse rows) is in functions taking numpy
arrays, so it can be checked without a model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from ..core.contract import TOKENS_SCHEMA
from ..core.io import scan_shards
from ..core.jobs import progress
from ..extraction.loading import ModelAndSAEs

log = logging.getLogger(__name__)

VARIANTS = [  # (padding, include_bos, aggregation) of the aggregate-then-encode variants
    (padding, bos, agg)
    for padding in (False, True)
    for bos in (False, True)
    for agg in ("mean", "max")
]
ENCODE_ROWS = 512

RESID_SCHEMA = {
    "sae": pl.String,
    "layer": pl.Int64,
    "text_id": pl.String,
    "padding": pl.Boolean,
    "include_bos": pl.Boolean,
    "aggregation": pl.String,
    "feature": pl.Int32,
    "value": pl.Float64,
}
PAD_SCHEMA = {
    "sae": pl.String,
    "layer": pl.Int64,
    "text_id": pl.String,
    "feature": pl.Int32,
    "pad_sum": pl.Float64,
    "pad_max": pl.Float64,
}
TEXTS_SCHEMA = {
    "text_id": pl.String,
    "category": pl.String,
    "n_positions": pl.Int64,
    "padded_length": pl.Int64,
    "n_pad": pl.Int64,
    "pad_token_id": pl.Int64,
}


@dataclass
class CategoryTokens:
    """The texts of one category in text order: ids (BOS first) and BOS flags per position."""

    category: str
    text_ids: list[str]
    token_ids: list[np.ndarray]
    bos: list[np.ndarray]

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(t) for t in self.token_ids], dtype=np.int64)

    @property
    def padded_length(self) -> int:
        return int(self.lengths.max()) if self.token_ids else 0


def read_category_tokens(token_paths: Sequence[str]) -> CategoryTokens:
    """Tokens shards of one category (all chunks, in order) -> CategoryTokens."""
    columns = ["text_id", "category", "token_pos", "token_id", "bos"]
    df = scan_shards(token_paths, TOKENS_SCHEMA, columns).collect().with_row_index("row")
    cats = df["category"].unique().to_list()
    if len(cats) != 1:
        raise ValueError(f"tokens shards of one category expected, got categories {cats}")
    order = df.group_by("text_id").agg(pl.col("row").min().alias("first")).sort("first")
    text_ids = order["text_id"].to_list()
    grouped = {
        tid: g.sort("token_pos") for (tid,), g in df.group_by("text_id", maintain_order=True)
    }
    return CategoryTokens(
        category=str(cats[0]),
        text_ids=text_ids,
        token_ids=[grouped[t]["token_id"].to_numpy().astype(np.int64) for t in text_ids],
        bos=[grouped[t]["bos"].to_numpy().astype(bool) for t in text_ids],
    )


def position_masks(
    lengths: np.ndarray, bos: Sequence[np.ndarray], padded_length: int
) -> dict[tuple[bool, bool], np.ndarray]:
    """[n_texts, padded_length] masks of the counted positions for (padding, include_bos).

    Real positions: 0 .. length-1 (BOS where flagged); pad positions: length .. padded_length-1.
    """
    n = len(lengths)
    real = np.arange(padded_length)[None, :] < lengths[:, None]
    is_bos = np.zeros((n, padded_length), dtype=bool)
    for i, flags in enumerate(bos):
        is_bos[i, : len(flags)] = flags
    pads = ~real
    out = {}
    for padding in (False, True):
        for include_bos in (False, True):
            mask = real if include_bos else real & ~is_bos
            out[(padding, include_bos)] = mask | pads if padding else mask
    return out


def aggregate(
    acts: np.ndarray, mask: np.ndarray, aggregation: str
) -> tuple[np.ndarray, np.ndarray]:
    """Aggregate hook activations [n, L, *tail] over masked positions -> ([n, *tail], empty[n]).

    mean: sum over counted positions / their number; max: element-wise maximum. A text with no
    counted position gets zeros and ``empty`` True."""
    m = mask.reshape(mask.shape + (1,) * (acts.ndim - 2))
    count = mask.sum(axis=1)
    empty = count == 0
    if aggregation == "mean":
        total = np.where(m, acts, 0).sum(axis=1, dtype=np.float64)
        denom = np.maximum(count, 1).reshape((-1,) + (1,) * (acts.ndim - 2))
        out = total / denom
    elif aggregation == "max":
        out = np.where(m, acts, -np.inf).max(axis=1)
        out[empty] = 0.0
    else:
        raise ValueError(f"aggregation must be mean or max, got {aggregation!r}")
    return out, empty


def sparse_rows(
    text_ids: Sequence[str], feats: np.ndarray, skip: np.ndarray | None = None
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Dense [n, d_sae] feature values -> (text_id, feature, value) rows with value > 0."""
    feats = np.asarray(feats)
    if skip is not None:
        feats = np.where(skip[:, None], 0, feats)
    r, f = np.nonzero(feats > 0)
    return [text_ids[i] for i in r], f.astype(np.int32), feats[r, f].astype(np.float64)


def residual_variant_rows(
    text_ids: Sequence[str],
    acts: np.ndarray,
    masks: dict[tuple[bool, bool], np.ndarray],
    encode: Callable[[np.ndarray], np.ndarray],
) -> dict[str, list]:
    """Aggregate-then-encode for every (padding, include_bos, aggregation) of a batch.

    acts: [n, L, *tail] hook activations (float); encode: [m, *tail] -> [m, d_sae] (numpy)."""
    cols: dict[str, list] = {
        k: [] for k in ("text_id", "padding", "include_bos", "aggregation", "feature", "value")
    }
    stacked, empties, keys = [], [], []
    for padding, bos, agg in VARIANTS:
        x, empty = aggregate(acts, masks[(padding, bos)], agg)
        stacked.append(x)
        empties.append(empty)
        keys.append((padding, bos, agg))
    feats = encode(np.concatenate(stacked, axis=0))
    n = len(text_ids)
    for j, (padding, bos, agg) in enumerate(keys):
        tid, f, v = sparse_rows(text_ids, feats[j * n : (j + 1) * n], empties[j])
        cols["text_id"] += tid
        cols["feature"].append(f)
        cols["value"].append(v)
        cols["padding"] += [padding] * len(tid)
        cols["include_bos"] += [bos] * len(tid)
        cols["aggregation"] += [agg] * len(tid)
    cols["feature"] = np.concatenate(cols["feature"]) if cols["feature"] else np.zeros(0, np.int32)
    cols["value"] = np.concatenate(cols["value"]) if cols["value"] else np.zeros(0)
    return cols


def pad_stat_rows(
    text_ids: Sequence[str],
    acts: np.ndarray,
    lengths: np.ndarray,
    encode: Callable[[np.ndarray], np.ndarray],
) -> dict[str, list]:
    """Per text and feature: sum and max of the per-token SAE activation over pad positions."""
    L = acts.shape[1]
    out = {"text_id": [], "feature": [], "pad_sum": [], "pad_max": []}
    for i, tid in enumerate(text_ids):
        n_pad = L - int(lengths[i])
        if n_pad <= 0:
            continue
        rows = acts[i, int(lengths[i]) :]
        total = None
        peak = None
        for lo in range(0, n_pad, ENCODE_ROWS):
            f = np.asarray(encode(rows[lo : lo + ENCODE_ROWS]), dtype=np.float64)
            f = np.maximum(f, 0.0)
            s, m = f.sum(axis=0), f.max(axis=0)
            total = s if total is None else total + s
            peak = m if peak is None else np.maximum(peak, m)
        feats = np.flatnonzero(peak > 0)
        out["text_id"] += [tid] * len(feats)
        out["feature"].append(feats.astype(np.int32))
        out["pad_sum"].append(total[feats])
        out["pad_max"].append(peak[feats])
    for key in ("feature", "pad_sum", "pad_max"):
        out[key] = np.concatenate(out[key]) if out[key] else np.zeros(0)
    return out


def _frame(cols: dict, schema: dict, **constants) -> pl.DataFrame:
    n = len(cols["text_id"])
    data = {**{k: [v] * n for k, v in constants.items()}, **cols}
    return pl.DataFrame({k: data[k] for k in schema}, schema=schema)


# -- the model part (torch) ---------------------------------------------------------------------


def pad_token_id(tokenizer) -> int:
    """The tokenizer's pad token (TransformerLens sets it to EOS when missing), else EOS, else
    BOS."""
    for tid in (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id):
        if tid is not None:
            return int(tid)
    raise ValueError("the tokenizer has no pad, EOS or BOS token to pad with")


def run_category(
    model, saes, toks: CategoryTokens, batch_size: int = 8
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The naive padded forward pass of one category -> (resid, pad, texts) tables."""
    import torch

    from ..extraction.hooks import capture_hooks, stop_layer

    tok = model.tokenizer
    pad_id = pad_token_id(tok)
    lengths = toks.lengths
    L = toks.padded_length
    capture = capture_hooks(model, sorted({s.hook_name for s in saes}))
    captured = sorted(set(capture.values()))
    stop = stop_layer(model, captured)
    device = next(model.parameters()).device
    resid_frames, pad_frames = [], []
    old_side = getattr(tok, "padding_side", None)
    try:
        if old_side is not None:
            tok.padding_side = "right"  # TransformerLens builds a mask only for left padding
        bar = progress(total=len(toks.text_ids), desc="padded forward passes", unit="texts")
        with torch.inference_mode(), bar:
            for lo in range(0, len(toks.text_ids), batch_size):
                idx = list(range(lo, min(lo + batch_size, len(toks.text_ids))))
                tokens = torch.full((len(idx), L), pad_id, dtype=torch.long)
                for r, i in enumerate(idx):
                    tokens[r, : lengths[i]] = torch.from_numpy(toks.token_ids[i])
                _, cache = model.run_with_cache(
                    tokens.to(device),
                    names_filter=captured,
                    stop_at_layer=stop,
                    return_cache_object=False,
                )
                batch_ids = [toks.text_ids[i] for i in idx]
                masks = position_masks(lengths[idx], [toks.bos[i] for i in idx], L)
                for s in saes:
                    acts = cache[capture[s.hook_name]].float().cpu().numpy()
                    encode = _encoder(s, device)
                    resid_frames.append(
                        _frame(
                            residual_variant_rows(batch_ids, acts, masks, encode),
                            RESID_SCHEMA,
                            sae=s.family,
                            layer=int(s.layer),
                        )
                    )
                    pad_frames.append(
                        _frame(
                            pad_stat_rows(batch_ids, acts, lengths[idx], encode),
                            PAD_SCHEMA,
                            sae=s.family,
                            layer=int(s.layer),
                        )
                    )
                del cache
                bar.update(len(idx))
    finally:
        if old_side is not None:
            tok.padding_side = old_side
    texts = pl.DataFrame(
        {
            "text_id": toks.text_ids,
            "category": [toks.category] * len(toks.text_ids),
            "n_positions": lengths.tolist(),
            "padded_length": [L] * len(toks.text_ids),
            "n_pad": (L - lengths).tolist(),
            "pad_token_id": [pad_id] * len(toks.text_ids),
        },
        schema=TEXTS_SCHEMA,
    )
    resid = pl.concat(resid_frames) if resid_frames else pl.DataFrame(schema=RESID_SCHEMA)
    pad = pl.concat(pad_frames) if pad_frames else pl.DataFrame(schema=PAD_SCHEMA)
    return resid, pad, texts


def _encoder(s, device) -> Callable[[np.ndarray], np.ndarray]:
    """numpy [m, *tail] -> numpy [m, d_sae] through the SAE's own ``encode``."""
    import torch

    sae = s.sae
    dtype = sae.W_enc.dtype

    def encode(x: np.ndarray) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for lo in range(0, x.shape[0], ENCODE_ROWS):
                xt = torch.from_numpy(np.ascontiguousarray(x[lo : lo + ENCODE_ROWS]))
                out.append(sae.encode(xt.to(device=device, dtype=dtype)).float().cpu().numpy())
        return np.concatenate(out, axis=0) if out else np.zeros((0, s.d_sae), np.float32)

    return encode


def run_variants_job(
    job: ModelAndSAEs, token_paths: Sequence[Sequence[str]], batch_size: int
) -> list[tuple[pl.DataFrame, ...]]:
    """Rule methodology_variants: load the model and every SAE once, then run each category
    (``token_paths``: one list of tokens shards per category) on its own."""
    model, saes, _ = job.load()
    results = []
    for paths in token_paths:
        toks = read_category_tokens(paths)
        log.info(
            "%s: %d texts, padded to %d positions (pad token id %d), %d SAEs",
            toks.category,
            len(toks.text_ids),
            toks.padded_length,
            pad_token_id(model.tokenizer),
            len(saes),
        )
        results.append(run_category(model, saes, toks, batch_size))
    return results

"""A specialist's per-token activations over every counted position, read from the shards.

The positions are the analysis' counted positions (every stored position, BOS only with
``analysis.include_bos``; padding is never stored), texts in the text list's order, positions
in order. Activation shards store only activations > 0: a counted position without a row is a 0.
Only the specialists' features are read from the activation shards.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from ..core.io import scan_shards
from .measures import Positions


@dataclass(frozen=True)
class LayerTokens:
    """The counted positions of one (family, layer) with their tokens and texts."""

    positions: Positions
    text_ids: list[str]  # text order
    categories: list[str]  # sorted
    frame: pl.DataFrame  # text_id, token_pos, _i (row of the position in the arrays)
    token_bytes: dict[int, bytes]  # token id -> its bytes (tokens that occur)


def read_tokens(
    token_paths: Sequence[str | os.PathLike], texts: pl.DataFrame, include_bos: bool
) -> LayerTokens:
    """Counted positions of the texts of ``texts`` (the analysis' text list)."""
    from ..core.contract import TOKENS_SCHEMA  # pyarrow: only the jobs reading shards

    columns = ["text_id", "token_pos", "token_id", "token_bytes", "bos"]
    order = texts.select("text_id", "text_order").lazy()
    tokens = (
        scan_shards(token_paths, TOKENS_SCHEMA, columns)
        .join(order, on="text_id", how="inner")
        .sort("text_order", "token_pos")
        .with_columns(pl.col("token_id").shift(1).over("text_id").fill_null(-1).alias("prev"))
        .collect()
    )
    if not include_bos:
        tokens = tokens.filter(~pl.col("bos"))
    txt = texts.sort("text_order")
    text_ids = txt["text_id"].to_list()
    categories = sorted(set(txt["category"].to_list()))
    cat_pos = {c: i for i, c in enumerate(categories)}
    cat_index = np.array([cat_pos[c] for c in txt["category"].to_list()], dtype=np.int64)
    row_of = {t: i for i, t in enumerate(text_ids)}
    text = np.array([row_of[t] for t in tokens["text_id"].to_list()], dtype=np.int64)
    vocab = tokens.select("token_id", "token_bytes").unique("token_id")
    return LayerTokens(
        Positions(
            token=tokens["token_id"].to_numpy().astype(np.int64),
            prev=tokens["prev"].to_numpy().astype(np.int64),
            text=text,
            cat_index=cat_index,
        ),
        text_ids,
        categories,
        tokens.select("text_id", "token_pos").with_row_index("_i"),
        dict(zip(vocab["token_id"].to_list(), vocab["token_bytes"].to_list(), strict=True)),
    )


def read_activations(
    activation_paths: Iterable[str | os.PathLike], layer: LayerTokens, features: Sequence[int]
) -> dict[int, np.ndarray]:
    """feature -> float64 [n positions]: its activation at every counted position (0 where the
    shards have no row)."""
    from ..core.contract import ACTIVATIONS_SCHEMA  # pyarrow: only the jobs reading shards

    n = len(layer.positions.token)
    out = {int(f): np.zeros(n, dtype=np.float64) for f in features}
    if not out:
        return out
    rows = (
        scan_shards(activation_paths, ACTIVATIONS_SCHEMA)
        .filter(pl.col("feature").is_in(list(out)))
        .join(layer.frame.lazy(), on=["text_id", "token_pos"], how="inner")
        .select("feature", "_i", "activation")
        .collect()
    )
    for (f,), part in rows.group_by(["feature"]):
        out[int(f)][part["_i"].to_numpy()] = part["activation"].to_numpy()
    return out

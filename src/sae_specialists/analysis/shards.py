"""The text list and counted positions, read from the extraction stage's shards.

Tokens shard:      text_id, category, token_pos, token_id, token, bos   (one row per position)
Activation shard:  text_id, token_pos, feature, activation              (activation > 0 only)
The activation shard's key-value metadata key ``sae_specialists`` holds a JSON object (model,
family, layer, d_sae, neuronpedia_id, ...).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import polars as pl

from ..core.io import read_metadata, scan_shards

TEXT_COLUMNS = ["text_id", "category", "text_order", "n_positions", "n_counted"]

# Keys of the activation-shard metadata that must agree between the categories of one SAE.
_CONSISTENT_KEYS = ("model", "family", "layer", "d_sae", "d_in", "hook_name", "neuronpedia_id")


def merge_activation_metadata(paths: Iterable[str | os.PathLike]) -> dict[str, Any]:
    """Metadata shared by the activation shards of one (family, layer), minus the category.

    Raises ValueError when shards of the same SAE disagree (e.g. a stale shard from another SAE).
    """
    merged: dict[str, Any] | None = None
    first = None
    for path in paths:
        meta = read_metadata(path, required=False)
        meta.pop("category", None)
        if merged is None:
            merged, first = meta, path
            continue
        for key in _CONSISTENT_KEYS:
            if key in meta and key in merged and meta[key] != merged[key]:
                raise ValueError(
                    f"activation shards disagree on {key!r}: {first} has {merged[key]!r}, "
                    f"{path} has {meta[key]!r}"
                )
    return merged or {}


def scan_tokens(token_paths: Iterable[str | os.PathLike]) -> pl.LazyFrame:
    """text_id, category, token_pos, bos of the tokens shards (schema-checked)."""
    from ..core.contract import TOKENS_SCHEMA  # pyarrow: only the jobs reading shards

    return scan_shards(token_paths, TOKENS_SCHEMA, ["text_id", "category", "token_pos", "bos"])


def counted_positions(token_paths: Iterable[str | os.PathLike], include_bos: bool) -> pl.LazyFrame:
    """(text_id, token_pos) of every counted position: all stored positions, BOS only if asked."""
    tokens = scan_tokens(token_paths)
    if not include_bos:
        tokens = tokens.filter(~pl.col("bos"))
    return tokens.select("text_id", "token_pos")


def texts_table(token_paths: Iterable[str | os.PathLike], include_bos: bool) -> pl.DataFrame:
    """One row per text, read from the tokens shards (never from activations).

    Columns: text_id, category, text_order (0-based; categories alphabetically, then the order of
    the texts in their shards: ``token_paths`` order, i.e. chunk order, then row order),
    n_positions (stored positions), n_counted (counted positions).
    """
    from ..core.contract import TOKENS_SCHEMA  # pyarrow: only the jobs reading shards

    paths = [str(p) for p in token_paths]
    tokens = pl.concat(
        [
            scan_shards([p], TOKENS_SCHEMA, ["text_id", "category", "bos"])
            .with_row_index("row")
            .with_columns(pl.lit(i, dtype=pl.Int64).alias("file"))
            for i, p in enumerate(paths)
        ],
        how="vertical",
    )
    counted = pl.col("bos").is_not_null() if include_bos else ~pl.col("bos")
    texts = (
        tokens.group_by("text_id", "category")
        .agg(
            pl.col("file").min().alias("first_file"),
            pl.col("row").min().alias("first_row"),
            pl.len().alias("n_positions"),
            counted.cast(pl.Int64).sum().alias("n_counted"),
        )
        .sort("category", "first_file", "first_row")
        .collect()
    )
    dup = texts.filter(pl.col("text_id").is_duplicated())
    if dup.height:
        raise ValueError(
            "text_id must be unique across categories; duplicated: "
            + ", ".join(sorted(set(dup["text_id"].to_list()))[:10])
        )
    return texts.with_row_index("text_order").select(
        pl.col("text_id"),
        pl.col("category"),
        pl.col("text_order").cast(pl.Int64),
        pl.col("n_positions").cast(pl.Int64),
        pl.col("n_counted").cast(pl.Int64),
    )

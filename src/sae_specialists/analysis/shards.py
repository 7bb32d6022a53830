"""Reading the extraction stage's shards (the data contract) and writing analysis Parquet files.

Tokens shard:      text_id, category, token_pos, token_id, token, bos   (one row per position)
Activation shard:  text_id, token_pos, feature, activation              (activation > 0 only)
The activation shard's key-value metadata key ``sae_specialists`` holds a JSON object (model,
family, layer, d_sae, neuronpedia_id, ...).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import polars as pl

META_KEY = "sae_specialists"

TEXT_COLUMNS = ["text_id", "category", "text_order", "n_positions", "n_counted"]

# Keys of the activation-shard metadata that must agree between the categories of one SAE.
_CONSISTENT_KEYS = ("model", "family", "layer", "d_sae", "d_in", "hook_name", "neuronpedia_id")


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``sae_specialists`` JSON metadata of a Parquet file ({} when absent)."""
    raw = (pl.read_parquet_metadata(path) or {}).get(META_KEY)
    return json.loads(raw) if raw else {}


def merge_activation_metadata(paths: Iterable[str | os.PathLike]) -> dict[str, Any]:
    """Metadata shared by the activation shards of one (family, layer), minus the category.

    Raises ValueError when shards of the same SAE disagree (e.g. a stale shard from another SAE).
    """
    merged: dict[str, Any] | None = None
    first = None
    for path in paths:
        meta = read_metadata(path)
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
    from ..core.io import TOKENS_SCHEMA, check_schema  # pyarrow: only the jobs reading shards

    paths = [str(p) for p in token_paths]
    if not paths:
        raise ValueError("no tokens shards given")
    for path in paths:  # a corrupt or foreign shard is reported, never analysed
        check_schema(path, TOKENS_SCHEMA)
    return pl.scan_parquet(paths).select(
        pl.col("text_id").cast(pl.String),
        pl.col("category").cast(pl.String),
        pl.col("token_pos").cast(pl.Int32),
        pl.col("bos").cast(pl.Boolean),
    )


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
    paths = [str(p) for p in token_paths]
    tokens = pl.concat(
        [
            pl.scan_parquet(p)
            .select("text_id", "category", "bos")
            .with_row_index("row")
            .with_columns(
                pl.col("text_id").cast(pl.String),
                pl.col("category").cast(pl.String),
                pl.lit(i, dtype=pl.Int64).alias("file"),
            )
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


def write_parquet(
    df: pl.DataFrame, path: str | os.PathLike, metadata: Mapping[str, Any] | None = None
) -> None:
    """Write ``df`` atomically (temp file + rename), with optional ``sae_specialists`` metadata.

    With metadata, pyarrow writes it (into the Arrow schema as well as the file's key-value
    metadata, so ``pyarrow.parquet.read_schema(path).metadata`` finds it; polars' writer only
    fills the latter). Without, polars writes the file: the table jobs of a threshold-only
    rerun then never import pyarrow (~0.2 s per job)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        if metadata is None:
            df.write_parquet(tmp)
        else:
            import pyarrow.parquet as pq

            table = df.to_arrow()
            existing = dict(table.schema.metadata or {})
            existing[META_KEY.encode()] = json.dumps(dict(metadata), sort_keys=True).encode()
            pq.write_table(table.replace_schema_metadata(existing), tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(text: str, path: str | os.PathLike) -> None:
    """Write a text file atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_csv(df: pl.DataFrame, path: str | os.PathLike) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        df.write_csv(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()

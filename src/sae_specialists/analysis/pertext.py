"""Per-text values: the sparse (text, feature) table every analysis is built on.

Per-text value of a feature on a text = aggregate, over the text's *counted positions*, of the
feature's per-token activation:
  - ``mean``: sum over counted positions / number of counted positions (zeros included, i.e.
    positions where the feature is inactive count as 0);
  - ``max``: maximum over counted positions.
Counted positions are every stored position except BOS (unless ``include_bos``). Padding is never
stored, so never counted. The table is sparse: only (text, feature) pairs with value > 0.
``max`` is the feature's largest per-token activation on the text's counted positions.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence

import polars as pl

from ..core.io import META_KEY, atomic_path, check_schema, scan_shards, write_parquet
from .shards import counted_positions, merge_activation_metadata, scan_tokens, texts_table

AGGREGATIONS = ("mean", "max")
ROW_GROUP_ROWS = 262_144  # per-text Parquet row groups: readers stream them in small pieces
PER_TEXT_SCHEMA = {
    "text_id": pl.String,
    "category": pl.String,
    "feature": pl.Int32,
    "value": pl.Float64,
    "max": pl.Float64,
}


def scan_activations(paths: Iterable[str | os.PathLike]) -> pl.LazyFrame:
    """text_id, token_pos, feature, activation (float64) of activation shards (schema-checked)."""
    from ..core.contract import ACTIVATIONS_SCHEMA  # pyarrow: only the jobs reading shards

    return scan_shards(paths, ACTIVATIONS_SCHEMA)


def per_text_values(
    token_paths: Sequence[str | os.PathLike],
    activation_paths: Sequence[str | os.PathLike],
    aggregation: str = "mean",
    include_bos: bool = False,
) -> pl.DataFrame:
    """Sparse per-text table (text_id, category, feature, value, max) with value > 0.

    ``token_paths`` must cover every text whose activations are given (the text list and the
    number of counted positions come from the tokens shards, never from activations, so a text
    with no active feature still counts). Rows are sorted by text order, then feature.
    """
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
    texts = texts_table(token_paths, include_bos).lazy()
    acts = scan_activations(activation_paths)

    stray = (
        acts.join(
            scan_tokens(token_paths).select("text_id", "token_pos"),
            on=["text_id", "token_pos"],
            how="anti",
        )
        .select(pl.len())
        .collect()
        .item()
    )
    if stray:
        raise ValueError(
            f"{stray} activation rows have no matching (text_id, token_pos) in the tokens shards"
        )

    counted = acts.join(
        counted_positions(token_paths, include_bos), on=["text_id", "token_pos"], how="semi"
    )
    grouped = counted.group_by("text_id", "feature").agg(
        pl.col("activation").sum().alias("sum"),
        pl.col("activation").max().alias("max"),
    )
    value = pl.col("sum") / pl.col("n_counted") if aggregation == "mean" else pl.col("max")
    return (
        grouped.join(texts, on="text_id", how="inner")
        .with_columns(value.alias("value"))
        .filter(pl.col("value") > 0)
        .sort("text_order", "feature")
        .select([pl.col(c).cast(t) for c, t in PER_TEXT_SCHEMA.items()])
        .collect()
    )


def chunk_groups(
    token_paths: Sequence[str | os.PathLike], activation_paths: Sequence[str | os.PathLike]
) -> list[tuple[list[str], list[str]]]:
    """Pairs (tokens shards, activation shards) to aggregate together, in text order.

    The layout lists a (family, layer)'s activation shards in the order of the tokens shards,
    one per (category, chunk) (``Layout.tokens`` / ``Layout.activations``): a text lies in
    exactly one chunk, so each pair is aggregated on its own and memory stays that of one
    chunk. Lists of other lengths form a single group.
    """
    tokens = [str(p) for p in token_paths]
    acts = [str(p) for p in activation_paths]
    if len(tokens) != len(acts):
        return [(tokens, acts)]
    return [([t], [a]) for t, a in zip(tokens, acts, strict=True)]


def build_per_text(
    token_paths: Sequence[str | os.PathLike],
    activation_paths: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    family: str,
    layer: int,
    aggregation: str = "mean",
    include_bos: bool = False,
) -> int:
    """Compute the per-text table of one (family, layer) chunk by chunk and write it (with its
    metadata) as one Parquet file, a row group per chunk, atomically. Returns the row count.

    Rows come in text order then feature, exactly as ``per_text_values`` over every shard."""
    import pyarrow.parquet as pq

    from ..core.contract import ACTIVATIONS_SCHEMA

    for path in activation_paths:  # a corrupt or foreign shard is reported, never analysed
        check_schema(path, ACTIVATIONS_SCHEMA)
    texts_table(token_paths, include_bos)  # whole-corpus checks (e.g. duplicated text ids)
    meta = merge_activation_metadata(activation_paths)
    meta.update(
        sae=family,
        layer=int(layer),
        aggregation=aggregation,
        include_bos=bool(include_bos),
        neuronpedia_id=meta.get("neuronpedia_id"),
    )
    schema = pl.DataFrame(schema=PER_TEXT_SCHEMA).to_arrow().schema
    schema = schema.with_metadata({META_KEY.encode(): json.dumps(meta, sort_keys=True).encode()})
    rows = 0
    with atomic_path(output) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for tokens, acts in chunk_groups(token_paths, activation_paths):
            if not acts:
                continue
            df = per_text_values(tokens, acts, aggregation, include_bos)
            writer.write_table(df.to_arrow().cast(schema), row_group_size=ROW_GROUP_ROWS)
            rows += df.height
    return rows


def build_texts(
    token_paths: Sequence[str | os.PathLike], output: str | os.PathLike, include_bos: bool
) -> pl.DataFrame:
    """Write the text list (text_id, category, text_order, n_positions, n_counted)."""
    df = texts_table(token_paths, include_bos)
    write_parquet(df, output, {"include_bos": bool(include_bos)})
    return df

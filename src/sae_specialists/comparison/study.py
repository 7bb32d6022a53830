"""The comparison stage over the workflow's files: analysis tables, per-text files (their
metadata names each SAE's hook and width), tokens and activation shards, SAE weight files.

Four jobs (workflow/rules/comparison.smk), each a function here:
- ``components``: specialists table -> component grid, first family per category, chart;
- ``related``: candidates (threshold-free) + peak tables + shards + decoders -> related
  features of every feature a dashboard can show (read by the dashboards job);
- ``tracking``: + specialists -> specialist links, next-layer neighbours, chart;
- ``splits``: + per-text values -> width-ladder splits, chart.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import polars as pl

from ..core.errors import SAEError
from ..core.io import read_metadata, scan_shards
from .coactivation import UNIT
from .components import component_first, component_grid
from .frames import typed, with_correlation
from .hooks import width_ladders
from .neighbours import sweep_decoders
from .splitting import add_similarity, parent_texts, split_candidates, split_shares
from .tracking import (
    NEIGHBOUR_COLUMNS,
    next_layer_neighbours,
    specialist_links,
    specialist_members,
)

log = logging.getLogger("sae_specialists.comparison")

Key = tuple[str, int]
SAE_COLUMNS = {
    "sae": pl.String,
    "layer": pl.Int64,
    "hook_name": pl.String,
    "d_sae": pl.Int64,
    "d_in": pl.Int64,
}


def sae_frame(per_text_paths: Sequence[str | os.PathLike]) -> pl.DataFrame:
    """(sae, layer, hook_name, d_sae, d_in) of every SAE, from the per-text files' metadata
    (copied by the analysis from the activation shards, which the extraction wrote from the
    SAE's own config)."""
    rows = []
    for path in per_text_paths:
        meta = read_metadata(path)
        missing = [k for k in ("sae", "layer", "hook_name", "d_sae", "d_in") if meta.get(k) is None]
        if missing:
            raise SAEError(
                f"{path}: metadata lacks {missing}; the per-text file predates this version. "
                "Delete it and rerun snakemake."
            )
        rows.append(
            (
                str(meta["sae"]),
                int(meta["layer"]),
                str(meta["hook_name"]),
                int(meta["d_sae"]),
                int(meta["d_in"]),
            )
        )
    return pl.DataFrame(rows, schema=SAE_COLUMNS, orient="row").sort("sae", "layer")


def read_specialists(path: str | os.PathLike) -> pl.DataFrame:
    return pl.read_parquet(path).with_columns(
        pl.col("sae").cast(pl.String), pl.col("layer").cast(pl.Int64)
    )


def counted_positions(token_paths: Sequence[str | os.PathLike], include_bos: bool) -> pl.LazyFrame:
    from ..analysis.shards import counted_positions as counted

    return counted(token_paths, include_bos)


def counted_by_shard(
    token_paths: Sequence[str | os.PathLike], include_bos: bool
) -> dict[tuple[str, str] | None, pl.LazyFrame]:
    """The counted positions of each extraction shard of texts (category, chunk), from its own
    tokens shard: an activation shard is matched against its shard's positions only, so reading
    S shards scans the tokens once, not S times. Tokens shards of another layout: one entry,
    ``None``, with every counted position."""
    groups: dict[tuple[str, str] | None, list] = {}
    for path in token_paths:
        groups.setdefault(_shard_group(path), []).append(path)
    if None in groups:
        return {None: counted_positions(list(token_paths), include_bos)}
    return {group: counted_positions(paths, include_bos) for group, paths in groups.items()}


SHARD_GROUP = re.compile(r"category=([^/\\]+)[/\\]chunk=(\d+)")


def _shard_group(path: str | os.PathLike) -> tuple[str, str] | None:
    """The (category, chunk) of an activation shard: the texts, hence the positions, it holds."""
    match = SHARD_GROUP.search(str(path))
    return (match[1], match[2]) if match else None


def unit_activations(
    activations: Mapping[Key, Sequence[str]],
    units: pl.DataFrame,
    counted: pl.LazyFrame | Mapping[tuple[str, str] | None, pl.LazyFrame],
) -> list[pl.LazyFrame]:
    """Per-token activations of the ``units`` (sae, layer, feature) at counted positions: the
    sparse rows of the shards, filtered by feature as they are read (never densified), as one
    lazy frame per extraction shard of texts (category, chunk): their positions are disjoint, so
    coactivation.pair_correlations reads one at a time and memory stays at one chunk's rows.
    ``counted``: every counted position, or those of each shard (``counted_by_shard``)."""
    from ..core.contract import ACTIVATIONS_SCHEMA

    if isinstance(counted, Mapping):
        by_shard = dict(counted)
        everything = (
            by_shard[None]
            if None in by_shard
            else pl.concat(list(by_shard.values()), how="vertical")
        )
    else:
        by_shard, everything = {}, counted

    schema = {
        "sae": pl.String,
        "layer": pl.Int64,
        "feature": pl.Int64,
        "text_id": pl.String,
        "token_pos": pl.Int64,
        "activation": pl.Float64,
    }
    groups: dict[tuple[str, str] | None, list[pl.LazyFrame]] = {}
    wanted = units.select(typed(*UNIT)).unique()
    for (sae, layer), group in sorted(wanted.group_by("sae", "layer"), key=lambda g: g[0]):
        features = group["feature"].cast(pl.Int32).to_list()
        for path in activations[(sae, int(layer))]:
            group = _shard_group(path)
            groups.setdefault(group, []).append(
                scan_shards([path], ACTIVATIONS_SCHEMA)
                .filter(pl.col("feature").is_in(features))
                .join(by_shard.get(group, everything), on=["text_id", "token_pos"], how="semi")
                .with_columns(
                    pl.lit(sae, dtype=pl.String).alias("sae"),
                    pl.lit(int(layer), dtype=pl.Int64).alias("layer"),
                )
                .select([pl.col(c).cast(t) for c, t in schema.items()])
            )
    if None in groups and len(groups) > 1:  # shards of another layout: one chunk of all
        groups = {None: [frame for frames in groups.values() for frame in frames]}
    if not groups:
        return [pl.LazyFrame(schema=schema)]
    return [pl.concat(groups[key], how="vertical") for key in sorted(groups, key=str)]


def decoder_loader(sources: Mapping[Key, dict]) -> Callable[[Key], np.ndarray]:
    """load(key) -> W_dec of that SAE (``sources``: (family, layer) -> its source)."""
    from .decoders import load_decoder

    def load(key: Key) -> np.ndarray:
        if key not in sources:
            raise SAEError(f"comparison: no SAE source for family {key[0]!r} layer {key[1]}.")
        return load_decoder(key[0], key[1], sources[key])

    return load


def _queries(*frames: pl.DataFrame) -> dict[Key, list[int]]:
    out: dict[Key, set[int]] = {}
    for frame in frames:
        for sae, layer, feature in frame.select(UNIT).iter_rows():
            if feature is not None:
                out.setdefault((str(sae), int(layer)), set()).add(int(feature))
    return {k: sorted(v) for k, v in out.items()}


def candidate_features(
    per_text: pl.LazyFrame, texts: pl.DataFrame, keys: Sequence[Key], k: int
) -> pl.DataFrame:
    """Every specialist candidate of every category, SAE and layer (sae, layer, feature): the k
    features with the highest in-category peak, by the analysis's one implementation of the rule
    (analysis.selection.candidates_of). Membership does not depend on the threshold, so neither
    do the tables built on it (only n_in / n_out would)."""
    from ..analysis.dense import candidate_layer_data
    from ..analysis.selection import candidates_of

    rows = []
    for sae, layer in keys:
        data = candidate_layer_data(per_text, texts, sae, layer, k)
        for c in range(len(data.categories)):
            rows += [(sae, layer, int(f)) for f in candidates_of(data, c, 0.0, k).feature]
    schema = {"sae": pl.String, "layer": pl.Int64, "feature": pl.Int64}
    return pl.DataFrame(rows, schema=schema, orient="row").unique().sort(UNIT)


def features_of_interest(
    candidates: pl.DataFrame, strongest: pl.DataFrame, frequent: pl.DataFrame
) -> pl.DataFrame:
    """Every feature a dashboard can show: each SAE's specialist candidates (a specialist is
    one) and the rows of its strongest / most frequent tables (the dashboards pick among
    these). None depends on the threshold."""
    parts = [candidates, strongest, frequent]
    return pl.concat([p.select(typed(*UNIT)) for p in parts]).drop_nulls().unique().sort(UNIT)


def _with_correlation(related: pl.DataFrame, acts: pl.DataFrame, n_positions: int) -> pl.DataFrame:
    units = {"sae_a": "sae", "layer_a": "layer", "feature_a": "feature"}
    units |= {"sae_b": "other_sae", "layer_b": "other_layer", "feature_b": "other_feature"}
    return with_correlation(related, units, acts, n_positions)


# -- jobs -------------------------------------------------------------------------------------


def components(specialists: pl.DataFrame, saes: pl.DataFrame) -> dict[str, pl.DataFrame]:
    grid = component_grid(specialists, saes)
    return {"components": grid, "component_first": component_first(grid)}


def related(
    features: pl.DataFrame,
    saes: pl.DataFrame,
    load: Callable[[Key], np.ndarray],
    activations: Mapping[Key, Sequence[str]],
    counted: pl.LazyFrame | Mapping,
    n_positions: int,
    k: int,
    min_cosine: float = 0.0,
) -> dict[str, pl.DataFrame]:
    """Related features of every feature of interest (neighbours.sweep_decoders: the ``k``
    nearest above ``min_cosine`` per relation), with the co-activation of each pair."""
    directions, table = sweep_decoders(saes, _queries(features), load, k, min_cosine)
    units = (
        pl.concat(
            [
                table.select(UNIT),
                table.select(
                    pl.col("other_sae").alias("sae"),
                    pl.col("other_layer").alias("layer"),
                    pl.col("other_feature").alias("feature"),
                ),
            ]
        )
        .drop_nulls()
        .unique()
    )
    acts = unit_activations(activations, units, counted)
    log.info(
        "%d features of interest, %d related rows, %d units, %d shards of texts",
        features.height,
        table.height,
        units.height,
        len(acts),
    )
    return {
        "related_features": _with_correlation(table, acts, n_positions),
        "feature_directions": directions_frame(directions),
    }


def directions_frame(directions: Mapping[tuple[str, int, int], np.ndarray]) -> pl.DataFrame:
    """Unit decoder rows as a table (sae, layer, feature, direction: list of float64), so the
    jobs after the related-features one read them without loading an SAE."""
    keys = sorted(directions)
    return pl.DataFrame(
        {
            "sae": [k[0] for k in keys],
            "layer": [k[1] for k in keys],
            "feature": [k[2] for k in keys],
            "direction": [directions[k].tolist() for k in keys],
        },
        schema={
            "sae": pl.String,
            "layer": pl.Int64,
            "feature": pl.Int64,
            "direction": pl.List(pl.Float64),
        },
    )


def read_directions(frame: pl.DataFrame) -> dict[tuple[str, int, int], np.ndarray]:
    return {
        (sae, int(layer), int(feature)): np.asarray(direction, dtype=np.float64)
        for sae, layer, feature, direction in frame.iter_rows()
    }


def tracking(
    specialists: pl.DataFrame,
    related_features: pl.DataFrame,
    directions: Mapping[tuple[str, int, int], np.ndarray],
    saes: pl.DataFrame,
    activations: Mapping[Key, Sequence[str]],
    counted: pl.LazyFrame | Mapping,
    n_positions: int,
) -> dict[str, pl.DataFrame]:
    """Specialist links (decoder cosine, co-activation) and next-layer neighbours, from the
    related-features job's tables (a specialist is a candidate, so its decoder direction and its
    next-layer rows are there): no SAE is loaded, so a threshold change reruns this in
    seconds."""
    members = specialist_members(specialists, saes)
    missing = [k for k in members.select(UNIT).iter_rows() if k not in directions]
    if missing:
        raise ValueError(f"no decoder direction for the specialists {missing[:5]}")
    acts = unit_activations(activations, members.select(UNIT), counted)
    links = specialist_links(members, saes, directions, acts, n_positions)
    # rows without a neighbour ("none above the floor") are no neighbours
    related_features = related_features.filter(pl.col("other_feature").is_not_null())
    nxt = next_layer_neighbours(members, related_features.drop("correlation")).join(
        related_features.filter(pl.col("relation") == "next_layer").select(
            "sae",
            "layer",
            "feature",
            pl.col("other_layer").alias("next_layer"),
            pl.col("other_feature").alias("next_feature"),
            "correlation",
        ),
        on=["sae", "layer", "feature", "next_layer", "next_feature"],
        how="left",
    )
    return {
        "specialist_members": members.drop("block", "stage"),
        "specialist_links": links,
        "next_layer": nxt.sort("category", "sae", "layer", "rank").select(NEIGHBOUR_COLUMNS),
    }


def splits(
    specialists: pl.DataFrame,
    saes: pl.DataFrame,
    per_text: pl.LazyFrame | pl.DataFrame,
    load: Callable[[Key], np.ndarray],
    activations: Mapping[Key, Sequence[str]],
    counted: pl.LazyFrame | Mapping,
    n_positions: int,
    threshold: float,
    min_correlation: float,
    min_cosine: float,
) -> dict[str, pl.DataFrame]:
    """The width ladders and how each narrow specialist splits across the wider SAEs."""
    ladders = width_ladders(saes)
    parents = parent_texts(ladders, specialists, per_text, threshold)
    cands = split_candidates(ladders, parents, per_text, threshold)
    if cands.height == 0:
        sim = cands.with_columns(
            pl.lit(None, dtype=pl.Float64).alias("cosine"),
            pl.lit(None, dtype=pl.Float64).alias("correlation"),
        )
    else:
        ladder_saes = saes.join(ladders.select("sae", "layer"), on=["sae", "layer"], how="semi")
        queries = _queries(
            cands.select(
                pl.col("parent_sae").alias("sae"),
                "layer",
                pl.col("parent_feature").alias("feature"),
            ),
            cands.select(
                pl.col("child_sae").alias("sae"), "layer", pl.col("child_feature").alias("feature")
            ),
        )
        directions, _ = sweep_decoders(ladder_saes, queries, load, k=0)
        units = pl.DataFrame(
            [(s, ly, f) for (s, ly), fs in queries.items() for f in fs],
            schema={"sae": pl.String, "layer": pl.Int64, "feature": pl.Int64},
            orient="row",
        )
        acts = unit_activations(activations, units, counted)
        sim = add_similarity(cands, saes, directions, acts, n_positions)
    table = split_shares(
        sim, parents, per_text, specialists, threshold, min_correlation, min_cosine
    )
    return {"ladders": ladders, "splits": table}

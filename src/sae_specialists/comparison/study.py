"""The comparison stage over the workflow's files: analysis tables, per-text files (their
metadata names each SAE's hook and width), tokens and activation shards, SAE weight files.

Three jobs (workflow/rules/comparison.smk), each a function here:
- ``components``: specialists table -> component grid, first family per category, chart;
- ``tracking``: + shards and decoders -> specialist links, next-layer neighbours, related
  features (read by the dashboards), chart;
- ``splits``: + per-text values -> width-ladder splits, chart.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import polars as pl

from ..core.errors import SAEError
from ..core.io import read_metadata, scan_shards
from .coactivation import UNIT, pair_correlations
from .components import component_first, component_grid
from .hooks import width_ladders
from .neighbours import sweep_decoders
from .splitting import add_similarity, parent_texts, split_candidates, split_shares
from .tracking import (
    add_neighbour_correlations,
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


def unit_activations(
    activations: Mapping[Key, Sequence[str]],
    units: pl.DataFrame,
    counted: pl.LazyFrame,
) -> pl.DataFrame:
    """Per-token activations of the ``units`` (sae, layer, feature) at counted positions: the
    sparse rows of the shards, filtered by feature as they are read (never densified)."""
    from ..core.contract import ACTIVATIONS_SCHEMA

    frames = []
    wanted = units.select(
        pl.col("sae").cast(pl.String),
        pl.col("layer").cast(pl.Int64),
        pl.col("feature").cast(pl.Int64),
    ).unique()
    for (sae, layer), group in wanted.group_by("sae", "layer"):
        features = group["feature"].cast(pl.Int32).to_list()
        paths = activations[(sae, int(layer))]
        frames.append(
            scan_shards(paths, ACTIVATIONS_SCHEMA)
            .filter(pl.col("feature").is_in(features))
            .join(counted, on=["text_id", "token_pos"], how="semi")
            .with_columns(
                pl.lit(sae, dtype=pl.String).alias("sae"),
                pl.lit(int(layer), dtype=pl.Int64).alias("layer"),
            )
        )
    schema = {
        "sae": pl.String,
        "layer": pl.Int64,
        "feature": pl.Int64,
        "text_id": pl.String,
        "token_pos": pl.Int64,
        "activation": pl.Float64,
    }
    if not frames:
        return pl.DataFrame(schema=schema)
    return (
        pl.concat(frames, how="vertical")
        .select([pl.col(c).cast(t) for c, t in schema.items()])
        .collect(engine="streaming")
    )


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


def dashboard_features(
    specialists: pl.DataFrame, strongest: pl.DataFrame, frequent: pl.DataFrame
) -> pl.DataFrame:
    """Every feature a dashboard may exist for: each SAE's specialists and the rows of its
    strongest / most frequent tables (the dashboards pick among these)."""
    parts = [
        specialists.filter(pl.col("has_specialist")).select(UNIT),
        strongest.select(UNIT),
        frequent.select(UNIT),
    ]
    return (
        pl.concat(
            [
                p.select(
                    pl.col("sae").cast(pl.String),
                    pl.col("layer").cast(pl.Int64),
                    pl.col("feature").cast(pl.Int64),
                )
                for p in parts
            ]
        )
        .unique()
        .sort(UNIT)
    )


# -- jobs -------------------------------------------------------------------------------------


def components(specialists: pl.DataFrame, saes: pl.DataFrame) -> dict[str, pl.DataFrame]:
    grid = component_grid(specialists, saes)
    return {"components": grid, "component_first": component_first(grid)}


def tracking(
    specialists: pl.DataFrame,
    strongest: pl.DataFrame,
    frequent: pl.DataFrame,
    saes: pl.DataFrame,
    load: Callable[[Key], np.ndarray],
    activations: Mapping[Key, Sequence[str]],
    counted: pl.LazyFrame,
    n_positions: int,
    k: int,
) -> dict[str, pl.DataFrame]:
    """Specialist links, next-layer neighbours and related features (with co-activation)."""
    members = specialist_members(specialists, saes)
    features = dashboard_features(specialists, strongest, frequent)
    directions, related = sweep_decoders(saes, _queries(members, features), load, k)
    pairs = related.select(
        pl.col("sae").alias("sae_a"),
        pl.col("layer").alias("layer_a"),
        pl.col("feature").alias("feature_a"),
        pl.col("other_sae").alias("sae_b"),
        pl.col("other_layer").alias("layer_b"),
        pl.col("other_feature").alias("feature_b"),
    )
    units = pl.concat(
        [
            members.select(UNIT),
            pairs.select(
                pl.col("sae_a").alias("sae"),
                pl.col("layer_a").alias("layer"),
                pl.col("feature_a").alias("feature"),
            ),
            pairs.select(
                pl.col("sae_b").alias("sae"),
                pl.col("layer_b").alias("layer"),
                pl.col("feature_b").alias("feature"),
            ),
        ]
    ).unique()
    acts = unit_activations(activations, units, counted)
    log.info(
        "%d features of interest, %d related rows, %d activation rows",
        units.height,
        related.height,
        acts.height,
    )
    links = specialist_links(members, saes, directions, acts, n_positions)
    nxt = add_neighbour_correlations(next_layer_neighbours(members, related), acts, n_positions)
    if related.height:
        pair_keys = {
            "sae_a": "sae",
            "layer_a": "layer",
            "feature_a": "feature",
            "sae_b": "other_sae",
            "layer_b": "other_layer",
            "feature_b": "other_feature",
        }
        related = pair_correlations(
            acts,
            related.with_columns(pl.col(v).alias(k) for k, v in pair_keys.items()),
            n_positions,
        ).drop(*pair_keys)
    else:
        related = related.with_columns(pl.lit(None, dtype=pl.Float64).alias("correlation"))
    return {
        "specialist_members": members.drop("block", "stage"),
        "specialist_links": links,
        "next_layer": nxt,
        "related_features": related,
    }


def splits(
    specialists: pl.DataFrame,
    saes: pl.DataFrame,
    per_text: pl.LazyFrame,
    load: Callable[[Key], np.ndarray],
    activations: Mapping[Key, Sequence[str]],
    counted: pl.LazyFrame,
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

"""Cross-layer and cross-family tracking of each category's specialists.

- ``specialist_links``: per category, every pair of its specialists (any SAE family, any layer)
  with the cosine of their decoder directions and the correlation of their per-token
  activations (coactivation.py). This is the category's "feature family": its member features
  with family/layer, and how strongly each pair is the same direction / fires together.
- ``next_layer_neighbours``: per specialist, the features of the same family's next layer
  (the next layer in that family's layer list) nearest by decoder cosine (found by the decoder
  sweep, neighbours.py).

Decoder cosines are only taken between SAEs whose rows live in the residual basis
(hooks.comparable); other pairs get a null cosine and a ``cosine_note``.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from .coactivation import pair_correlations
from .frames import Directions, Frame, typed, with_correlation
from .hooks import comparable, hook_order

MEMBER_COLUMNS = ["category", "sae", "layer", "feature", "score", "hook_name", "block", "stage"]
LINK_COLUMNS = [
    "category",
    "sae_a",
    "layer_a",
    "feature_a",
    "sae_b",
    "layer_b",
    "feature_b",
    "relation",
    "cosine",
    "correlation",
    "cosine_note",
]
NEIGHBOUR_COLUMNS = [
    "category",
    "sae",
    "layer",
    "feature",
    "next_layer",
    "rank",
    "next_feature",
    "cosine",
    "correlation",
    "next_is_specialist",
]


def _sae_rows(saes: pl.DataFrame) -> dict[tuple[str, int], dict]:
    return {(r["sae"], int(r["layer"])): r for r in saes.iter_rows(named=True)}


def specialist_members(specialists: pl.DataFrame, saes: pl.DataFrame) -> pl.DataFrame:
    """The specialists (score > 0) of every category, in forward-pass order of their hooks."""
    return (
        specialists.filter(pl.col("has_specialist"))
        .select(typed("category", "sae", "layer", "feature", "score"))
        .join(hook_order(saes), on=["sae", "layer"], how="left")
        .sort("category", "block", "stage", "sae", "layer")
        .select(MEMBER_COLUMNS)
    )


def family_layers(saes: pl.DataFrame) -> dict[str, list[int]]:
    """Each family's layers, ascending."""
    out: dict[str, list[int]] = {}
    for sae, layer in saes.select("sae", "layer").unique().sort("sae", "layer").iter_rows():
        out.setdefault(sae, []).append(int(layer))
    return out


def _relation(a: dict, b: dict, layers: dict[str, list[int]]) -> str:
    if a["sae"] == b["sae"]:
        order = layers[a["sae"]]
        gap = abs(order.index(a["layer"]) - order.index(b["layer"]))
        return "next_layer" if gap == 1 else "same_family"
    return "same_layer" if a["layer"] == b["layer"] else "other_family"


def specialist_links(
    members: pl.DataFrame, saes: pl.DataFrame, directions: Directions, acts: Frame, n_positions: int
) -> pl.DataFrame:
    """Every pair of a category's specialists: relation, decoder cosine, co-activation.

    Pair order: member a is written no later than member b in the forward pass. ``relation``:
    next_layer (same family, adjacent layers of its list), same_family, same_layer (another
    family at the same layer), other_family.
    """
    info = _sae_rows(saes)
    layers = family_layers(saes)
    rows = []
    for category, group in members.group_by("category", maintain_order=True):
        items = group.to_dicts()
        for i, a in enumerate(items):
            for b in items[i + 1 :]:
                note = comparable(info[(a["sae"], a["layer"])], info[(b["sae"], b["layer"])])
                cosine = None
                if note is None:
                    da = directions[(a["sae"], a["layer"], a["feature"])]
                    db = directions[(b["sae"], b["layer"], b["feature"])]
                    cosine = float(np.clip(da @ db, -1.0, 1.0))
                rows.append(
                    {
                        "category": category[0],
                        "sae_a": a["sae"],
                        "layer_a": a["layer"],
                        "feature_a": a["feature"],
                        "sae_b": b["sae"],
                        "layer_b": b["layer"],
                        "feature_b": b["feature"],
                        "relation": _relation(a, b, layers),
                        "cosine": cosine,
                        "cosine_note": note,
                    }
                )
    schema = {
        "category": pl.String,
        "sae_a": pl.String,
        "layer_a": pl.Int64,
        "feature_a": pl.Int64,
        "sae_b": pl.String,
        "layer_b": pl.Int64,
        "feature_b": pl.Int64,
        "relation": pl.String,
        "cosine": pl.Float64,
        "cosine_note": pl.String,
    }
    pairs = pl.DataFrame(rows, schema=schema)
    if pairs.height == 0:
        return pairs.with_columns(pl.lit(None, dtype=pl.Float64).alias("correlation")).select(
            LINK_COLUMNS
        )
    return pair_correlations(acts, pairs, n_positions).select(LINK_COLUMNS)


def next_layer_neighbours(members: pl.DataFrame, related: pl.DataFrame) -> pl.DataFrame:
    """Per specialist: its nearest features in its family's next layer (the ``next_layer`` rows
    of the related-features table, neighbours.sweep_decoders), with ``next_is_specialist``:
    whether the neighbour is the same category's specialist at that layer.

    Families outside the residual basis (hook_z, MLP hidden hooks) and last layers get no rows.
    Columns as NEIGHBOUR_COLUMNS without ``correlation`` (add_neighbour_correlations adds it).
    """
    nxt = related.filter(pl.col("relation") == "next_layer").select(
        "sae",
        "layer",
        "feature",
        pl.col("other_layer").alias("next_layer"),
        "rank",
        pl.col("other_feature").alias("next_feature"),
        "cosine",
    )
    spec = members.select(
        "category",
        "sae",
        pl.col("layer").alias("next_layer"),
        pl.col("feature").alias("specialist_next"),
    )
    return (
        members.select("category", "sae", "layer", "feature")
        .join(nxt, on=["sae", "layer", "feature"], how="inner")
        .join(spec, on=["category", "sae", "next_layer"], how="left")
        .with_columns(
            (pl.col("specialist_next") == pl.col("next_feature"))
            .fill_null(False)
            .alias("next_is_specialist")
        )
        .sort("category", "sae", "layer", "rank")
        .select([c for c in NEIGHBOUR_COLUMNS if c != "correlation"])
    )


def add_neighbour_correlations(
    neighbours: pl.DataFrame, acts: pl.LazyFrame | pl.DataFrame, n_positions: int
) -> pl.DataFrame:
    """``neighbours`` plus the co-activation of each specialist with each neighbour."""
    units = {"sae_a": "sae", "layer_a": "layer", "feature_a": "feature"}
    units |= {"sae_b": "sae", "layer_b": "next_layer", "feature_b": "next_feature"}
    return with_correlation(neighbours, units, acts, n_positions).select(NEIGHBOUR_COLUMNS)

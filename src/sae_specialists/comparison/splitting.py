"""Splitting across widths: how a category's specialist in the narrowest SAE of a width ladder
(hooks.width_ladders) is covered by the features of each wider SAE.

For a ladder (families reading the same hook at the same layer with different d_sae) and a
category whose specialist p exists at the narrowest width (has_specialist):
- parent texts P: the category's texts where p fires (per-text value > threshold);
- candidates in a wider SAE: its features that fire on at least one text of P;
- children: candidates whose per-token activations correlate with p's (co-activation over the
  counted positions of all study texts) at least ``min_correlation``, or whose decoder cosine
  with p is at least ``min_cosine`` (residual-basis SAEs only);
- each text of P goes to the child with the largest per-text value on it among the children
  firing there (ties: lower feature id); a child's ``share`` is its number of texts over |P|.
  Texts no child fires on are uncovered (1 - sum of shares). ``coverage`` is the
  non-exclusive version: the fraction of P where the child fires at all.
This is a text-level version of the absorption/splitting view of SAEBench's absorption metric:
a feature that splits shows children with shares summing to about 1, each more specific.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from .frames import Directions, Frame, typed, with_correlation
from .hooks import comparable

PARENT_KEYS = ["ladder", "layer", "category", "parent_sae", "parent_feature"]
CHILD_KEYS = ["child_sae", "child_feature"]
SPLIT_COLUMNS = [
    "category",
    "ladder",
    "layer",
    "parent_sae",
    "parent_d_sae",
    "parent_feature",
    "n_parent_texts",
    "child_sae",
    "child_d_sae",
    "rung",
    "child_feature",
    "cosine",
    "correlation",
    "n_covered",
    "coverage",
    "n_assigned",
    "share",
    "n_out",
    "child_is_specialist",
]


def _typed_per_text(per_text: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame:
    return per_text.lazy().select(typed("sae", "layer", "text_id", "category", "feature", "value"))


def parent_texts(
    ladders: pl.DataFrame,
    specialists: pl.DataFrame,
    per_text: pl.LazyFrame | pl.DataFrame,
    threshold: float,
) -> pl.DataFrame:
    """Per ladder and category with a specialist at the narrowest width: the texts of the
    category where it fires. Columns PARENT_KEYS + parent_d_sae, text_id, value."""
    narrowest = ladders.filter(pl.col("rung") == 0).select(
        "ladder", "layer", pl.col("sae").alias("parent_sae"), pl.col("d_sae").alias("parent_d_sae")
    )
    parents = narrowest.join(
        specialists.filter(pl.col("has_specialist")).select(
            pl.col("sae").cast(pl.String).alias("parent_sae"),
            pl.col("layer").cast(pl.Int64),
            pl.col("category").cast(pl.String),
            pl.col("feature").cast(pl.Int64).alias("parent_feature"),
        ),
        on=["parent_sae", "layer"],
        how="inner",
    )
    fired = _typed_per_text(per_text).filter(pl.col("value") > threshold)
    return (
        parents.lazy()
        .join(
            fired.rename({"sae": "parent_sae", "feature": "parent_feature"}),
            on=["parent_sae", "layer", "category", "parent_feature"],
            how="inner",
        )
        .select(*PARENT_KEYS, "parent_d_sae", "text_id", "value")
        .sort(*PARENT_KEYS, "text_id")
        .collect()
    )


def split_candidates(
    ladders: pl.DataFrame,
    parents: pl.DataFrame,
    per_text: pl.LazyFrame | pl.DataFrame,
    threshold: float,
) -> pl.DataFrame:
    """Features of each wider SAE of the ladder firing on at least one parent text.

    Columns PARENT_KEYS + child_sae, child_d_sae, rung, child_feature, n_covered."""
    wider = ladders.filter(pl.col("rung") > 0).select(
        "ladder",
        "layer",
        pl.col("sae").alias("child_sae"),
        pl.col("d_sae").alias("child_d_sae"),
        "rung",
    )
    parent_sets = parents.select(*PARENT_KEYS, "text_id")
    fired = (
        _typed_per_text(per_text)
        .filter(pl.col("value") > threshold)
        .select(
            pl.col("sae").alias("child_sae"),
            "layer",
            "text_id",
            pl.col("feature").alias("child_feature"),
        )
    )
    return (
        parent_sets.lazy()
        .join(wider.lazy(), on=["ladder", "layer"], how="inner")
        .join(fired, on=["child_sae", "layer", "text_id"], how="inner")
        .group_by(*PARENT_KEYS, "child_sae", "child_d_sae", "rung", "child_feature")
        .agg(pl.len().cast(pl.Int64).alias("n_covered"))
        .sort(*PARENT_KEYS, "rung", "child_feature")
        .collect()
    )


def add_similarity(
    candidates: pl.DataFrame,
    saes: pl.DataFrame,
    directions: Directions,
    acts: Frame,
    n_positions: int,
) -> pl.DataFrame:
    """``candidates`` plus the decoder ``cosine`` and the ``correlation`` with the parent.

    ``directions``: unit decoder row of every parent and candidate (neighbours.sweep_decoders).
    """
    info = {(r["sae"], int(r["layer"])): r for r in saes.iter_rows(named=True)}
    cosines = []
    for row in candidates.iter_rows(named=True):
        parent = (row["parent_sae"], row["layer"])
        child = (row["child_sae"], row["layer"])
        if comparable(info[parent], info[child]) is not None:
            cosines.append(None)
            continue
        a = directions[(*parent, row["parent_feature"])]
        b = directions[(*child, row["child_feature"])]
        cosines.append(float(np.clip(a @ b, -1.0, 1.0)))
    with_cos = candidates.with_columns(pl.Series("cosine", cosines, dtype=pl.Float64))
    units = {"sae_a": "parent_sae", "layer_a": "layer", "feature_a": "parent_feature"}
    units |= {"sae_b": "child_sae", "layer_b": "layer", "feature_b": "child_feature"}
    return with_correlation(with_cos, units, acts, n_positions)


def split_shares(
    candidates: pl.DataFrame,
    parents: pl.DataFrame,
    per_text: pl.LazyFrame | pl.DataFrame,
    specialists: pl.DataFrame,
    threshold: float,
    min_correlation: float,
    min_cosine: float,
) -> pl.DataFrame:
    """The children of each parent in each wider SAE, with their share of the parent's texts.

    ``candidates`` comes from add_similarity. Columns SPLIT_COLUMNS; order: category, ladder,
    rung, share descending, correlation descending, child feature.
    """
    n_parent = parents.group_by(PARENT_KEYS).agg(
        pl.col("parent_d_sae").first(), pl.len().cast(pl.Int64).alias("n_parent_texts")
    )
    children = candidates.filter(
        (pl.col("correlation").fill_null(-2.0) >= min_correlation)
        | (pl.col("cosine").fill_null(-2.0) >= min_cosine)
    )
    pt = _typed_per_text(per_text)
    child_values = (
        parents.lazy()
        .select(*PARENT_KEYS, "text_id")
        .join(children.lazy(), on=PARENT_KEYS, how="inner")
        .join(
            pt.select(
                pl.col("sae").alias("child_sae"),
                "layer",
                "text_id",
                pl.col("feature").alias("child_feature"),
                "value",
            ),
            on=["child_sae", "layer", "text_id", "child_feature"],
            how="inner",
        )
        .filter(pl.col("value") > threshold)
    )
    owners = (
        child_values.sort(
            *PARENT_KEYS,
            "child_sae",
            "text_id",
            "value",
            "child_feature",
            descending=[False] * (len(PARENT_KEYS) + 2) + [True, False],
        )
        .group_by(*PARENT_KEYS, "child_sae", "text_id", maintain_order=True)
        .first()
        .group_by(*PARENT_KEYS, "child_sae", "child_feature")
        .agg(pl.len().cast(pl.Int64).alias("n_assigned"))
        .collect()
    )
    fired = pt.filter(pl.col("value") > threshold)
    outside = (
        children.lazy()
        .select("category", "child_sae", "layer", "child_feature")
        .unique()
        .join(
            fired.select(
                pl.col("sae").alias("child_sae"),
                "layer",
                pl.col("feature").alias("child_feature"),
                pl.col("category").alias("text_category"),
            ),
            on=["child_sae", "layer", "child_feature"],
            how="inner",
        )
        .filter(pl.col("text_category") != pl.col("category"))
        .group_by("category", "child_sae", "layer", "child_feature")
        .agg(pl.len().cast(pl.Int64).alias("n_out"))
        .collect()
    )
    spec = specialists.filter(pl.col("has_specialist")).select(
        pl.col("sae").cast(pl.String).alias("child_sae"),
        pl.col("layer").cast(pl.Int64),
        pl.col("category").cast(pl.String),
        pl.col("feature").cast(pl.Int64).alias("specialist_feature"),
    )
    return (
        children.join(n_parent, on=PARENT_KEYS, how="left")
        .join(owners, on=[*PARENT_KEYS, "child_sae", "child_feature"], how="left")
        .join(outside, on=["category", "child_sae", "layer", "child_feature"], how="left")
        .join(spec, on=["child_sae", "layer", "category"], how="left")
        .with_columns(
            pl.col("n_assigned", "n_out").fill_null(0),
            (pl.col("n_covered") / pl.col("n_parent_texts")).alias("coverage"),
            (pl.col("specialist_feature") == pl.col("child_feature"))
            .fill_null(False)
            .alias("child_is_specialist"),
        )
        .with_columns((pl.col("n_assigned") / pl.col("n_parent_texts")).alias("share"))
        .sort(
            "category",
            "ladder",
            "rung",
            "share",
            "correlation",
            "child_feature",
            descending=[False, False, False, True, True, False],
            nulls_last=True,
        )
        .select(SPLIT_COLUMNS)
    )

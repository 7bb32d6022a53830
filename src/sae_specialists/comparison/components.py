"""Component comparison: which SAE family (residual, attention-out, MLP-out, ...) carries each
category's specialist, layer by layer, and which family has one first.

Inputs are the analysis stage's ``specialists`` table (one row per sae, layer, category; THE
specialist rule, docs/analyses.md) and the SAE list ``saes`` (sae, layer, hook_name, d_sae,
d_in; comparison/hooks.py).

Definitions (docs/comparison.md):
- strongest family at a layer: among the families with a specialist (score > 0) for the
  category at that layer, the highest score n_in - n_out (same texts, same threshold, so the
  scores compare); ties: more texts inside (n_in), then the hook written earlier in the forward
  pass, then the family name.
- earliest layer of a family: its lowest layer with a specialist for the category.
- first family: the family whose earliest specialist sits at the hook written earliest in the
  forward pass (block, then the order inside a block: resid_pre < attn hook_z < attn_out <
  resid_mid < mlp hooks < mlp_out < resid_post). ``order`` ranks the families (dense: families
  at the same hook share a rank); a family with no specialist has no order.
"""

from __future__ import annotations

import polars as pl

from .frames import typed
from .hooks import hook_order

SPECIALIST_COLUMNS = ["feature", "score", "n_in", "n_out"]  # a cell's specialist
GRID_COLUMNS = [
    *("category", "layer", "sae", "hook_name", "block", "stage"),
    *SPECIALIST_COLUMNS,
    *("has_specialist", "strongest", "earliest"),
]
FIRST_COLUMNS = [
    "category",
    "sae",
    "first_layer",
    "hook_name",
    *SPECIALIST_COLUMNS,
    "order",
    "first",
]


def component_grid(specialists: pl.DataFrame, saes: pl.DataFrame) -> pl.DataFrame:
    """One row per (category, layer, sae) with the specialist and the strongest/earliest flags."""
    columns = ["category", "layer", "sae", "feature", "score", "n_in", "n_out", "has_specialist"]
    grid = specialists.select(typed(*columns)).join(
        hook_order(saes), on=["sae", "layer"], how="left"
    )
    missing = grid.filter(pl.col("hook_name").is_null())
    if missing.height:
        pairs = sorted(set(zip(missing["sae"], missing["layer"], strict=True)))
        raise ValueError(f"no hook_name for SAE (family, layer) {pairs[:5]}")
    found = grid.filter(pl.col("has_specialist"))
    strongest = (
        found.sort(
            ["category", "layer", "score", "n_in", "block", "stage", "sae"],
            descending=[False, False, True, True, False, False, False],
        )
        .group_by("category", "layer", maintain_order=True)
        .first()
        .select("category", "layer", "sae", pl.lit(True).alias("strongest"))
    )
    earliest = (
        found.group_by("category", "sae")
        .agg(pl.col("layer").min())
        .with_columns(pl.lit(True).alias("earliest"))
    )
    return (
        grid.join(strongest, on=["category", "layer", "sae"], how="left")
        .join(earliest, on=["category", "sae", "layer"], how="left")
        .with_columns(pl.col("strongest", "earliest").fill_null(False))
        .sort("category", "layer", "block", "stage", "sae")
        .select(GRID_COLUMNS)
    )


def component_first(grid: pl.DataFrame) -> pl.DataFrame:
    """Per (category, sae): the family's earliest specialist, and the order in which the
    families first carry one (1 = first written in the forward pass)."""
    first_layer = pl.col("layer").alias("first_layer")
    first = grid.filter(pl.col("earliest")).select(
        "category", "sae", first_layer, "hook_name", "block", "stage", *SPECIALIST_COLUMNS
    )
    ranked = first.with_columns(
        (pl.col("block") * 100 + pl.col("stage"))
        .rank("dense")
        .over("category")
        .cast(pl.Int64)
        .alias("order")
    ).with_columns((pl.col("order") == 1).alias("first"))
    families = grid.select("category", "sae").unique()
    return (
        families.join(ranked, on=["category", "sae"], how="left")
        .with_columns(pl.col("first").fill_null(False))
        .sort("category", pl.col("order").fill_null(10**9), "sae")
        .select(FIRST_COLUMNS)
    )

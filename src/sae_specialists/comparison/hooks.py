"""Where an SAE reads in the transformer: hook order, residual basis, width ladders.

All functions take the SAE list as a frame ``saes`` with one row per (sae, layer): columns
``sae`` (family name), ``layer`` (the configured layer), ``hook_name`` (from the SAE's own
metadata), ``d_sae`` and ``d_in``. The comparison never parses an SAE id: the hook comes from
the shards' metadata, which the extraction job copied from the SAE (docs/comparison.md).
"""

from __future__ import annotations

import re

import polars as pl

_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")

# Order of computation inside a TransformerLens block: a hook with a lower stage is written
# earlier. resid_post of block L is resid_pre of block L + 1 (same values), so (L, 8) < (L+1, 0).
BLOCK_STAGES = {
    "hook_resid_pre": 0,
    "ln1.hook_normalized": 1,
    "attn.hook_q": 1,
    "attn.hook_k": 1,
    "attn.hook_v": 1,
    "attn.hook_pattern": 1,
    "attn.hook_z": 2,
    "hook_attn_out": 3,
    "hook_resid_mid": 4,
    "ln2.hook_normalized": 5,
    "mlp.hook_pre": 5,
    "mlp.hook_post": 6,
    "hook_mlp_out": 7,
    "hook_resid_post": 8,
}
UNKNOWN_STAGE = 9  # a hook of a block this table does not know: after the block's known hooks

# Hooks whose activations live in the residual-stream basis (d_model): an SAE reading one of
# them decodes into that basis, so decoder directions of such SAEs are comparable by cosine.
# hook_z (per-head values, n_heads x d_head) and the MLP's hidden hooks (d_mlp) are not: their
# decoder rows would have to go through W_O / W_out first, which needs the model.
RESIDUAL_SUFFIXES = (
    "hook_resid_pre",
    "hook_resid_mid",
    "hook_resid_post",
    "hook_attn_out",
    "hook_mlp_out",
)
RESIDUAL_OUTSIDE_BLOCKS = ("hook_embed", "hook_pos_embed", "ln_final.hook_normalized")

NOT_RESIDUAL_NOTE = (
    "{hook}: decoder rows are not in the residual basis (hook_z: per-head values; MLP hidden "
    "hooks: d_mlp), so no decoder cosine with other SAEs; co-activation only"
)


def hook_position(hook_name: str) -> tuple[int, int]:
    """(block, stage) of a hook in the order the forward pass writes it.

    Hooks before the blocks (embeddings) are (-1, 0); other hooks outside the blocks come after
    every block ((10**6, 0)).
    """
    match = _BLOCK.match(hook_name)
    if match is None:
        return (-1, 0) if hook_name in ("hook_embed", "hook_pos_embed") else (10**6, 0)
    block, rest = int(match.group(1)), match.group(2)
    return block, BLOCK_STAGES.get(rest, UNKNOWN_STAGE)


def in_residual_basis(hook_name: str) -> bool:
    """Whether an SAE reading this hook decodes into the residual-stream basis."""
    match = _BLOCK.match(hook_name)
    if match is None:
        return hook_name in RESIDUAL_OUTSIDE_BLOCKS
    return match.group(2) in RESIDUAL_SUFFIXES


def with_positions(saes: pl.DataFrame) -> pl.DataFrame:
    """``saes`` plus ``block``, ``stage`` (hook_position) and ``residual`` (in_residual_basis)."""
    hooks = saes["hook_name"].to_list()
    positions = [hook_position(h) for h in hooks]
    return saes.with_columns(
        pl.Series("block", [p[0] for p in positions], dtype=pl.Int64),
        pl.Series("stage", [p[1] for p in positions], dtype=pl.Int64),
        pl.Series("residual", [in_residual_basis(h) for h in hooks], dtype=pl.Boolean),
    )


def hook_order(saes: pl.DataFrame) -> pl.DataFrame:
    """sae, layer, hook_name, block, stage of every SAE row: where it reads in the forward pass,
    to join onto per-(sae, layer) rows."""
    return with_positions(saes).select(
        pl.col("sae").cast(pl.String), pl.col("layer").cast(pl.Int64), "hook_name", "block", "stage"
    )


def comparable(a: dict, b: dict) -> str | None:
    """None when the decoder rows of SAE rows ``a`` and ``b`` can be compared by cosine; else
    the reason (kept in the tables' ``cosine_note`` column)."""
    for row in (a, b):
        if not in_residual_basis(row["hook_name"]):
            return NOT_RESIDUAL_NOTE.format(hook=row["hook_name"])
    if a["d_in"] != b["d_in"]:
        return f"d_in differs ({a['d_in']} vs {b['d_in']}): SAEs of different models"
    return None


COMPONENT_OUTPUTS = ("hook_attn_out", "hook_mlp_out")  # what a block's attention / MLP adds
RESIDUAL_STREAM = ("hook_resid_pre", "hook_resid_mid", "hook_resid_post")


def _suffix(hook_name: str) -> str:
    match = _BLOCK.match(hook_name)
    return match.group(2) if match else hook_name


def written_into(saes: pl.DataFrame) -> dict[tuple[str, int], list[tuple[str, int]]]:
    """Which residual SAEs read what a component SAE's features write.

    A component SAE (``hook_attn_out`` / ``hook_mlp_out`` of block L) decodes what that
    attention or MLP adds to the residual stream, which carries it on from there: resid_mid of
    block L (attention only), resid_post of L, resid_pre of L + 1 and every later one. For each
    family reading the residual stream itself (resid_pre/mid/post) with the same d_in, the
    reader is its first SAE written after the component (hook_position order): (family, layer)
    of the component -> [(family, layer) of each reader], one per residual family, sorted.
    """
    rows = with_positions(saes).to_dicts()
    components = [r for r in rows if _suffix(r["hook_name"]) in COMPONENT_OUTPUTS]
    residual = sorted(
        (r for r in rows if _suffix(r["hook_name"]) in RESIDUAL_STREAM),
        key=lambda r: (r["block"], r["stage"], r["layer"]),
    )
    out = {}
    for comp in components:
        after = (comp["block"], comp["stage"])
        readers = {}
        for r in residual:
            if (r["block"], r["stage"]) > after and r["d_in"] == comp["d_in"]:
                readers.setdefault(r["sae"], (r["sae"], int(r["layer"])))
        if readers:
            out[(comp["sae"], int(comp["layer"]))] = sorted(readers.values())
    return out


def width_ladders(saes: pl.DataFrame) -> pl.DataFrame:
    """SAE families that read the same hook at the same layer with different widths.

    Returns one row per member: ``ladder`` (``<hook_name>``, the hook names its block),
    ``layer``, ``sae``, ``d_sae``, ``rung`` (0 = narrowest; order: d_sae, then family name).
    Hooks read by only one width form no ladder and have no row.
    """
    members = saes.select("sae", "layer", "hook_name", "d_sae").unique()
    widths = members.group_by("layer", "hook_name").agg(pl.col("d_sae").n_unique().alias("n"))
    ladders = members.join(widths.filter(pl.col("n") >= 2), on=["layer", "hook_name"])
    return (
        ladders.sort("layer", "hook_name", "d_sae", "sae")
        .with_columns(
            pl.int_range(pl.len()).over("layer", "hook_name").cast(pl.Int64).alias("rung")
        )
        .select(
            pl.col("hook_name").alias("ladder"),
            pl.col("layer").cast(pl.Int64),
            "sae",
            pl.col("d_sae").cast(pl.Int64),
            "rung",
        )
    )

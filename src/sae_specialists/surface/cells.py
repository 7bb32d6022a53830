"""The token measures of one (family, layer), as table rows (docs/surface.md, sections 1-2).

A specialist is a row of the analysis' specialists table with ``has_specialist`` (the study's
rule on every text). Its folds are the validation stage's: ``category_folds`` of its category
with ``validation.folds`` and ``validation.seed`` (a category with fewer than two texts has no
folds: its R²s are null).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from ..core.tokens import token_display
from ..validation.folds import category_folds
from .data import LayerTokens
from .measures import Surface, measure

SPECIALIST_SCHEMA = {
    "sae": pl.String,
    "layer": pl.Int64,
    "category": pl.String,
    "feature": pl.Int64,
    "n_positions": pl.Int64,
    "n_folds": pl.Int64,
    "token_r2": pl.Float64,
    "bigram_r2": pl.Float64,
    "token_r2_seen": pl.Float64,
    "unseen_mass": pl.Float64,
    "top5_mass": pl.Float64,
    "top5_tokens": pl.String,
    "n_triggers": pl.Int64,
    "trigger_tokens": pl.String,
    "trigger_mass_in": pl.Float64,
    "n_trigger_in": pl.Int64,
    "n_trigger_out": pl.Int64,
    "mean_in": pl.Float64,
    "mean_out": pl.Float64,
    "outside_ratio": pl.Float64,
}
TOKEN_SCHEMA = {
    "sae": pl.String,
    "layer": pl.Int64,
    "category": pl.String,
    "feature": pl.Int64,
    "token_id": pl.Int64,
    "token": pl.String,
    "rank": pl.Int64,
    "mass_share": pl.Float64,
    "mass_share_in": pl.Float64,
    "trigger": pl.Boolean,
    "n_in": pl.Int64,
    "n_out": pl.Int64,
    "mean_in": pl.Float64,
    "mean_out": pl.Float64,
}


def position_folds(layer: LayerTokens, category: str, n_folds: int, seed: int):
    """(fold per position or None, number of folds, inside per position) for ``category``."""
    c = layer.categories.index(category)
    pos = layer.positions
    inside = pos.cat_index[pos.text] == c
    folds = category_folds(pos.cat_index, c, n_folds, seed)
    if folds is None:
        return None, 0, inside
    return folds[pos.text], int(folds.max()) + 1, inside


def _token_list(layer: LayerTokens, ids, shares) -> str:
    """'tok' 0.42, 'tok' 0.13, ... (the tokens as the summaries show them)."""
    return ", ".join(
        f"{token_display(layer.token_bytes[int(t)])} {s:.2f}"
        for t, s in zip(ids, shares, strict=True)
    )


def specialist_rows(
    sae: str,
    layer_id: int,
    category: str,
    feature: int,
    layer: LayerTokens,
    y: np.ndarray,
    n_folds: int,
    seed: int,
    trigger_share: float,
    max_triggers: int,
) -> tuple[dict, list[dict]]:
    """(the specialist's row, its token rows)."""
    fold, k, inside = position_folds(layer, category, n_folds, seed)
    s: Surface = measure(
        layer.positions,
        y,
        np.zeros(len(y), dtype=np.int64) if fold is None else fold,
        inside,
        trigger_share,
        max_triggers,
    )
    top = sorted((r for r in s.tokens if r.rank <= 5), key=lambda r: r.rank)
    trig = [r for t in s.triggers for r in s.tokens if r.token_id == int(t)]
    key = dict(sae=sae, layer=layer_id, category=category, feature=feature)
    row = dict(
        **key,
        n_positions=s.n_positions,
        n_folds=k,
        token_r2=s.token_r2 if fold is not None else None,
        bigram_r2=s.bigram_r2 if fold is not None else None,
        token_r2_seen=s.token_r2_seen if fold is not None else None,
        unseen_mass=s.unseen_mass if fold is not None else None,
        top5_mass=s.top5_mass,
        top5_tokens=_token_list(layer, [r.token_id for r in top], [r.mass_share for r in top]),
        n_triggers=len(s.triggers),
        trigger_tokens=_token_list(
            layer, [r.token_id for r in trig], [r.mass_share_in for r in trig]
        ),
        trigger_mass_in=s.trigger_mass_in,
        n_trigger_in=s.outside.n_in,
        n_trigger_out=s.outside.n_out,
        mean_in=s.outside.mean_in,
        mean_out=s.outside.mean_out,
        outside_ratio=s.outside.ratio,
    )
    tokens = [
        dict(
            **key,
            token_id=r.token_id,
            token=token_display(layer.token_bytes[r.token_id]),
            rank=r.rank,
            mass_share=r.mass_share,
            mass_share_in=r.mass_share_in,
            trigger=r.trigger,
            n_in=r.n_in,
            n_out=r.n_out,
            mean_in=r.mean_in,
            mean_out=r.mean_out,
        )
        for r in s.tokens
    ]
    return row, tokens


def frames(rows: list[dict], tokens: list[dict]) -> tuple[pl.DataFrame, pl.DataFrame]:
    return (
        pl.DataFrame(rows, schema=SPECIALIST_SCHEMA)
        if rows
        else pl.DataFrame(schema=SPECIALIST_SCHEMA),
        pl.DataFrame(tokens, schema=TOKEN_SCHEMA) if tokens else pl.DataFrame(schema=TOKEN_SCHEMA),
    )

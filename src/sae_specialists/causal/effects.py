"""The causal effects table: one row per (cell, ablation mode), from the per-text Δloss of the
layer jobs (no model needed; docs/causal.md). Column meanings: ``causal.stats``."""

from __future__ import annotations

import numpy as np
import polars as pl

from .stats import EFFECT_KEYS, cell_effect, cell_rng, mean_over

EFFECT_COLUMNS = [
    *("sae", "layer", "category", "feature", "mode", "controls", "n_in", "n_out"),
    *EFFECT_KEYS,
    *(f"control_{key}" for key in EFFECT_KEYS),
    *("vs_control", "vs_control_low", "vs_control_high"),
    *("above_control", "above_zero", "detector_only", "verdict"),
    *("top1_changed_share", "top1_positions", "control_top1_changed_share"),
]
EFFECTS_SCHEMA = {
    **{c: pl.Float64 for c in EFFECT_COLUMNS},
    "sae": pl.String,
    "layer": pl.Int64,
    "category": pl.String,
    "feature": pl.Int64,
    "mode": pl.String,
    "controls": pl.String,
    "n_in": pl.Int64,
    "n_out": pl.Int64,
    "above_control": pl.Boolean,
    "above_zero": pl.Boolean,
    "detector_only": pl.Boolean,
    "verdict": pl.String,
    "top1_positions": pl.Int64,
}


def _delta(per_text: pl.DataFrame, feature: int, mode: str, text_ids: list[str]) -> np.ndarray:
    """Per-text Δloss of one ablation in ``text_ids`` order (NaN: no loss position)."""
    rows = per_text.filter((pl.col("feature") == feature) & (pl.col("mode") == mode))
    by_id = dict(zip(rows["text_id"].to_list(), rows["delta_loss"].to_list(), strict=True))
    return np.array([np.nan if by_id.get(t) is None else by_id[t] for t in text_ids])


def top1_changed(
    per_text: pl.DataFrame, features: int | list[int], mode: str, category: str
) -> tuple[float | None, int]:
    """Over the loss positions of the category's texts: the share whose top-1 next-token
    prediction the ablation changes (None without a loss position), and their number. Several
    ``features`` (a cell's controls, each ablated alone): their changes and positions pooled."""
    features = [features] if isinstance(features, int) else list(features)
    rows = per_text.filter(
        pl.col("feature").is_in(features)
        & (pl.col("mode") == mode)
        & (pl.col("category") == category)
    )
    positions = int(rows["n_positions"].sum())
    changed = int(rows["top1_changed"].sum())
    return (changed / positions if positions else None), positions


def layer_effects(
    cells: pl.DataFrame,
    per_text: pl.DataFrame,
    resamples: int,
    seed: int,
    ci: float,
    min_effect: float,
) -> pl.DataFrame:
    """Effects of one (family, layer): ``cells`` and ``per_text`` as the layer job wrote them;
    ``min_effect``: the smallest Δloss (nats) that counts (stats.cell_effect)."""
    rows = []
    texts = (
        per_text.select("text_id", "category").unique(subset="text_id", maintain_order=True)
        if per_text.height
        else pl.DataFrame(schema={"text_id": pl.String, "category": pl.String})
    )
    text_ids = texts["text_id"].to_list()
    text_categories = np.asarray(texts["category"].to_list(), dtype=object)
    modes = sorted(set(per_text["mode"].to_list())) if per_text.height else []
    for cell in cells.iter_rows(named=True):
        in_category = text_categories == cell["category"]
        for mode in modes:
            spec = _delta(per_text, cell["feature"], mode, text_ids)
            control = mean_over([_delta(per_text, f, mode, text_ids) for f in cell["controls"]])
            rng = cell_rng(seed, cell["sae"], cell["layer"], cell["category"], f"bootstrap {mode}")
            effect = cell_effect(spec, control, in_category, resamples, rng, ci, min_effect)
            share, positions = top1_changed(per_text, cell["feature"], mode, cell["category"])
            control_share, _ = top1_changed(per_text, cell["controls"], mode, cell["category"])
            rows.append(
                {
                    "sae": cell["sae"],
                    "layer": cell["layer"],
                    "category": cell["category"],
                    "feature": cell["feature"],
                    "mode": mode,
                    "controls": " ".join(str(f) for f in cell["controls"]),
                    **effect,
                    "top1_changed_share": share,
                    "top1_positions": positions,
                    "control_top1_changed_share": control_share,
                }
            )
    if not rows:
        return pl.DataFrame(schema={c: EFFECTS_SCHEMA[c] for c in EFFECT_COLUMNS})
    return pl.DataFrame(rows, schema_overrides=EFFECTS_SCHEMA).select(EFFECT_COLUMNS)


def verdicts(effects: pl.DataFrame) -> pl.DataFrame:
    """One row per cell: the zero-ablation verdict (the headline), as the report shows it."""
    return (
        effects.filter(pl.col("mode") == "zero")
        .select(
            "sae",
            "layer",
            "category",
            "feature",
            "in_mean",
            "out_mean",
            "ratio",
            "control_in_mean",
            "detector_only",
            "verdict",
        )
        .sort("sae", "layer", "category")
    )

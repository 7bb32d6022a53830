"""Per-layer orchestration of the shard-only part of the stage: held-out selection, the random
floor and the shuffled-label null for every category of one (SAE family, layer), and the
per-cell table joining them with the baselines and the verdict."""

from __future__ import annotations

import numpy as np
import polars as pl

from ..analysis.dense import LayerData
from .floor import random_floor
from .folds import category_folds
from .heldout import HeldOut, feature_values, heldout_category
from .metrics import auroc
from .null import NullCategory, null_category, null_layer, p_value, percentile95
from .verdict import verdict

CELL_SCHEMA = {
    "sae": pl.String,
    "layer": pl.Int64,
    "category": pl.String,
    "feature": pl.Int64,
    "score": pl.Int64,
    "has_specialist": pl.Boolean,
    "in_sample_auroc": pl.Float64,
    "n_folds": pl.Int64,
    "heldout_auroc": pl.Float64,
    "heldout_auroc_std": pl.Float64,
    "heldout_auroc_min": pl.Float64,
    "heldout_auroc_max": pl.Float64,
    "heldout_precision": pl.Float64,
    "heldout_recall": pl.Float64,
    "heldout_f1": pl.Float64,
    "heldout_balanced_accuracy": pl.Float64,
    "fold_agreement": pl.Float64,
    "floor_auroc": pl.Float64,
    "floor_auroc_p95": pl.Float64,
    "floor_draws": pl.Int64,
    "p_value": pl.Float64,
    "p_value_auroc": pl.Float64,
    "null_score_p95": pl.Float64,
    "null_auroc_p95": pl.Float64,
    "permutations": pl.Int64,
    "threshold": pl.Float64,
    "candidates": pl.Int64,
    "seed": pl.Int64,
}


def validate_layer(data: LayerData, labels: np.ndarray, *, threshold: float,
                   candidates: int | None, n_folds: int, seed: int, draws: int,
                   tolerance: float = 0.05, min_pool: int = 10
                   ) -> tuple[list[HeldOut], list[NullCategory], list[dict]]:
    """Held-out results, null winners and cell rows of every category of one layer.

    labels: int64 [N, n_texts] shuffled category index per permutation
    (``data.cat_index[null.permutations(...)]``)."""
    nl = null_layer(data, threshold, candidates)
    held_all, nulls, rows = [], [], []
    for c, category in enumerate(data.categories):
        y = data.cat_index == c
        folds = category_folds(data.cat_index, c, n_folds, seed)
        nres = null_category(nl, labels, c, candidates)
        nulls.append(nres)
        row = dict.fromkeys(CELL_SCHEMA)
        row.update(sae=data.sae, layer=data.layer, category=category,
                   permutations=int(labels.shape[0]), threshold=float(threshold),
                   candidates=candidates, seed=int(seed), floor_draws=0, n_folds=0)
        if folds is not None:
            held = heldout_category(data, c, folds, threshold, candidates)
            held_all.append(held)
            row.update(held.summary())
            row.update(random_floor(data, held, draws, seed, tolerance, min_pool))
            feature, score = held.full_feature, held.full_score
        else:
            from ..analysis.selection import select

            sel = select(data, c, None, threshold, candidates)
            feature, score = int(sel.feature[0]), int(sel.score[0])
        real_auc = auroc(y, feature_values(data, feature))
        row.update(
            feature=feature if feature >= 0 else None,
            score=score if feature >= 0 else None,
            has_specialist=bool(feature >= 0 and score > 0),
            in_sample_auroc=None if np.isnan(real_auc) else real_auc,
        )
        if labels.shape[0]:
            row.update(
                p_value=p_value(nres.score, score if feature >= 0 else 0),
                p_value_auroc=None if np.isnan(real_auc) else p_value(nres.auroc, real_auc),
                null_score_p95=percentile95(nres.score),
                null_auroc_p95=percentile95(nres.auroc),
            )
        rows.append(row)
    return held_all, nulls, rows


def cells_frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=CELL_SCHEMA) if rows else pl.DataFrame(schema=CELL_SCHEMA)


def baseline_means(baselines: pl.DataFrame) -> pl.DataFrame:
    """Per (sae, layer, category, method column): mean held-out AUROC and balanced accuracy
    over folds; method column = diffmean, dense_probe or ksparse_<k>."""
    col = (
        pl.when(pl.col("k").is_null())
        .then(pl.col("method"))
        .otherwise(pl.col("method") + pl.lit("_") + pl.col("k").cast(pl.String))
    )
    return (
        baselines.with_columns(col.alias("baseline"))
        .group_by("sae", "layer", "category", "baseline")
        .agg(pl.col("auroc").mean().alias("auroc"),
             pl.col("balanced_accuracy").mean().alias("balanced_accuracy"))
        .sort("sae", "layer", "category", "baseline")
    )


def with_verdicts(cells: pl.DataFrame, baselines: pl.DataFrame | None, *, alpha: float,
                  min_auroc: float, probe_margin: float, shown: tuple[str, ...]
                  ) -> pl.DataFrame:
    """Cell table + one ``<baseline>_auroc`` / ``<baseline>_balanced_accuracy`` column pair per
    baseline (when given) + the verdict columns."""
    means: dict[tuple, dict[str, float | None]] = {}
    wide = cells
    if baselines is not None and baselines.height:
        bm = baseline_means(baselines)
        for sae, layer, category, name, auc, _ in bm.iter_rows():
            means.setdefault((sae, layer, category), {})[name] = auc
        piv = bm.pivot(on="baseline", index=["sae", "layer", "category"],
                       values=["auroc", "balanced_accuracy"], separator="|")
        piv = piv.rename({c: _pivot_name(c) for c in piv.columns if "|" in c})
        wide = cells.join(piv, on=["sae", "layer", "category"], how="left")
    verdicts = [
        verdict(row, means.get((row["sae"], row["layer"], row["category"]), {}), alpha=alpha,
                min_auroc=min_auroc, probe_margin=probe_margin, shown=shown)
        for row in cells.iter_rows(named=True)
    ]
    vschema = {"generalises": pl.Boolean, "beats_null": pl.Boolean, "loses_to_probe": pl.Boolean,
               "best_baseline": pl.String, "best_baseline_auroc": pl.Float64,
               "fails_heldout": pl.Boolean, "verdict": pl.String, "verdict_text": pl.String}
    return pl.concat([wide, pl.DataFrame(verdicts, schema=vschema)], how="horizontal")


def _pivot_name(col: str) -> str:
    metric, name = col.split("|", 1)
    return f"{name}_{metric}"

"""Per-layer orchestration and the per-cell table of the stage.

``heldout_layer`` (held-out selection + random floor) and ``null_layer_rows`` (shuffled-label
null) each handle every category of one (SAE family, layer) and run in their own jobs;
``join_cells`` joins their rows, ``with_verdicts`` adds the baselines' mean held-out AUROC and
balanced accuracy and the verdict.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from ..analysis.dense import LayerData
from ..analysis.selection import select
from .floor import random_floor
from .folds import category_folds
from .heldout import HeldOut, feature_values, heldout_category
from .metrics import auroc
from .null import NullCategory, null_category, null_layer, p_value, percentile95
from .verdict import verdict

KEY_SCHEMA = {"sae": pl.String, "layer": pl.Int64, "category": pl.String}
KEYS = list(KEY_SCHEMA)
HELDOUT_SCHEMA = {
    **KEY_SCHEMA,
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
    "threshold": pl.Float64,
    "candidates": pl.Int64,
    "folds": pl.Int64,
    "seed": pl.Int64,
}
NULL_CELL_SCHEMA = {
    **KEY_SCHEMA,
    "null_feature": pl.Int64,  # the real specialist as the null job selects it (a check)
    "p_value": pl.Float64,
    "p_value_auroc": pl.Float64,
    "null_score_p95": pl.Float64,
    "null_auroc_p95": pl.Float64,
    "permutations": pl.Int64,
    "permutation_seed": pl.Int64,
}
CELL_SCHEMA = {**HELDOUT_SCHEMA,
               **{k: v for k, v in NULL_CELL_SCHEMA.items() if k not in KEY_SCHEMA
                  and k != "null_feature"}}


def _full(data: LayerData, c: int, threshold: float, candidates: int | None
          ) -> tuple[int, int, float | None]:
    """The full-data specialist (feature, score; -1, 0 when nothing is active in the category)
    and its in-sample AUROC."""
    sel = select(data, c, None, threshold, candidates)
    feature = int(sel.feature[0])
    score = int(sel.score[0]) if feature >= 0 else 0
    auc = auroc(data.cat_index == c, feature_values(data, feature))
    return feature, score, (None if np.isnan(auc) else auc)


def heldout_layer(data: LayerData, *, threshold: float, candidates: int | None, n_folds: int,
                  seed: int, draws: int, tolerance: float = 0.05, min_pool: int = 10
                  ) -> tuple[list[HeldOut], list[dict]]:
    """Held-out results (categories with >= 2 texts) and one HELDOUT_SCHEMA row per category
    of one layer."""
    held_all, rows = [], []
    for c, category in enumerate(data.categories):
        feature, score, auc = _full(data, c, threshold, candidates)
        row = dict.fromkeys(HELDOUT_SCHEMA)
        row.update(sae=data.sae, layer=data.layer, category=category,
                   feature=feature if feature >= 0 else None,
                   score=score if feature >= 0 else None,
                   has_specialist=bool(feature >= 0 and score > 0), in_sample_auroc=auc,
                   threshold=float(threshold), candidates=candidates, folds=int(n_folds),
                   seed=int(seed), floor_draws=0, n_folds=0)
        folds = category_folds(data.cat_index, c, n_folds, seed)
        if folds is not None:
            held = heldout_category(data, c, folds, threshold, candidates)
            held_all.append(held)
            row.update(held.summary())
            row.update(random_floor(data, held, draws, seed, tolerance, min_pool))
        rows.append(row)
    return held_all, rows


def null_layer_rows(data: LayerData, labels: np.ndarray, *, threshold: float,
                    candidates: int | None, seed: int) -> tuple[list[NullCategory], list[dict]]:
    """Null winners and one NULL_CELL_SCHEMA row per category of one layer.

    labels: int64 [N, n_texts], the shuffled category index of every text per permutation
    (``data.cat_index[null.permutations(...)]``)."""
    nl = null_layer(data, threshold, candidates)
    nulls, rows = [], []
    for c, category in enumerate(data.categories):
        feature, score, auc = _full(data, c, threshold, candidates)
        res = null_category(nl, labels, c, candidates)
        nulls.append(res)
        row = dict.fromkeys(NULL_CELL_SCHEMA)
        row.update(sae=data.sae, layer=data.layer, category=category,
                   null_feature=feature if feature >= 0 else None,
                   permutations=int(labels.shape[0]), permutation_seed=int(seed))
        if labels.shape[0]:
            row.update(
                p_value=p_value(res.score, score),
                p_value_auroc=None if auc is None else p_value(res.auroc, auc),
                null_score_p95=percentile95(res.score),
                null_auroc_p95=percentile95(res.auroc),
            )
        rows.append(row)
    return nulls, rows


def frame(rows: list[dict], schema: dict) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=schema) if rows else pl.DataFrame(schema=schema)


def join_cells(heldout: pl.DataFrame, null: pl.DataFrame) -> pl.DataFrame:
    """HELDOUT_SCHEMA rows joined with the null's p-values (CELL_SCHEMA). The null job selects
    the specialist on its own: a disagreement means the two read different inputs."""
    joined = heldout.join(null, on=KEYS, how="left")
    bad = joined.filter(pl.col("feature").fill_null(-1) != pl.col("null_feature").fill_null(-1))
    if bad.height:
        row = bad.row(0, named=True)
        raise ValueError(
            f"held-out and null results disagree on the specialist of {row['sae']} layer "
            f"{row['layer']} {row['category']} ({row['feature']} vs {row['null_feature']}): "
            "they were computed from different per-text tables; rerun snakemake."
        )
    return joined.select([pl.col(k).cast(t) for k, t in CELL_SCHEMA.items()])


def validate_layer(data: LayerData, labels: np.ndarray, *, threshold: float,
                   candidates: int | None, n_folds: int, seed: int, draws: int,
                   tolerance: float = 0.05, min_pool: int = 10
                   ) -> tuple[list[HeldOut], list[NullCategory], list[dict]]:
    """Held-out results, null winners and the joined cell rows (CELL_SCHEMA) of one layer."""
    held, h_rows = heldout_layer(data, threshold=threshold, candidates=candidates,
                                 n_folds=n_folds, seed=seed, draws=draws, tolerance=tolerance,
                                 min_pool=min_pool)
    nulls, n_rows = null_layer_rows(data, labels, threshold=threshold, candidates=candidates,
                                    seed=seed)
    cells = join_cells(frame(h_rows, HELDOUT_SCHEMA), frame(n_rows, NULL_CELL_SCHEMA))
    return held, nulls, cells.to_dicts()


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

"""The per-cell table: schemas of the held-out and null results, their join, the baselines'
means and the verdict columns. Light (polars only): the verdicts job imports nothing else."""

from __future__ import annotations

import polars as pl

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
CELL_SCHEMA = {
    **HELDOUT_SCHEMA,
    **{k: v for k, v in NULL_CELL_SCHEMA.items() if k not in KEY_SCHEMA and k != "null_feature"},
}


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
        .agg(
            pl.col("auroc").mean().alias("auroc"),
            pl.col("balanced_accuracy").mean().alias("balanced_accuracy"),
        )
        .sort("sae", "layer", "category", "baseline")
    )


def with_verdicts(
    cells: pl.DataFrame,
    baselines: pl.DataFrame | None,
    *,
    alpha: float,
    min_auroc: float,
    probe_margin: float,
    shown: tuple[str, ...],
) -> pl.DataFrame:
    """Cell table + one ``<baseline>_auroc`` / ``<baseline>_balanced_accuracy`` column pair per
    baseline (when given) + the verdict columns."""
    means: dict[tuple, dict[str, float | None]] = {}
    wide = cells
    if baselines is not None and baselines.height:
        bm = baseline_means(baselines)
        for sae, layer, category, name, auc, _ in bm.iter_rows():
            means.setdefault((sae, layer, category), {})[name] = auc
        piv = bm.pivot(
            on="baseline",
            index=["sae", "layer", "category"],
            values=["auroc", "balanced_accuracy"],
            separator="|",
        )
        piv = piv.rename({c: _pivot_name(c) for c in piv.columns if "|" in c})
        wide = cells.join(piv, on=["sae", "layer", "category"], how="left")
        ordered = [
            f"{b}_{m}" for b in baseline_columns(wide) for m in ("auroc", "balanced_accuracy")
        ]
        wide = wide.select(*cells.columns, *ordered)
    verdicts = [
        verdict(
            row,
            means.get((row["sae"], row["layer"], row["category"]), {}),
            alpha=alpha,
            min_auroc=min_auroc,
            probe_margin=probe_margin,
            shown=shown,
        )
        for row in cells.iter_rows(named=True)
    ]
    vschema = {
        "generalises": pl.Boolean,
        "beats_null": pl.Boolean,
        "loses_to_probe": pl.Boolean,
        "best_baseline": pl.String,
        "best_baseline_auroc": pl.Float64,
        "fails_heldout": pl.Boolean,
        "verdict": pl.String,
        "verdict_text": pl.String,
    }
    return pl.concat([wide, pl.DataFrame(verdicts, schema=vschema)], how="horizontal")


def _pivot_name(col: str) -> str:
    metric, name = col.split("|", 1)
    return f"{name}_{metric}"


def baseline_columns(cells: pl.DataFrame) -> list[str]:
    """Baseline methods with an ``<method>_auroc`` column: diffmean, dense_probe, ksparse_<k>
    (k ascending)."""
    names = [
        c.removesuffix("_auroc")
        for c in cells.columns
        if c.endswith("_auroc")
        and (c.startswith("ksparse_") or c in ("diffmean_auroc", "dense_probe_auroc"))
    ]

    def key(name: str):
        if name.startswith("ksparse_"):
            return (2, int(name.removeprefix("ksparse_")))
        return (0 if name == "diffmean" else 1, 0)

    return sorted(names, key=key)

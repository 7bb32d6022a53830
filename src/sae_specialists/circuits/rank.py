"""The model-free part of the circuits stage: the raw sums of the model jobs to ranked edges, nodes
and one summary row per specialist (docs/circuits.md). Polars only; no torch.

Sign convention: an edge's ``effect`` is how much the target's activation owes to the source, per
counted token of the root's category texts: ``clean - ablated`` (positive: the source excites the
target; negative: it inhibits it). Downstream edges (root -> later feature) are measured by
ablating the root; upstream edges (earlier feature -> root) are attributed (activation x
gradient) and, for the top ``verify`` of them, measured by ablating the source alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

ABS_FLOOR = 1e-6  # below this (per counted token) a change is float noise, whatever the target
ROOT_KEY = ["family", "layer", "category", "feature"]


@dataclass(frozen=True)
class RankOptions:
    top_k: int = 10
    floor: float = 0.01  # dead end: no downstream edge with |effect| >= floor x target clean mean


def node_id(family: str, layer: int, feature: int | None) -> str:
    """``family/layer/feature``; the error node of an SAE: ``family/layer/error``."""
    return f"{family}/{int(layer)}/{'error' if feature is None else int(feature)}"


def _node_expr(family: str, layer: str, feature: str) -> pl.Expr:
    return pl.concat_str(
        [
            pl.col(family),
            pl.col(layer).cast(pl.String),
            pl.col(feature).cast(pl.String).fill_null("error"),
        ],
        separator="/",
    )


# -- downstream --------------------------------------------------------------------------------


def downstream_edges(
    downstream: pl.DataFrame, specialists: pl.DataFrame, options: RankOptions
) -> pl.DataFrame:
    """Per root and later SAE, the ``top_k`` targets by |effect| (ties: lower feature id), float
    noise (|effect| < ABS_FLOOR per token) left out.
    ``target_is_specialist``: the target is the specialist of the root's category at its own
    family and layer (``specialists``: the analysis table, rows with has_specialist)."""
    marks = _specialist_marks(specialists).rename(
        {"family": "target_family", "layer": "target_layer", "feature": "target_feature"}
    )
    df = downstream.with_columns(
        effect=-pl.col("change_sum") / pl.col("n_tokens"),
        target_clean_mean=pl.col("clean_sum") / pl.col("n_tokens"),
    ).with_columns(
        relative=pl.when(pl.col("target_clean_mean") > 0)
        .then(pl.col("effect") / pl.col("target_clean_mean"))
        .otherwise(None)
    )
    df = (
        df.sort(
            [*ROOT_KEY, "target_family", "target_layer", pl.col("effect").abs(), "target_feature"],
            descending=[False] * 6 + [True, False],
        )
        .with_columns(
            rank=pl.int_range(1, pl.len() + 1).over([*ROOT_KEY, "target_family", "target_layer"])
        )
        .filter((pl.col("rank") <= options.top_k) & (pl.col("effect").abs() >= ABS_FLOOR))
    )
    df = df.join(
        marks, on=["target_family", "target_layer", "category", "target_feature"], how="left"
    )
    return df.with_columns(pl.col("target_is_specialist").fill_null(False)).select(
        *ROOT_KEY,
        "target_family",
        "target_layer",
        "target_feature",
        "rank",
        "effect",
        "relative",
        "target_clean_mean",
        "target_is_specialist",
        "n_tokens",
    )


def _specialist_marks(specialists: pl.DataFrame) -> pl.DataFrame:
    s = specialists
    if "has_specialist" in s.columns:
        s = s.filter(pl.col("has_specialist"))
    return (
        s.select(
            pl.col("sae").alias("family"),
            pl.col("layer").cast(pl.Int64),
            "category",
            pl.col("feature").cast(pl.Int64),
        )
        .unique()
        .with_columns(target_is_specialist=pl.lit(True))
    )


def above_floor(edges_all: pl.DataFrame, floor: float) -> pl.DataFrame:
    """Per root: how many downstream edges (over every target, not just the top k) reach the
    floor: |effect| >= floor x the target's clean mean, and >= ABS_FLOOR."""
    df = edges_all.with_columns(
        effect=(-pl.col("change_sum") / pl.col("n_tokens")).abs(),
        clean=pl.col("clean_sum") / pl.col("n_tokens"),
    )
    hit = (pl.col("effect") >= ABS_FLOOR) & (pl.col("effect") >= floor * pl.col("clean"))
    return df.group_by(ROOT_KEY).agg(
        n_above_floor=hit.sum().cast(pl.Int64),
        max_downstream_effect=pl.col("effect").max(),
    )


# -- upstream ----------------------------------------------------------------------------------


def upstream_edges(
    upstream: pl.DataFrame, verified: pl.DataFrame, roots: pl.DataFrame, options: RankOptions
) -> pl.DataFrame:
    """Per root: the ``top_k`` upstream features by |attribution| (the model job's ranking: its
    verified ranks first) with their measured drop where verified, and every error node."""
    df = upstream.join(
        roots.select(*ROOT_KEY, pl.col("clean_sum").alias("root_clean_sum")), on=ROOT_KEY
    ).with_columns(
        attribution=pl.col("attribution_sum") / pl.col("n_tokens"),
        share=pl.when(pl.col("root_clean_sum") != 0)
        .then(pl.col("attribution_sum") / pl.col("root_clean_sum"))
        .otherwise(None),
    )
    ver = verified.select(
        *ROOT_KEY,
        "source_family",
        "source_layer",
        "source_feature",
        pl.col("rank").alias("verified_rank"),
        (pl.col("ablation_drop_sum") / pl.col("n_tokens")).alias("ablation"),
        pl.when(pl.col("root_clean_sum") != 0)
        .then(pl.col("ablation_drop_sum") / pl.col("root_clean_sum"))
        .otherwise(None)
        .alias("ablation_share"),
    )
    features = df.filter(pl.col("node") == "feature").join(
        ver, on=[*ROOT_KEY, "source_family", "source_layer", "source_feature"], how="left"
    )
    big = np.iinfo(np.int64).max
    features = (
        features.sort(
            [
                *ROOT_KEY,
                pl.col("verified_rank").fill_null(big),
                pl.col("attribution_sum").abs(),
                "source_layer",
                "source_family",
                "source_feature",
            ],
            descending=[False] * 5 + [True, False, False, False],
        )
        .with_columns(rank=pl.int_range(1, pl.len() + 1).over(ROOT_KEY))
        .filter(pl.col("rank") <= options.top_k)
    )
    errors = df.filter(pl.col("node") == "error").with_columns(
        rank=pl.lit(None, pl.Int64),
        verified_rank=pl.lit(None, pl.Int64),
        ablation=pl.lit(None, pl.Float64),
        ablation_share=pl.lit(None, pl.Float64),
    )
    cols = [
        *ROOT_KEY,
        "source_family",
        "source_layer",
        "source_feature",
        "node",
        "rank",
        "attribution",
        "share",
        "ablation",
        "ablation_share",
        "n_tokens",
    ]
    return pl.concat([features.select(cols), errors.select(cols)], how="vertical").sort(
        *ROOT_KEY, pl.col("rank").fill_null(big), "source_layer", "source_family"
    )


def agreement(verified: pl.DataFrame, top_k: int) -> pl.DataFrame:
    """Per root, over its verified upstream features of rank <= top_k: Spearman and Pearson
    correlation of attribution and measured drop, and the completeness: 1 - the share of the
    root's activation that remains with all of them ablated together."""
    rows = []
    for key, group in verified.filter(pl.col("rank") <= top_k).group_by(
        ROOT_KEY, maintain_order=True
    ):
        g = group.sort("rank")
        attr = g["attribution_sum"].to_numpy()
        drop = g["ablation_drop_sum"].to_numpy()
        clean = float(g["root_clean_sum"][0])
        remaining = float(g["joint_remaining_sum"][-1]) / clean if clean else None
        rows.append(
            {
                **dict(zip(ROOT_KEY, key, strict=True)),
                "n_verified": g.height,
                "spearman": spearman(attr, drop),
                "pearson": pearson(attr, drop),
                "remaining": remaining,
                "completeness": None if remaining is None else 1.0 - remaining,
            }
        )
    return pl.DataFrame(rows, schema=AGREEMENT_SCHEMA)


AGREEMENT_SCHEMA = {
    "family": pl.String,
    "layer": pl.Int64,
    "category": pl.String,
    "feature": pl.Int64,
    "n_verified": pl.Int64,
    "spearman": pl.Float64,
    "pearson": pl.Float64,
    "remaining": pl.Float64,
    "completeness": pl.Float64,
}


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank)."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x), dtype=float)
    for value in np.unique(x):
        tie = x == value
        if tie.sum() > 1:
            ranks[tie] = ranks[tie].mean()
    return ranks


def pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) < 3:
        return None
    return pearson(_ranks(np.asarray(a, float)), _ranks(np.asarray(b, float)))


# -- the summary -------------------------------------------------------------------------------


def summary(
    roots: pl.DataFrame,
    down_top: pl.DataFrame,
    down_all: pl.DataFrame,
    up_top: pl.DataFrame,
    verified: pl.DataFrame,
    logits: pl.DataFrame,
    options: RankOptions,
) -> pl.DataFrame:
    """One row per specialist: its mean activation, the top upstream feature (attributed and
    measured), agreement and completeness, the error nodes' share, the strongest downstream
    edge, whether it is a dead end, its next-layer successor in its own family, its tokens."""
    base = roots.with_columns(mean_activation=pl.col("clean_sum") / pl.col("n_tokens")).select(
        *ROOT_KEY, "n_texts", "n_tokens", "mean_activation"
    )
    top_up = up_top.filter(pl.col("rank") == 1).select(
        *ROOT_KEY,
        _node_expr("source_family", "source_layer", "source_feature").alias("top_upstream"),
        pl.col("share").alias("top_upstream_attributed_share"),
        pl.col("ablation_share").alias("top_upstream_measured_share"),
    )
    err = (
        up_top.filter(pl.col("node") == "error")
        .group_by(ROOT_KEY)
        .agg(error_share_max=pl.col("share").max())
    )
    strongest = (  # the largest |effect| (activation units per token) over the later SAEs
        down_top.filter(pl.col("rank") == 1)
        .sort(pl.col("effect").abs(), descending=True)
        .group_by(ROOT_KEY, maintain_order=True)
        .first()
        .select(
            *ROOT_KEY,
            _node_expr("target_family", "target_layer", "target_feature").alias("top_downstream"),
            pl.col("effect").alias("top_downstream_effect"),
            pl.col("relative").alias("top_downstream_relative"),
        )
    )
    nxt = down_top.filter(
        (pl.col("target_family") == pl.col("family"))
        & (pl.col("target_layer") == pl.col("layer") + 1)
        & (pl.col("rank") == 1)
    ).select(
        *ROOT_KEY,
        _node_expr("target_family", "target_layer", "target_feature").alias("next_layer_top"),
        pl.col("target_is_specialist").alias("next_layer_is_specialist"),
        pl.col("relative").alias("next_layer_relative"),
    )
    floor = above_floor(down_all, options.floor) if down_all.height else None
    out = base.join(top_up, on=ROOT_KEY, how="left")
    out = out.join(agreement(verified, options.top_k), on=ROOT_KEY, how="left")
    for frame in (err, strongest, nxt):
        out = out.join(frame, on=ROOT_KEY, how="left")
    if floor is not None:
        out = out.join(floor, on=ROOT_KEY, how="left")
    else:
        out = out.with_columns(
            n_above_floor=pl.lit(None, pl.Int64), max_downstream_effect=pl.lit(None, pl.Float64)
        )
    out = out.with_columns(
        n_above_floor=pl.col("n_above_floor").fill_null(0),
        dead_end=pl.col("n_above_floor").fill_null(0) == 0,
    )
    return join_tokens(out, logits, "family", "layer", "feature").sort(ROOT_KEY)


def join_tokens(df: pl.DataFrame, logits: pl.DataFrame, family: str, layer: str, feature: str):
    """Add ``promotes`` / ``suppresses``: the feature's top logit-effect tokens (the dashboards'
    logit table: decoder row through the unembedding), joined by ' · '."""
    if not logits.height:
        return df.with_columns(promotes=pl.lit(None, pl.String), suppresses=pl.lit(None, pl.String))
    words = (
        logits.group_by(["family", "layer", "feature", "direction"])
        .agg(pl.col("token_display").sort_by("rank").str.join(" · "))
        .pivot(on="direction", index=["family", "layer", "feature"], values="token_display")
    )
    for col in ("positive", "negative"):
        if col not in words.columns:
            words = words.with_columns(pl.lit(None, pl.String).alias(col))
    words = words.rename(
        {
            "family": family,
            "layer": layer,
            "feature": feature,
            "positive": "promotes",
            "negative": "suppresses",
        }
    ).select(family, layer, feature, "promotes", "suppresses")
    return df.join(words, on=[family, layer, feature], how="left")

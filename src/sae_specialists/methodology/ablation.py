"""Method ablation: the specialist analysis under every combination of the study's pitfalls.

Each method is (encoding, padding, include_bos, aggregation):

- ``encode_then_aggregate`` (correct: every token encoded by the SAE, then aggregated) vs
  ``aggregate_then_encode`` (the residual is aggregated over positions, then encoded once);
- padding excluded vs included (texts right-padded to the longest text of their category, pad
  positions counted, as a naive batched run would; see ``variants``);
- BOS excluded vs included;
- ``mean`` vs ``max`` aggregation.

The four encode-then-aggregate variants without padding come from the extraction shards (the
analysis' own ``per_text_values``); the ones with padding add the pad positions' activations
(``variants`` job) to the shards' real positions; the aggregate-then-encode ones are the
``variants`` job's encodings of aggregated residuals. Every method's per-text values then go
through the analysis' own ``candidates``/``specialists`` (same threshold, same k), so the only
thing that differs between rows is the preprocessing.

The *reference* method is the configured analysis (encode-then-aggregate, no padding, the
configured BOS and aggregation settings): its specialists are the analysis' specialists table.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import polars as pl

from ..analysis import tables as tb
from ..analysis.pertext import per_text_values
from ..analysis.selection import WINNER_VALUES
from ..analysis.shards import texts_table

ENCODINGS = ("encode_then_aggregate", "aggregate_then_encode")
ENCODING_LABELS = {
    "encode_then_aggregate": "encode→aggregate",
    "aggregate_then_encode": "aggregate→encode",
}

METHOD_COLUMNS = ["method", "encoding", "padding", "include_bos", "aggregation", "reference"]
ROW_COLUMNS = METHOD_COLUMNS + [
    "sae",
    "layer",
    "category",
    *WINNER_VALUES,
    "same_as_reference",
    "specialists_found",
    "n_categories",
    "mean_best_score",
    "threshold",
    "candidates",
]
SUMMARY_COLUMNS = METHOD_COLUMNS + [
    "sae",
    "layer",
    "specialists_found",
    "n_categories",
    "mean_best_score",
    "n_same_as_reference",
    "threshold",
    "candidates",
]


def method_id(encoding: str, padding: bool, include_bos: bool, aggregation: str) -> str:
    """A readable label, e.g. 'encode→mean, no padding, no BOS'."""
    verb = "encode→" if encoding == "encode_then_aggregate" else "→encode"
    core = f"{verb}{aggregation}" if verb == "encode→" else f"{aggregation}{verb}"
    return f"{core}, {'padding' if padding else 'no padding'}, {'BOS' if include_bos else 'no BOS'}"


def _with_keys(pt: pl.DataFrame, texts: pl.DataFrame, sae: str, layer: int) -> pl.DataFrame:
    """(text_id, feature, value) rows -> the analysis' stacked per-text layout."""
    return (
        pt.select("text_id", pl.col("feature").cast(pl.Int32), pl.col("value").cast(pl.Float64))
        .filter(pl.col("value") > 0)
        .join(texts.select("text_id", "category"), on="text_id", how="inner")
        .with_columns(
            pl.lit(sae, dtype=pl.String).alias("sae"),
            pl.lit(int(layer), dtype=pl.Int64).alias("layer"),
            pl.col("value").alias("max"),
        )
        .select(tb.PT_COLUMNS)
    )


def shard_variants(
    token_paths: Sequence[str], activation_paths: Sequence[str]
) -> dict[tuple[bool, str], pl.DataFrame]:
    """(include_bos, aggregation) -> per-text values from the shards (no padding)."""
    return {
        (bos, agg): per_text_values(token_paths, activation_paths, agg, bos)
        for bos in (False, True)
        for agg in ("mean", "max")
    }


def padded_variants(
    shard_pt: Mapping[tuple[bool, str], pl.DataFrame],
    counted: Mapping[bool, pl.DataFrame],
    pad: pl.DataFrame,
    pad_texts: pl.DataFrame,
) -> dict[tuple[bool, str], pl.DataFrame]:
    """Encode-then-aggregate with padding: the shards' counted positions plus the pad positions.

    mean: (sum over counted real positions + sum over pad positions) / (n_counted + n_pad);
    max: max(max over counted real positions, max over pad positions). ``pad`` holds one
    (sae, layer)'s pad sums/maxima; ``counted[include_bos]`` the text list with n_counted."""
    n_pad = pad_texts.select("text_id", "n_pad")
    out = {}
    for bos in (False, True):
        real_mean = (
            shard_pt[(bos, "mean")]
            .join(counted[bos].select("text_id", "n_counted"), on="text_id", how="left")
            .select("text_id", "feature", (pl.col("value") * pl.col("n_counted")).alias("sum"))
        )
        both = real_mean.join(
            pad.select("text_id", "feature", "pad_sum"),
            on=["text_id", "feature"],
            how="full",
            coalesce=True,
        )
        out[(bos, "mean")] = (
            both.join(counted[bos].select("text_id", "n_counted"), on="text_id", how="left")
            .join(n_pad, on="text_id", how="left")
            .select(
                "text_id",
                "feature",
                (
                    (pl.col("sum").fill_null(0.0) + pl.col("pad_sum").fill_null(0.0))
                    / (pl.col("n_counted") + pl.col("n_pad").fill_null(0))
                ).alias("value"),
            )
        )
        real_max = shard_pt[(bos, "max")].select("text_id", "feature", "value")
        out[(bos, "max")] = real_max.join(
            pad.select("text_id", "feature", "pad_max"),
            on=["text_id", "feature"],
            how="full",
            coalesce=True,
        ).select(
            "text_id",
            "feature",
            pl.max_horizontal(
                pl.col("value").fill_null(0.0), pl.col("pad_max").fill_null(0.0)
            ).alias("value"),
        )
    return out


def method_values(
    token_paths: Sequence[str],
    activation_paths: Sequence[str],
    sae: str,
    layer: int,
    resid: pl.DataFrame | None,
    pad: pl.DataFrame | None,
    pad_texts: pl.DataFrame | None,
) -> dict[tuple, pl.DataFrame]:
    """(encoding, padding, include_bos, aggregation) -> (text_id, feature, value) of one
    (sae, layer). Without the variants job's tables only the 4 shard variants."""
    shard = shard_variants(token_paths, activation_paths)
    out = {
        ("encode_then_aggregate", False, bos, agg): df.select("text_id", "feature", "value")
        for (bos, agg), df in shard.items()
    }
    if resid is None:
        return out
    counted = {bos: texts_table(token_paths, bos) for bos in (False, True)}
    mine = pad.filter((pl.col("sae") == sae) & (pl.col("layer") == layer))
    for (bos, agg), df in padded_variants(shard, counted, mine, pad_texts).items():
        out[("encode_then_aggregate", True, bos, agg)] = df
    r = resid.filter((pl.col("sae") == sae) & (pl.col("layer") == layer))
    for padding in (False, True):
        for bos in (False, True):
            for agg in ("mean", "max"):
                out[("aggregate_then_encode", padding, bos, agg)] = r.filter(
                    (pl.col("padding") == padding)
                    & (pl.col("include_bos") == bos)
                    & (pl.col("aggregation") == agg)
                ).select("text_id", "feature", "value")
    return out


def ablation_rows(
    methods: Mapping[tuple, pl.DataFrame],
    texts: pl.DataFrame,
    sae: str,
    layer: int,
    threshold: float,
    candidates: int,
    reference: tuple,
) -> pl.DataFrame:
    """Specialists of every method of one (sae, layer), one row per (method, category)."""
    keys = pl.DataFrame(
        {"sae": [sae], "layer": [int(layer)]}, schema={"sae": pl.String, "layer": pl.Int64}
    )
    frames = []
    for key in sorted(methods, key=method_order):
        encoding, padding, bos, agg = key
        pt = _with_keys(methods[key], texts, sae, layer)
        spec = tb.specialists(tb.candidates(pt, texts, threshold, candidates), texts, keys)
        frames.append(
            spec.with_columns(
                pl.lit(method_id(*key)).alias("method"),
                pl.lit(encoding).alias("encoding"),
                pl.lit(padding).alias("padding"),
                pl.lit(bos).alias("include_bos"),
                pl.lit(agg).alias("aggregation"),
                pl.lit(key == reference).alias("reference"),
                pl.lit(int(candidates), dtype=pl.Int64).alias("candidates"),
            )
        )
    df = pl.concat(frames, how="vertical_relaxed")
    ref = df.filter(pl.col("reference")).select(
        "sae",
        "layer",
        "category",
        pl.col("feature").alias("_ref"),
        pl.col("has_specialist").alias("_ref_has"),
    )
    group = ["method", "sae", "layer"]
    return (
        df.join(ref, on=["sae", "layer", "category"], how="left")
        .with_columns(
            (
                pl.col("has_specialist")
                & pl.col("_ref_has").fill_null(False)
                & (pl.col("feature") == pl.col("_ref")).fill_null(False)
            ).alias("same_as_reference"),
            pl.col("has_specialist").sum().over(group).cast(pl.Int64).alias("specialists_found"),
            pl.len().over(group).cast(pl.Int64).alias("n_categories"),
            pl.col("score").fill_null(0).mean().over(group).alias("mean_best_score"),
        )
        .select(ROW_COLUMNS)
    )


def method_order(key: tuple) -> tuple:
    """Correct encoding first, then no padding first, BOS excluded first, mean before max."""
    encoding, padding, bos, agg = key
    return (ENCODINGS.index(encoding), padding, bos, agg != "mean")


def summarize(rows: pl.DataFrame) -> pl.DataFrame:
    """One row per (method, sae, layer)."""
    return (
        rows.group_by(METHOD_COLUMNS + ["sae", "layer"], maintain_order=True)
        .agg(
            pl.col("specialists_found").first(),
            pl.col("n_categories").first(),
            pl.col("mean_best_score").first(),
            (pl.col("same_as_reference").sum().cast(pl.Int64)).alias("n_same_as_reference"),
            pl.col("threshold").first(),
            pl.col("candidates").first(),
        )
        .select(SUMMARY_COLUMNS)
    )


def ablation_table(
    token_paths: Sequence[str],
    activation_paths: Mapping[tuple[str, int], Sequence[str]],
    variants: Sequence[Mapping[str, str | os.PathLike]] | None,
    threshold: float,
    candidates: int,
    aggregation: str = "mean",
    include_bos: bool = False,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(rows, summary) for every (sae, layer) in ``activation_paths``.

    ``variants``: one mapping per category with the variants job's ``resid``, ``pad`` and
    ``texts`` Parquet files (None: only the four shard-based methods)."""
    texts = texts_table(token_paths, False)
    resid = pad = pad_texts = None
    if variants:
        resid = pl.concat([pl.read_parquet(v["resid"]) for v in variants], how="vertical")
        pad = pl.concat([pl.read_parquet(v["pad"]) for v in variants], how="vertical")
        pad_texts = pl.concat([pl.read_parquet(v["texts"]) for v in variants], how="vertical")
        missing = set(texts["text_id"]) - set(pad_texts["text_id"])
        if missing:
            raise ValueError(
                f"{len(missing)} texts of the shards are missing from the variants outputs "
                f"(e.g. {sorted(missing)[:3]}); rerun rule methodology_variants"
            )
    reference = ("encode_then_aggregate", False, bool(include_bos), aggregation)
    frames = []
    for (sae, layer), paths in sorted(activation_paths.items()):
        methods = method_values(token_paths, list(paths), sae, int(layer), resid, pad, pad_texts)
        frames.append(
            ablation_rows(methods, texts, sae, int(layer), threshold, candidates, reference)
        )
    rows = pl.concat(frames, how="vertical")
    return rows, summarize(rows)

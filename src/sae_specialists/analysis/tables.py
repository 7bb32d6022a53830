"""The study's tables, computed with vectorised group-bys over the sparse per-text tables.

All functions take ``pt``: the per-text rows of every SAE family and layer stacked together
(columns sae, layer, text_id, category, feature, value, max; value > 0 only) and ``texts`` (the
text list: text_id, category, text_order, ...). A (text, feature) pair absent from ``pt`` has
per-text value 0.

Definitions (docs/analyses.md), for each SAE family and layer:
- Strongest features: ranked by peak = maximum per-text value over all texts.
- Most frequent features: ranked by n_texts = number of texts with per-text value > 0;
  coverage = n_texts / number of texts.
- Most selective feature: among features with per-text value > threshold in at least one text,
  the one exceeding it in the fewest texts (n_above); ties: higher peak.
- Specialist of a category: candidates = the ``candidates`` features with the highest
  in-category peak (maximum per-text value over the category's texts); score = n_in - n_out where
  n_in (n_out) = texts inside (outside) the category with value > threshold; the best candidate
  has the highest score, ties broken by the higher in-category peak. has_specialist = score > 0.

Scale: ``pt`` may be a LazyFrame (``scan_per_text``): every function aggregates with polars'
streaming engine and never materialises the per-text rows, only per-feature aggregates and the
few rows attaining a peak, so memory does not grow with the number of texts.

Final deterministic tie-breaks (documented): equal on every criterion above -> lower feature id;
the text reported for a peak is the first text in text order (categories alphabetically, then the
order of the texts in their tokens shards, chunk by chunk) among those attaining the peak.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import polars as pl

from ..core.io import read_metadata
from .dense import LayerData, candidate_layer_data
from .neuronpedia import add_url_column
from .selection import WINNER_VALUES, candidates_of, pick
from .streaming import collect

KEY = ["sae", "layer"]
TOP = 10


def scan_per_text(
    paths: Sequence[str | os.PathLike],
) -> tuple[pl.LazyFrame, dict[tuple[str, int], str | None], dict[tuple[str, int], dict]]:
    """Per-text files stacked lazily; returns (pt, neuronpedia ids, metadata) by (sae, layer)."""
    frames, ids, metas = [], {}, {}
    for path in paths:
        meta = read_metadata(path)
        sae, layer = str(meta["sae"]), int(meta["layer"])
        ids[(sae, layer)] = meta.get("neuronpedia_id")
        metas[(sae, layer)] = meta
        frames.append(
            pl.scan_parquet(str(path)).with_columns(
                pl.lit(sae, dtype=pl.String).alias("sae"),
                pl.lit(layer, dtype=pl.Int64).alias("layer"),
            )
        )
    pt = pl.concat(frames, how="vertical") if frames else empty_per_text().lazy()
    return pt.select(PT_COLUMNS), ids, metas


PT_COLUMNS = ["sae", "layer", "text_id", "category", "feature", "value", "max"]


def empty_per_text() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "sae": pl.String,
            "layer": pl.Int64,
            "text_id": pl.String,
            "category": pl.String,
            "feature": pl.Int32,
            "value": pl.Float64,
            "max": pl.Float64,
        }
    )


def _rank(df: pl.LazyFrame, by: list[str], descending: list[bool], over: list[str]) -> pl.LazyFrame:
    """Sort by ``over`` then ``by`` (+ feature ascending) and number rows 1.. within ``over``."""
    df = df.sort(over + by + ["feature"], descending=[False] * len(over) + descending + [False])
    return df.with_columns((pl.int_range(pl.len()).over(over) + 1).cast(pl.Int64).alias("rank"))


def _order(texts: pl.DataFrame) -> pl.LazyFrame:
    return texts.lazy().select("text_id", "text_order")


def _at_peak(pt: pl.LazyFrame, group: list[str]) -> pl.LazyFrame:
    """Rows of ``pt`` attaining their ``group``'s maximum value (ties: all), with ``peak``:
    a streaming max per group, then a join back; never a sort of every row."""
    peaks = pt.group_by(group).agg(pl.col("value").max().alias("peak"))
    return pt.join(peaks, on=group, how="inner").filter(pl.col("value") == pl.col("peak"))


def _peak_text(
    pt: pl.DataFrame | pl.LazyFrame, texts: pl.DataFrame, group: list[str]
) -> pl.LazyFrame:
    """Per ``group``: peak = max value, and the first text (text order) attaining it."""
    return (
        _at_peak(pt.lazy(), group)
        .join(_order(texts), on="text_id", how="left")
        .sort(group + ["text_order"])
        .group_by(group, maintain_order=True)
        .agg(
            pl.col("peak").first(),
            pl.col("text_id").first(),
            pl.col("category").first(),
        )
    )


def strongest(pt: pl.DataFrame, texts: pl.DataFrame, top: int = TOP) -> pl.DataFrame:
    """Top features by peak (maximum per-text value over all texts), per (sae, layer)."""
    peaks = _peak_text(pt, texts, KEY + ["feature"])
    ranked = _rank(peaks, ["peak"], [True], KEY).filter(pl.col("rank") <= top)
    return collect(ranked.select("sae", "layer", "rank", "feature", "peak", "text_id", "category"))


def frequent(pt: pl.DataFrame, texts: pl.DataFrame, top: int = TOP) -> pl.DataFrame:
    """Top features by n_texts (texts with per-text value > 0); ties: higher peak, lower id."""
    n = texts.height
    counts = (
        pt.lazy()
        .filter(pl.col("value") > 0)
        .group_by(KEY + ["feature"])
        .agg(pl.len().cast(pl.Int64).alias("n_texts"), pl.col("value").max().alias("peak"))
    )
    ranked = _rank(counts, ["n_texts", "peak"], [True, True], KEY).filter(pl.col("rank") <= top)
    return collect(
        ranked.with_columns((pl.col("n_texts") / n).alias("coverage")).select(
            "sae", "layer", "rank", "feature", "n_texts", "coverage", "peak"
        )
    )


def category_peaks(
    pt: pl.DataFrame, texts: pl.DataFrame, keys: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Per (sae, layer, category): the largest per-text value in the category, its feature and
    text (ties: first text in text order, then lower feature id). A category where nothing is
    active gets peak 0 and null feature/text."""
    group = KEY + ["category"]
    best = (
        _at_peak(pt.lazy(), group)
        .join(_order(texts), on="text_id", how="left")
        .sort(group + ["text_order", "feature"])
        .group_by(group, maintain_order=True)
        .agg(
            pl.col("peak").first(),
            pl.col("feature").first(),
            pl.col("text_id").first(),
        )
    )
    grid = _grid(pt, texts, keys)
    return collect(
        grid.lazy()
        .join(best, on=group, how="left")
        .with_columns(pl.col("peak").fill_null(0.0))
        .sort(group)
        .select("sae", "layer", "category", "feature", "peak", "text_id")
    )


def _grid(pt: pl.DataFrame, texts: pl.DataFrame, keys: pl.DataFrame | None) -> pl.DataFrame:
    """Every (sae, layer, category) combination."""
    if keys is None:
        keys = collect(pt.lazy().select(KEY).unique())
    cats = texts.select("category").unique()
    return keys.select(pl.col("sae").cast(pl.String), pl.col("layer").cast(pl.Int64)).join(
        cats, how="cross"
    )


def selective(
    pt: pl.DataFrame, texts: pl.DataFrame, threshold: float, top: int = TOP
) -> pl.DataFrame:
    """Features with value > threshold in >= 1 text, ranked by fewest such texts (n_above),
    then higher peak, then lower id. A layer where no feature exceeds the threshold has no row."""
    above = pt.lazy().filter(pl.col("value") > threshold)
    counts = above.group_by(KEY + ["feature"]).agg(pl.len().cast(pl.Int64).alias("n_above"))
    peaks = _peak_text(above, texts, KEY + ["feature"])
    ranked = _rank(
        counts.join(peaks, on=KEY + ["feature"]), ["n_above", "peak"], [False, True], KEY
    )
    return collect(
        ranked.filter(pl.col("rank") <= top)
        .with_columns(pl.lit(float(threshold)).alias("threshold"))
        .select(
            "sae", "layer", "rank", "feature", "n_above", "peak", "text_id", "category", "threshold"
        )
    )


CANDIDATE_SCHEMA = {
    "sae": pl.String,
    "layer": pl.Int64,
    "category": pl.String,
    "candidate_rank": pl.Int64,
    "feature": pl.Int32,
    "peak": pl.Float64,
    "n_in": pl.Int64,
    "n_out": pl.Int64,
    "score": pl.Int64,
    "n_category": pl.Int64,
    "threshold": pl.Float64,
}


def layer_candidates(data: LayerData, threshold: float, k: int) -> pl.DataFrame:
    """The candidate rows of one (sae, layer): per category, the k features with the highest
    in-category peak, with n_in, n_out and score (``selection.candidates_of``)."""
    sizes = data.category_sizes()
    frames = []
    for c, category in enumerate(data.categories):
        cand = candidates_of(data, c, threshold, k)
        n = len(cand.feature)
        frames.append(
            pl.DataFrame(
                {
                    "sae": [data.sae] * n,
                    "layer": [data.layer] * n,
                    "category": [category] * n,
                    "candidate_rank": np.arange(1, n + 1),
                    "feature": cand.feature,
                    "peak": cand.peak,
                    "n_in": cand.n_in,
                    "n_out": cand.n_out,
                    "score": cand.n_in - cand.n_out,
                    "n_category": [int(sizes[c])] * n,
                    "threshold": [float(threshold)] * n,
                },
                schema=CANDIDATE_SCHEMA,
            )
        )
    return pl.concat(frames) if frames else pl.DataFrame(schema=CANDIDATE_SCHEMA)


def candidates(
    pt: pl.DataFrame | pl.LazyFrame, texts: pl.DataFrame, threshold: float, k: int = 5
) -> pl.DataFrame:
    """Every specialist candidate: the k features with the highest in-category peak (ties: lower
    id; only features active in the category), with n_in, n_out, score = n_in - n_out. One
    (sae, layer) in memory at a time, restricted to the features the rule can look at
    (``dense.candidate_layer_data``)."""
    keys = collect(pt.lazy().select(KEY).unique()).sort(KEY).rows()
    frames = [
        layer_candidates(candidate_layer_data(pt, texts, sae, layer, k), threshold, k)
        for sae, layer in keys
    ]
    return pl.concat(frames) if frames else pl.DataFrame(schema=CANDIDATE_SCHEMA)


def _winners(cands: pl.DataFrame, group: list[str]) -> pl.DataFrame:
    """The winning candidate row of each group, by ``selection.pick`` (highest score, then higher
    in-category peak, then lower candidate rank, i.e. lower feature id among equal peaks)."""
    ordered = cands.sort(group + ["candidate_rank"])
    sizes = ordered.group_by(group, maintain_order=True).len()["len"].to_numpy().astype(np.int64)
    if not len(sizes):
        return ordered
    starts = np.cumsum(sizes) - sizes
    slot = np.arange(ordered.height) - np.repeat(starts, sizes)
    row = np.repeat(np.arange(len(sizes)), sizes)
    width = int(sizes.max())
    score = np.zeros((len(sizes), width), dtype=np.int64)
    peak = np.zeros((len(sizes), width), dtype=np.float64)
    valid = np.zeros((len(sizes), width), dtype=bool)
    score[row, slot] = ordered["score"].to_numpy()
    peak[row, slot] = ordered["peak"].to_numpy()
    valid[row, slot] = True
    return ordered[(starts + pick(score, peak, valid)).tolist()]


def specialists(
    cands: pl.DataFrame, texts: pl.DataFrame, keys: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Best candidate per (sae, layer, category): highest score, then higher in-category peak,
    then lower feature id. One row per category; has_specialist = score > 0. A category with no
    active feature at all has a null feature and has_specialist false."""
    group = KEY + ["category"]
    best = _winners(cands, group)
    if keys is None:
        keys = cands.select(KEY).unique()
    cat_sizes = texts.group_by("category").agg(pl.len().cast(pl.Int64).alias("n_category"))
    grid = _grid(cands, texts, keys)
    return (
        grid.join(best.drop("n_category"), on=group, how="left")
        .join(cat_sizes, on="category", how="left")
        .with_columns((pl.col("score").fill_null(0) > 0).alias("has_specialist"))
        .sort(group)
        .select(*KEY, "category", *WINNER_VALUES, "n_category", "candidate_rank", "threshold")
    )


def specialists_found(spec: pl.DataFrame) -> pl.DataFrame:
    """Per (sae, layer): number of categories with a specialist, of how many."""
    return (
        spec.group_by(KEY)
        .agg(
            pl.col("has_specialist").sum().cast(pl.Int64).alias("found"),
            pl.len().cast(pl.Int64).alias("n_categories"),
        )
        .sort(KEY)
    )


def with_links(df: pl.DataFrame, ids: dict[tuple[str, int], str | None]) -> pl.DataFrame:
    return add_url_column(df, ids)

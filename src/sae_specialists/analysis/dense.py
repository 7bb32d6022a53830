"""Dense per-(SAE, layer) matrices of per-text values, built from the sparse per-text tables.

A per-text table (``analysis.pertext``) holds only (text, feature) pairs with value > 0; the
methodology computations need, per SAE family and layer, the matrix ``values[text, feature]``
over every text (text order) and every feature active on at least one text (features active
nowhere can never be a candidate and score 0, so they are left out). Memory: n_texts x
n_active_features x 8 bytes (the study: 70 x ~10^4 -> a few MB per layer).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from .streaming import STREAMING_OPTS, collect

BATCH_ROWS = 1 << 20  # per-text rows per streamed batch


def default_prefix(k: int, n_category: int) -> int:
    """Entries of a category the selection's fast path looks at (``scoring.select``)."""
    return max(64, 4 * k * n_category)


@dataclass
class LayerData:
    sae: str
    layer: int
    values: np.ndarray  # float64 [n_texts, n_features]: per-text values, 0 where absent
    features: np.ndarray  # int64 [n_features], ascending: the feature id of each column
    text_ids: list[str]  # row order = text order
    categories: list[str]  # sorted category names
    cat_index: np.ndarray  # int64 [n_texts]: index into ``categories`` of each row
    # Only for column-restricted data (``candidate_layer_data``): the number of (text, feature)
    # entries with value > 0 of each category over *every* feature; None: the columns are all
    # the active features, count them from ``values``.
    category_entries: np.ndarray | None = None

    @property
    def n_texts(self) -> int:
        return self.values.shape[0]

    def rows(self, c: int) -> np.ndarray:
        """Row indices of category ``c``."""
        return np.flatnonzero(self.cat_index == c)

    def category_sizes(self) -> np.ndarray:
        return np.bincount(self.cat_index, minlength=len(self.categories))


def layer_data(pt: pl.DataFrame, texts: pl.DataFrame, sae: str, layer: int) -> LayerData:
    """Dense matrix of one (sae, layer) from stacked per-text rows ``pt`` (columns sae, layer,
    text_id, feature, value) and the text list ``texts`` (text_id, category, text_order)."""
    text_ids, categories, cat_index = _text_rows(texts)
    rows = pt.filter((pl.col("sae") == sae) & (pl.col("layer") == layer) & (pl.col("value") > 0))
    joined = rows.join(_row_index(text_ids), on="text_id", how="inner")
    if joined.height != rows.height:
        raise ValueError(f"{sae} layer {layer}: per-text rows reference texts not in the text list")
    features, col = np.unique(joined["feature"].to_numpy().astype(np.int64), return_inverse=True)
    values = np.zeros((len(text_ids), len(features)), dtype=np.float64)
    values[joined["_row"].to_numpy(), col] = joined["value"].to_numpy().astype(np.float64)
    return LayerData(sae, int(layer), values, features, text_ids, categories, cat_index)


def _row_index(text_ids: list[str]) -> pl.DataFrame:
    """text_id -> its row of the dense matrix (text order)."""
    return pl.DataFrame(
        {"text_id": text_ids, "_row": np.arange(len(text_ids), dtype=np.int64)},
        schema={"text_id": pl.String, "_row": pl.Int64},
    )


def _text_rows(texts: pl.DataFrame) -> tuple[list[str], list[str], np.ndarray]:
    txt = texts.sort("text_order")
    text_ids = txt["text_id"].to_list()
    cats = txt["category"].to_list()
    categories = sorted(set(cats))
    cat_pos = {c: i for i, c in enumerate(categories)}
    return text_ids, categories, np.array([cat_pos[c] for c in cats], dtype=np.int64)


def _category_entries(
    rows: pl.LazyFrame, categories: list[str], top: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Per category (in ``categories`` order): the number of rows and their ``top`` largest
    values. One streaming pass over ``rows``, batch by batch: memory is one batch plus ``top``
    values per category, whatever the corpus size."""
    position = {c: i for i, c in enumerate(categories)}
    entries = np.zeros(len(categories), dtype=np.int64)
    largest = [np.zeros(0, dtype=np.float64) for _ in categories]
    batches = rows.select("category", "value").collect_batches(
        chunk_size=BATCH_ROWS, engine="streaming", optimizations=STREAMING_OPTS
    )
    for batch in batches:
        stats = batch.group_by("category").agg(
            pl.len().alias("n"), pl.col("value").top_k(top).alias("top")
        )
        for category, n, values in stats.iter_rows():
            c = position.get(category)
            if c is None:  # not a category of the text list: never selected
                continue
            entries[c] += n
            merged = np.concatenate([largest[c], np.asarray(values, dtype=np.float64)])
            if len(merged) > top:
                merged = np.partition(merged, len(merged) - top)[len(merged) - top :]
            largest[c] = merged
    return entries, largest


def candidate_layer_data(
    pt: pl.DataFrame | pl.LazyFrame, texts: pl.DataFrame, sae: str, layer: int, k: int
) -> LayerData:
    """``layer_data`` restricted to the features the specialist selection can ever look at, for
    corpora whose full texts x features matrix would not fit in memory.

    ``scoring.select`` (k candidates) first walks the ``default_prefix(k, n_c)`` largest (text,
    feature) entries of category c; the columns kept are every feature with an entry among them
    (in-category peak >= the prefix's smallest value), in every category, with their values on
    every text. On these columns the fast path sees exactly the entries it would see on the full
    matrix, so the selection is the same (tested); ``category_entries`` keeps the true entry
    counts. Only a weighting in which the prefix holds fewer than k distinct features among the
    texts present falls back to the dense path over the kept columns (``select`` then logs it).
    Reads ``pt`` with polars' streaming engine: memory is n_texts x kept features.
    """
    text_ids, categories, cat_index = _text_rows(texts)
    rows = pt.lazy().filter(
        (pl.col("sae") == sae) & (pl.col("layer") == layer) & (pl.col("value") > 0)
    )
    sizes = np.bincount(cat_index, minlength=len(categories))
    prefixes = [default_prefix(k, int(n)) for n in sizes]
    entries, largest = _category_entries(rows, categories, max(prefixes, default=0))
    floors = {}
    for c, category in enumerate(categories):
        # the prefix-th largest entry of the category (0: the prefix holds every entry)
        top = largest[c]
        floors[category] = (
            float(np.partition(top, len(top) - prefixes[c])[len(top) - prefixes[c]])
            if entries[c] > prefixes[c]
            else 0.0
        )
    floor = pl.DataFrame({"category": list(floors), "floor": list(floors.values())})
    kept = collect(
        rows.group_by("category", "feature")
        .agg(pl.col("value").max().alias("peak"))
        .join(floor.lazy(), on="category")
        .filter(pl.col("peak") >= pl.col("floor"))
        .select("feature")
        .unique()
    )["feature"]
    features = np.sort(kept.to_numpy().astype(np.int64))
    values = np.zeros((len(text_ids), len(features)), dtype=np.float64)
    # filled batch by batch: only the dense matrix and one batch are ever in memory
    batches = (
        rows.filter(pl.col("feature").is_in(kept.implode()))
        .join(_row_index(text_ids).lazy(), on="text_id", how="left")
        .select("_row", "feature", "value")
        .collect_batches(chunk_size=BATCH_ROWS, engine="streaming", optimizations=STREAMING_OPTS)
    )
    for batch in batches:
        if batch["_row"].null_count():
            raise ValueError(
                f"{sae} layer {layer}: per-text rows reference texts not in the text list"
            )
        cols = np.searchsorted(features, batch["feature"].to_numpy().astype(np.int64))
        values[batch["_row"].to_numpy(), cols] = batch["value"].to_numpy()
    return LayerData(sae, int(layer), values, features, text_ids, categories, cat_index, entries)

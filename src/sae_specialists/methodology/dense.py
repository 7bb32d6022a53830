"""Dense per-(SAE, layer) matrices of per-text values, built from the sparse per-text tables.

A per-text table (``analysis.pertext``) holds only (text, feature) pairs with value > 0; the
methodology computations need, per SAE family and layer, the matrix ``values[text, feature]``
over every text (text order) and every feature active on at least one text (features active
nowhere can never be a candidate and score 0, so they are left out). Memory: n_texts x
n_active_features x 8 bytes (the study: 70 x ~10^4 -> a few MB per layer).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl


@dataclass
class LayerData:
    sae: str
    layer: int
    values: np.ndarray  # float64 [n_texts, n_features]: per-text values, 0 where absent
    features: np.ndarray  # int64 [n_features], ascending: the feature id of each column
    text_ids: list[str]  # row order = text order
    categories: list[str]  # sorted category names
    cat_index: np.ndarray  # int64 [n_texts]: index into ``categories`` of each row

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
    txt = texts.sort("text_order")
    text_ids = txt["text_id"].to_list()
    cats = txt["category"].to_list()
    categories = sorted(set(cats))
    cat_pos = {c: i for i, c in enumerate(categories)}
    cat_index = np.array([cat_pos[c] for c in cats], dtype=np.int64)
    rows = pt.filter((pl.col("sae") == sae) & (pl.col("layer") == layer) & (pl.col("value") > 0))
    row_of = pl.DataFrame(
        {"text_id": text_ids, "_row": np.arange(len(text_ids), dtype=np.int64)},
        schema={"text_id": pl.String, "_row": pl.Int64},
    )
    joined = rows.join(row_of, on="text_id", how="inner")
    if joined.height != rows.height:
        raise ValueError(f"{sae} layer {layer}: per-text rows reference texts not in the text list")
    feats = joined["feature"].to_numpy().astype(np.int64)
    features, col = np.unique(feats, return_inverse=True)
    values = np.zeros((len(text_ids), len(features)), dtype=np.float64)
    values[joined["_row"].to_numpy(), col] = joined["value"].to_numpy().astype(np.float64)
    return LayerData(sae, int(layer), values, features, text_ids, categories, cat_index)


def iter_layers(pt: pl.DataFrame, texts: pl.DataFrame, keys: list[tuple[str, int]]
                ) -> Iterator[LayerData]:
    for sae, layer in keys:
        yield layer_data(pt, texts, sae, layer)

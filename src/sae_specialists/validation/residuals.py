"""Reading the pooled-residual shards (docs/data-contract.md) into a texts x d matrix.

Per (SAE family, layer, category, chunk) the extraction writes one row per text: the SAE's
input (its hook's activation, flattened) averaged over the text's non-BOS stored positions
(``resid_mean``, float32; padding is never stored), the number of those positions
(``n_counted``) and the BOS position's vector (``resid_bos``, null when the text has no BOS).
With ``analysis.include_bos`` the BOS position is counted too, exactly as for the per-text
values: (resid_mean * n_counted + resid_bos) / (n_counted + 1).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import polars as pl

from ..core.errors import ShardError


def read_pooled(
    paths: Sequence[str | os.PathLike], text_ids: Sequence[str], include_bos: bool
) -> np.ndarray:
    """float64 [len(text_ids), d]: the pooled residual of every text, in ``text_ids`` order."""
    from ..core.contract import POOLED_SCHEMA
    from ..core.io import check_schema

    paths = [str(p) for p in paths]
    for path in paths:
        check_schema(path, POOLED_SCHEMA)
    df = pl.read_parquet(paths, columns=["text_id", "n_counted", "resid_mean", "resid_bos"])
    order = pl.DataFrame({"text_id": list(text_ids)}, schema={"text_id": pl.String})
    joined = order.join(
        df.with_columns(pl.col("text_id").cast(pl.String)),
        on="text_id",
        how="left",
        maintain_order="left",
    )
    missing = joined.filter(pl.col("n_counted").is_null())["text_id"].to_list()
    if missing:
        raise ShardError(
            f"pooled-residual shards ({paths[0]}, ...) have no row for {len(missing)} text(s), "
            f"e.g. {missing[:3]}: they come from another extraction. Delete them and rerun "
            "snakemake to extract again."
        )
    means = _matrix(joined["resid_mean"], paths[0])
    if include_bos:
        n = joined["n_counted"].to_numpy().astype(np.float64)[:, None]
        has_bos = joined["resid_bos"].is_not_null().to_numpy()
        if has_bos.any():
            bos = np.zeros_like(means)
            bos[has_bos] = _matrix(joined["resid_bos"].filter(has_bos), paths[0])
            means = np.where(has_bos[:, None], (means * n + bos) / (n + 1), means)
    return means


def _matrix(column: pl.Series, where: str) -> np.ndarray:
    lengths = column.list.len().unique().to_list()
    if len(lengths) != 1:
        raise ShardError(
            f"pooled-residual shards ({where}, ...) mix vector widths {lengths}; "
            "they come from different SAEs. Delete them and rerun snakemake."
        )
    return np.asarray(column.explode().to_numpy(), dtype=np.float64).reshape(
        len(column), lengths[0]
    )

"""The verdict interface of the findings board (docs/architecture.md, "Findings board: the
verdict interface"): every stage that judges specialists writes one Parquet table of per-cell
verdict records, and the report reads every registered table (report/findings.py) to draw the
board at the top of index.html and analysis.html and the verdict columns of the dashboards
index. A new stage writes its records with :func:`write_verdicts` and registers one entry in
``report.findings.REGISTRY``; no other report code changes.

One record per (family, layer, category, stage):

==========  ===============  ==================================================================
column      type             meaning
==========  ===============  ==================================================================
family      str              SAE family (the ``saes`` key)
layer       int              layer
category    str              text category
feature     int, nullable    the feature judged (the cell's specialist when the stage ran);
                             null: the stage judges the cell, whatever its feature. The board
                             shows a record only when its feature is the cell's current
                             specialist (a record for another feature is stale: not shown)
stage       str              the stage's name (its registry entry)
verdict     str              short machine label, e.g. ``validated``, ``chance``,
                             ``detector_only``, ``not_tested``
label       str              what the board cell shows, e.g. "chance", "detector only"
ok          bool, nullable   true: supports the specialist; false: against it; null: not
                             tested (the stage's input was off, e.g. ``permutations: 0``)
detail      str              the numbers behind it, e.g. "held-out AUROC 0.51, p = 0.62"
==========  ===============  ==================================================================

Core module: stages import it (they may not import ``report``); it never imports torch.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import polars as pl

from .errors import UserError

VERDICT_SCHEMA: dict[str, pl.DataType] = {
    "family": pl.String(),
    "layer": pl.Int64(),
    "category": pl.String(),
    "feature": pl.Int64(),
    "stage": pl.String(),
    "verdict": pl.String(),
    "label": pl.String(),
    "ok": pl.Boolean(),
    "detail": pl.String(),
}
VERDICT_COLUMNS = tuple(VERDICT_SCHEMA)
KEY = ("family", "layer", "category", "stage")
REQUIRED = ("family", "layer", "category", "stage", "verdict", "label", "detail")
NOT_TESTED = "not_tested"  # the machine label of a record whose test did not run


def verdict_frame(records: Iterable[Mapping] | pl.DataFrame) -> pl.DataFrame:
    """The records as a DataFrame of exactly :data:`VERDICT_SCHEMA` (columns in order), checked:
    no null in a required column, one record per (family, layer, category, stage); sorted."""
    if isinstance(records, pl.DataFrame):
        missing = [c for c in VERDICT_COLUMNS if c not in records.columns]
        if missing:
            raise ValueError(f"verdict records lack the columns {', '.join(missing)}")
        df = records.select([pl.col(c).cast(t) for c, t in VERDICT_SCHEMA.items()])
    else:
        rows = [{c: r.get(c) for c in VERDICT_COLUMNS} for r in records]
        df = pl.DataFrame(rows, schema=VERDICT_SCHEMA, orient="row")
    for column in REQUIRED:
        if df[column].null_count():
            raise ValueError(f"verdict records: null in required column {column!r}")
    if df.height and df.select(KEY).is_duplicated().any():
        dup = df.filter(df.select(KEY).is_duplicated()).row(0, named=True)
        raise ValueError(
            f"verdict records: more than one record for {dict((k, dup[k]) for k in KEY)}"
        )
    return df.sort("family", "layer", "category", "stage")


def write_verdicts(records: Iterable[Mapping] | pl.DataFrame, path: str | os.PathLike) -> int:
    """Write a stage's verdict table (atomically); returns the number of records."""
    from .io import write_parquet

    df = verdict_frame(records)
    write_parquet(df, path)
    return df.height


def read_verdicts(path: str | os.PathLike) -> pl.DataFrame:
    """A stage's verdict table, checked against :data:`VERDICT_SCHEMA`."""
    df = pl.read_parquet(path)
    missing = [c for c in VERDICT_COLUMNS if c not in df.columns]
    if missing:
        raise UserError(
            f"{path}: not a verdict table (no column {', '.join(missing)}). It is written by "
            "its stage's rule; delete it and rerun `snakemake` to rebuild it."
        )
    return verdict_frame(df)

"""The causal check's verdict records for the findings board (core/verdicts.py): one per
checked cell, from the zero-ablation rows of the effects table (the headline mode, as
verdicts.json).

``specific`` and ``unspecific`` support the specialist (removing it hurts the model on its
category more than a density-matched random feature and more than zero; ``specific``: more on
its category than elsewhere); ``detector_only`` is against it (ok false, the ⊘ mark);
``not_tested`` (ok null) when the cell has no text with a loss position (no in-category
effect was measured); ``no_control`` (ok null) when its effect is clear but the layer had no
density-matched random feature to compare it with.
"""

from __future__ import annotations

import polars as pl

from ..core.verdicts import NOT_TESTED, verdict_frame

STAGE = "causal"


def _num(x) -> str:
    return "–" if x is None else f"{x:+.3g}"


def _interval(low, high) -> str:
    return "" if low is None or high is None else f" [{low:+.3g}, {high:+.3g}]"


def cell_record(row: dict) -> dict:
    """The record of one zero-ablation row of the effects table."""
    measured = row.get("in_mean") is not None
    verdict = row["verdict"] if measured else NOT_TESTED
    detail = (
        f"zero ablation: Δloss on its category {_num(row.get('in_mean'))}"
        f"{_interval(row.get('in_low'), row.get('in_high'))} nats, elsewhere "
        f"{_num(row.get('out_mean'))}; minus the random control "
        f"{_num(row.get('vs_control'))}"
        f"{_interval(row.get('vs_control_low'), row.get('vs_control_high'))}"
    )
    return {
        "family": row["sae"],
        "layer": int(row["layer"]),
        "category": row["category"],
        "feature": int(row["feature"]),
        "stage": STAGE,
        "verdict": verdict.replace(" ", "_"),
        "label": verdict if measured else "not tested",
        # no control: the effect could not be told from a random feature's (neither for nor
        # against the specialist)
        "ok": None if not measured or row["detector_only"] is None else not row["detector_only"],
        "detail": detail,
    }


def verdict_records(effects: pl.DataFrame) -> pl.DataFrame:
    """The stage's verdict table from the effects table."""
    rows = effects.filter(pl.col("mode") == "zero")
    return verdict_frame([cell_record(r) for r in rows.iter_rows(named=True)])

"""The validation stage's verdict records for the findings board (core/verdicts.py): one per
cell with a specialist, from the cell table (validation/cells.parquet).

- ``chance``: the shuffled-label null ran (a p-value exists) and the specialist does not beat
  it; ``does_not_generalise``: its held-out AUROC is below ``min_auroc`` or not above the
  random-feature floor; ``loses_to_probe``: a baseline beats it by more than ``probe_margin``.
  Each is a verdict against the specialist (ok false); the record's verdict and label are the
  first raised in that order (the board shows one word per stage), the detail names the others.
- ``validated``: it generalises and beats the null (ok true); ``generalises`` when the null did
  not run (``permutations: 0``: the label says "chance not tested", never "chance").
- ``not_tested`` (ok null): no held-out AUROC and no p-value.
"""

from __future__ import annotations

import polars as pl

from ..core.verdicts import NOT_TESTED, verdict_frame

STAGE = "validation"


def cell_record(row: dict) -> dict | None:
    """The record of one row of the cell table (None without a specialist)."""
    if not row.get("has_specialist") or row.get("feature") is None:
        return None
    auc, p = row.get("heldout_auroc"), row.get("p_value")
    null_ran = p is not None
    against = []
    if null_ran and not row.get("beats_null"):
        against.append(("chance", "chance"))
    if auc is not None and not row.get("generalises"):
        against.append(("does_not_generalise", "does not generalise"))
    if row.get("loses_to_probe"):
        against.append(("loses_to_probe", "loses to probe"))
    detail = row.get("verdict_text") or ""
    if against:  # the board shows the first (chance, then generalisation, then the probes)
        verdict, label, ok = against[0][0], against[0][1], False
        if len(against) > 1:
            detail = "also " + ", ".join(lab for _, lab in against[1:]) + "; " + detail
    elif auc is not None and null_ran:
        verdict, label, ok = "validated", "validated", True
    elif auc is not None:
        verdict, label, ok = "generalises", "generalises; chance not tested", True
    else:
        verdict, label, ok = NOT_TESTED, "not tested", None
    return {
        "family": row["sae"],
        "layer": int(row["layer"]),
        "category": row["category"],
        "feature": int(row["feature"]),
        "stage": STAGE,
        "verdict": verdict,
        "label": label,
        "ok": ok,
        "detail": detail,
    }


def verdict_records(cells: pl.DataFrame) -> pl.DataFrame:
    """The stage's verdict table from the cell table with verdicts."""
    records = [cell_record(r) for r in cells.iter_rows(named=True)]
    return verdict_frame([r for r in records if r is not None])

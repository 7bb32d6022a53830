"""The circuits stage's records for the findings board (core/verdicts.py): one per specialist.

- ``feeds_specialist``: its strongest edge into its own family's next layer reaches that layer's
  specialist of the same category (a path), ok true;
- ``feeds``: some downstream edge reaches the floor, ok true;
- ``dead_end``: later SAEs were measured and no downstream edge reaches the floor (nothing
  after it reads its direction), ok false;
- ``not_tested``: no SAE of the run reads the model after its hook (nothing to measure), ok null.
"""

from __future__ import annotations

import polars as pl

from ..core.verdicts import NOT_TESTED


def _num(v) -> str:
    return "–" if v is None else f"{v:.2f}"


def _detail(r: dict) -> str:
    parts = []
    if r["top_upstream"] is not None:
        attributed = _num(r["top_upstream_attributed_share"])
        measured = _num(r["top_upstream_measured_share"])
        parts.append(
            f"top upstream {r['top_upstream']} (attributed {attributed}, measured {measured} "
            "of its activation)"
        )
    if r["spearman"] is not None:
        parts.append(f"attribution vs ablation Spearman {_num(r['spearman'])}")
    if r["completeness"] is not None:
        parts.append(f"completeness {_num(r['completeness'])}")
    if r["top_downstream"] is not None:
        parts.append(
            f"strongest downstream {r['top_downstream']} ({_num(r['top_downstream_relative'])} "
            "of its clean mean)"
        )
    return "; ".join(parts) or "no SAE before or after its hook"


def verdict_records(summary: pl.DataFrame, sites: pl.DataFrame) -> list[dict]:
    last = {}
    if sites.height:
        top = int(sites["order"].max())
        last = {
            (r["family"], int(r["layer"])): int(r["order"]) == top
            for r in sites.iter_rows(named=True)
        }
    out = []
    for r in summary.iter_rows(named=True):
        key = (r["family"], int(r["layer"]))
        if last.get(key, False):
            verdict, label, ok = NOT_TESTED, "no later SAE", None
        elif r["dead_end"]:
            verdict, label, ok = "dead_end", "dead end", False
        elif r["next_layer_is_specialist"]:
            verdict, label, ok = "feeds_specialist", "feeds next specialist", True
        else:
            verdict, label, ok = "feeds", f"feeds {r['n_above_floor']} features", True
        out.append(
            {
                "family": r["family"],
                "layer": int(r["layer"]),
                "category": r["category"],
                "feature": int(r["feature"]),
                "stage": "circuits",
                "verdict": verdict,
                "label": label,
                "ok": ok,
                "detail": _detail(r),
            }
        )
    return out

"""Per-cell verdict: does the specialist generalise, beat the null, hold against the probes?

Flags of a cell (SAE family, layer, category) with a specialist (full-data score > 0):
- ``does not generalise``: mean held-out AUROC < ``min_auroc``, or not above the random-feature
  floor (``floor_auroc``);
- ``not better than chance``: shuffled-label p-value > ``alpha``;
- ``null not tested`` / ``held-out not tested``: that test did not run (``permutations: 0``, or
  no held-out AUROC: too few texts to fold): no verdict is claimed for it, its column
  (``beats_null`` / ``generalises``) is null, and ``fails_heldout`` counts only the tests
  that ran (a verdict never reports a test that did not run);
- ``loses to probe``: a baseline's mean held-out AUROC exceeds the specialist's by more than
  ``probe_margin`` (the baseline named is the best one).
The verdict is ``generalises`` when neither of the first two flags is raised, otherwise the
raised flags; ``loses to probe`` is appended either way. ``verdict_text`` adds the numbers, e.g.
"generalises (held-out AUROC 0.97, p < 0.001); dense probe 0.99; k=5 probe 0.98".
"""

from __future__ import annotations

from collections.abc import Mapping

BASELINE_LABELS = {"diffmean": "diff-of-means", "dense_probe": "dense probe"}
NO_SPECIALIST = "no specialist"
GENERALISES = "generalises"
FAILS_HELDOUT = "does not generalise"
FAILS_NULL = "not better than chance"
NULL_NOT_TESTED = "null not tested"
HELDOUT_NOT_TESTED = "held-out not tested"
LOSES = "loses to probe"


def baseline_label(method: str) -> str:
    """Display name of a baseline column: diffmean, dense_probe, ksparse_5 -> 'k=5 probe'."""
    if method.startswith("ksparse_"):
        return f"k={method.removeprefix('ksparse_')} probe"
    return BASELINE_LABELS.get(method, method)


def format_p(p: float | None) -> str:
    if p is None:
        return "no null test"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def verdict(
    cell: Mapping,
    baselines: Mapping[str, float | None],
    *,
    alpha: float = 0.05,
    min_auroc: float = 0.7,
    probe_margin: float = 0.05,
    shown: tuple[str, ...] = ("dense_probe", "ksparse_5"),
) -> dict:
    """Flags and text of one cell.

    cell: has_specialist, heldout_auroc, p_value, floor_auroc (None when unknown);
    baselines: mean held-out AUROC per baseline method (``diffmean``, ``dense_probe``,
    ``ksparse_<k>``; empty when the baselines are off); ``shown``: the baselines named in the
    text (when present)."""
    auc = cell.get("heldout_auroc")
    p = cell.get("p_value")
    floor = cell.get("floor_auroc")
    # None: the test did not run (no held-out AUROC; permutations: 0)
    generalises = None if auc is None else auc >= min_auroc and (floor is None or auc > floor)
    beats_null = None if p is None else p <= alpha
    known = {m: v for m, v in baselines.items() if v is not None}
    best = max(known, key=lambda m: (known[m], m), default=None)
    loses = best is not None and auc is not None and known[best] > auc + probe_margin
    has = bool(cell.get("has_specialist"))
    if not has:
        status = NO_SPECIALIST
    else:
        flags = [
            f for f, bad in ((FAILS_HELDOUT, generalises), (FAILS_NULL, beats_null)) if bad is False
        ]
        status = ", ".join(flags) if flags else GENERALISES
        if generalises is None and not flags:
            status = HELDOUT_NOT_TESTED
        elif generalises is None:
            status += f", {HELDOUT_NOT_TESTED}"
        if beats_null is None:
            status += f", {NULL_NOT_TESTED}"
        if loses:
            status += f", {LOSES}"
    text = f"{status} (held-out AUROC {_num(auc)}, {format_p(p)})"
    parts = [f"{baseline_label(m)} {_num(known[m])}" for m in shown if m in known]
    if loses and best not in shown:
        parts.append(f"{baseline_label(best)} {_num(known[best])}")
    if parts:
        text += "; " + "; ".join(parts)
    return {
        "generalises": generalises,
        "beats_null": beats_null,
        "loses_to_probe": bool(loses),
        "best_baseline": best,
        "best_baseline_auroc": known.get(best) if best else None,
        "fails_heldout": has and (generalises is False or beats_null is False),
        "verdict": status,
        "verdict_text": text,
    }

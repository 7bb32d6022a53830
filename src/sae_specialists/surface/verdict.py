"""The verdict of one specialist (docs/surface.md), from its measures and the thresholds of
``surface.*``. In order:

1. ``meaning``: it fires (per-text value > the analysis threshold) on at least ``fires_min`` of
   the category's *meaning* probe texts (content without its markers) and their AUROC against
   the neutral texts is at least ``auroc_min``: it reads more than the markers' tokens.
2. ``token_detector``: token R² >= ``token_r2_min`` (its activation is its token's identity;
   the R² over the positions whose token occurs in the training texts, ``token_r2_seen``: a
   token never seen in training cannot be predicted by any token table, and a specialist of
   many rare tokens would otherwise look context-driven),
   its trigger tokens fire outside the category at >= ``outside_min`` of their inside mean (or
   never occur outside: the counts say so), and, with probe texts, it fires on at least
   ``fires_min`` of the *markers* texts (markers without the meaning).
3. ``context_gated``: token R² < ``token_r2_min`` and outside ratio <= ``gated_max``: the same
   tokens do not make it fire elsewhere; something in the context does.
4. ``mixed``: anything else (e.g. a high R² that does not carry over outside the category).

``untested`` when neither R² nor the outside ratio could be measured (a category with one text
whose trigger tokens never occur elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass

VERDICTS = ("token_detector", "context_gated", "meaning", "mixed", "untested")
LABELS = {
    "token_detector": "token detector",
    "context_gated": "context-gated",
    "meaning": "meaning",
    "mixed": "mixed",
    "untested": "untested",
}


@dataclass(frozen=True)
class Thresholds:
    token_r2_min: float
    outside_min: float
    gated_max: float
    fires_min: float
    auroc_min: float


def _fmt(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def decisive_r2(row: dict) -> float | None:
    """The R² the verdict reads: on the tokens seen in training (else overall)."""
    seen = row.get("token_r2_seen")
    return seen if seen is not None else row.get("token_r2")


def verdict(row: dict, t: Thresholds) -> str:
    """One of ``VERDICTS`` for a row of the specialists table (with the probe columns when the
    category has probe texts: meaning_fired, meaning_n, meaning_auroc, markers_fired, ...)."""
    r2, ratio = decisive_r2(row), row.get("outside_ratio")
    meaning_n, markers_n = row.get("meaning_n") or 0, row.get("markers_n") or 0
    if meaning_n and row["meaning_fired"] >= t.fires_min * meaning_n:
        if (row.get("meaning_auroc") or 0.0) >= t.auroc_min:
            return "meaning"
    if r2 is None and ratio is None:
        return "untested"
    markers_ok = not markers_n or row["markers_fired"] >= t.fires_min * markers_n
    if r2 is not None and r2 >= t.token_r2_min and markers_ok:
        if ratio is None or ratio >= t.outside_min:
            return "token_detector"
    if ratio is not None and ratio <= t.gated_max and (r2 is None or r2 < t.token_r2_min):
        return "context_gated"
    return "mixed"


def detail(row: dict) -> str:
    """The numbers behind the verdict, in words."""
    parts = [
        f"token R² {_fmt(decisive_r2(row))} on seen tokens ({_fmt(row.get('token_r2'))} overall, "
        f"{_fmt(row.get('unseen_mass'))} of the mass on unseen tokens)",
        f"bigram R² {_fmt(row.get('bigram_r2'))}",
    ]
    if row.get("n_trigger_out"):
        parts.append(
            f"outside ratio {_fmt(row.get('outside_ratio'))} "
            f"({row['n_trigger_out']} occurrences outside, {row['n_trigger_in']} inside)"
        )
    else:
        parts.append(f"trigger tokens never occur outside ({row.get('n_trigger_in', 0)} inside)")
    if row.get("markers_n"):
        parts.append(f"fires on {row['markers_fired']}/{row['markers_n']} marker-only texts")
    if row.get("meaning_n"):
        parts.append(f"{row['meaning_fired']}/{row['meaning_n']} meaning-only")
    return "; ".join(parts)


def label(row: dict, name: str) -> str:
    """The verdict and its numbers, e.g. ``token detector (token R² 0.91 ...; fires on 9/10
    marker-only texts; 0/10 meaning-only)``."""
    return f"{LABELS[name]} ({detail(row)})"

"""The validation stage's part of the report (docs/validation.md): a section of summary.md /
index.html and the verdict marks of the index's specialist table, from verdicts.json's content
("family/layer/category" -> feature, has_specialist, verdict, verdict_text, fails_heldout, ...)."""

from __future__ import annotations

from collections.abc import Mapping

from ..validation.report import flagged, headline
from .doc import Doc, link


def add_summary_section(doc: Doc, verdicts: Mapping[str, Mapping], summary_md: str) -> None:
    """Headline counts, one line per flagged cell, a link to validation/summary.md
    (``summary_md``: its path relative to the summary)."""
    doc.h(2, "Validation")
    doc.p(headline(verdicts.values()))
    lines = flagged(verdicts)
    if lines:
        doc.ul([[line] for line in lines])
    doc.p(
        "Every cell with its held-out AUROC, p-value, chance floor and baselines: ",
        link("validation/summary.md", summary_md),
        "; how to read them: docs/validation.md.",
    )


def verdict_of(verdicts: Mapping[str, Mapping], sae: str, layer: int, category: str):
    """The cell's verdict entry, or None."""
    return verdicts.get(f"{sae}/{int(layer)}/{category}")

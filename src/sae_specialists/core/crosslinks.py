"""Cross-links between the stages' summaries (docs/surface.md, "Cross-links"): where
validation/summary.md and the causal pages list a specialist they show its surface verdict
(token detector / context-gated / meaning / mixed) linked to surface/summary.md, and
surface/summary.md shows each specialist's validation and causal verdicts linked to theirs.

The labels come from the stages' findings-board records (core/verdicts.py): a record is shown
only for the feature it judged (a stage not rerun yet after a threshold change says nothing
about the new specialist). Core module: stages import it; it never imports torch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import polars as pl

from .verdicts import read_verdicts

Key = tuple[str, int, str]  # (family, layer, category)


def stage_labels(path: str | os.PathLike | None) -> dict[Key, tuple[int | None, str]]:
    """(family, layer, category) -> (feature judged, label) of one stage's verdict table;
    empty without a table (the stage is off)."""
    if not path:
        return {}
    records = read_verdicts(path)
    return {
        (r["family"], int(r["layer"]), r["category"]): (r["feature"], r["label"])
        for r in records.select("family", "layer", "category", "feature", "label").iter_rows(
            named=True
        )
    }


def label_of(labels: Mapping[Key, tuple], family: str, layer: int, category: str, feature):
    """The label of the cell's record when it judged ``feature`` (or any feature: null), else
    None."""
    record = labels.get((family, int(layer), category))
    if record is None or feature is None:
        return None
    judged, label = record
    return label if judged is None or int(judged) == int(feature) else None


def relative(target: str | os.PathLike, page: str | os.PathLike) -> str:
    """``target``'s path relative to the directory of ``page`` (POSIX separators)."""
    return Path(os.path.relpath(Path(target), Path(page).parent)).as_posix()


def md_link(text: str, href: str) -> str:
    """A Markdown link whose text cannot break a table (``|`` and brackets escaped)."""
    safe = "".join("\\" + ch if ch in "\\[]|*_`<>" else ch for ch in text)
    return f"[{safe}]({href})"


def cell(labels: Mapping[Key, tuple], href: str | Callable[[dict], str]) -> Callable[[dict], str]:
    """row (sae, layer, category, feature) -> its label as a Markdown link to ``href`` (or
    ``href(row)``), "–" without one."""

    def markdown(r: dict) -> str:
        label = label_of(labels, r["sae"], r["layer"], r["category"], r["feature"])
        if label is None:
            return "–"
        return md_link(label, href(r) if callable(href) else href)

    return markdown


def column(
    specialists: pl.DataFrame,
    labels: Mapping[Key, tuple],
    href: str | Callable[[dict], str],
) -> list[str]:
    """:func:`cell` for every row of ``specialists``, in its order."""
    markdown = cell(labels, href)
    return [markdown(r) for r in specialists.iter_rows(named=True)]

"""Parse-time helpers of workflow/rules/causal.smk (and of the rules showing causal verdicts):
read the small JSON files the causal checkpoints write, so that a rule can take their *content*
as a param (rerun only when it changes) and the file itself as an ``ancient`` input."""

from __future__ import annotations

import json
from pathlib import Path

from ..core.io import read_cell_json


def read_cells(path: str, family: str, layer) -> list[list]:
    """One (family, layer)'s specialist set from cells.json: [[category, feature], ...]."""
    sets = json.loads(Path(path).read_text(encoding="utf-8"))
    return sets.get(f"{family}/{int(layer)}", [])


def read_verdicts(path: str, family: str | None = None, layer=None) -> dict:
    """causal/verdicts.json ("family/layer/category" -> verdict record); with ``family`` and
    ``layer``: that layer's, keyed by category."""
    return read_cell_json(path, family, layer)

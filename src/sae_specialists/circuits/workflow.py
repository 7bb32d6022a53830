"""Helpers the circuits rule file imports (parse time; no torch)."""

from __future__ import annotations

import json
from pathlib import Path


def read_roots(path: str, family: str, layer) -> list[list]:
    """One (family, layer)'s specialist set from roots.json: [[category, feature], ...]."""
    sets = json.loads(Path(path).read_text(encoding="utf-8"))
    return sets.get(f"{family}/{int(layer)}", [])

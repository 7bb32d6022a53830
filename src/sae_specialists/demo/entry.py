"""Job entry point of rule build_demo_assets (scripts/build_demo.py)."""

from __future__ import annotations

from typing import Any


def build(smk: Any) -> None:
    """Rule build_demo_assets: the demo model, every SAE family and planted.json."""
    from .build import build_demo

    build_demo(smk.params.out_dir, seed=int(smk.params.seed))

"""Analyses of the activation shards: per-text values, tables, summary, charts, token views.

This subpackage reads Parquet shards only (see docs/data-contract.md). It must never
import torch, transformer_lens or sae_lens, so that a change to an analysis setting (threshold,
candidates, ...) reruns in seconds on a machine without the model.
"""

from __future__ import annotations

__all__ = [
    "charts",
    "doc",
    "entry",
    "index",
    "neuronpedia",
    "paths",
    "pertext",
    "shards",
    "summary",
    "tables",
    "tokenview",
]

"""Entry point of rule extract_activations (scripts/extract.py)."""

from __future__ import annotations

from typing import Any

from ..core.settings import ExtractionSettings
from .loading import ModelAndSAEs


def extract(smk: Any) -> None:
    """One (category, chunk) -> its token shard and one activation and one pooled-residual
    shard per (family, layer)."""
    import torch

    p = smk.params
    torch.set_num_threads(smk.threads)
    job = ModelAndSAEs(dict(p.model), dict(p.saes), p.device, p.dtype)
    options = ExtractionSettings(
        batch_size=p.batch_size,
        max_tokens=p.max_tokens,
        long_texts=p.long_texts,
        chunk_size=p.chunk_size,
        text_field=p.text_field,
        text_split=p.text_split,
    )
    from .pipeline import extract_category

    extract_category(
        job,
        options,
        str(smk.wildcards.category),
        smk.input.text_file,
        smk.output.tokens,
        dict(zip(p.saes, smk.output.activations, strict=True)),
        chunk=int(smk.wildcards.chunk),
        n_chunks=int(p.n_chunks),
        pooled_out=dict(zip(p.saes, smk.output.pooled, strict=True)),
    )

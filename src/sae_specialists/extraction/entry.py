"""Entry points of the extraction rules: extract_tokens (scripts/extract_tokens.py),
extract_activations, extract_category and extract_all (scripts/extract.py), materialise_dataset
(scripts/extract_dataset.py) and dataset_provenance (scripts/extract_provenance.py)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from ..core.settings import ExtractionSettings
from .loading import ModelAndSAEs


def _options(p: Any) -> ExtractionSettings:
    """The rule's params of the same names as the settings' fields."""
    return ExtractionSettings(**{f.name: getattr(p, f.name) for f in fields(ExtractionSettings)})


def tokens(smk: Any) -> None:
    """One (category, chunk) -> its token shard (the model's tokenizer; no forward pass; a
    local model's tokenizer without TransformerLens or SAELens)."""
    from .pipeline import extract_tokens

    p = smk.params
    if "path" not in dict(p.model):
        import torch

        torch.set_num_threads(smk.threads)
    extract_tokens(
        ModelAndSAEs(dict(p.model), {}, p.device, p.dtype),
        _options(p),
        str(smk.wildcards.category),
        smk.input.text_file,
        smk.output.tokens,
        chunk=int(smk.wildcards.chunk),
        n_chunks=int(p.n_chunks),
    )


def extract(smk: Any) -> None:
    """One (category, chunk) of one SAE family (extract_activations) or of every family
    (extract_category), or every (category, chunk) of the run (extract_all: ``params.units``,
    in the order of the outputs) -> per unit, one activation and one pooled-residual shard per
    (family, layer) of ``params.saes``, and the token shard when the rule declares one. The
    model and SAEs are loaded once for all units."""
    import torch

    from .pipeline import extract_category

    p = smk.params
    torch.set_num_threads(smk.threads)
    units = getattr(p, "units", None) or [
        {
            "category": str(smk.wildcards.category),
            "chunk": int(smk.wildcards.chunk),
            "n_chunks": int(p.n_chunks),
            "text_file": smk.input.text_file,
        }
    ]
    tokens = getattr(smk.output, "tokens", None)
    tokens = [tokens] if isinstance(tokens, str) else tokens
    job = ModelAndSAEs(dict(p.model), dict(p.saes), p.device, p.dtype)
    loaded = job.load() if len(units) > 1 else None  # one unit: loaded (and timed) by it
    options = _options(p)
    per_unit = len(p.saes)
    for i, unit in enumerate(units):
        shards = slice(i * per_unit, (i + 1) * per_unit)
        extract_category(
            job,
            options,
            str(unit["category"]),
            str(unit["text_file"]),
            tokens[i] if tokens else None,
            dict(zip(p.saes, smk.output.activations[shards], strict=True)),
            chunk=int(unit["chunk"]),
            n_chunks=int(unit["n_chunks"]),
            pooled_out=dict(zip(p.saes, smk.output.pooled[shards], strict=True)),
            loaded=loaded,
        )


def materialise_dataset(smk: Any) -> None:
    """A dataset category -> its Parquet category file with provenance (extraction/datasets.py;
    the ``datasets`` library, no model)."""
    from ..core.settings import DatasetSpec
    from .datasets import materialise

    p = smk.params
    spec = dict(p.spec)
    spec["filter"] = tuple(
        (column, tuple(value) if isinstance(value, list) else value)
        for column, value in sorted(dict(spec["filter"]).items())
    )
    materialise(str(smk.wildcards.category), DatasetSpec(**spec), smk.output.texts, p.text_field)


def dataset_provenance(smk: Any) -> None:
    """Every materialised dataset category -> datasets/provenance.md (the report's table)."""
    from ..core.io import write_text
    from .datasets import provenance_markdown, read_provenance

    records = [read_provenance(path) for path in smk.input.texts]
    write_text(provenance_markdown(records), smk.output.page)

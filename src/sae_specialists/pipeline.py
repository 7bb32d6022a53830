"""Entry points the Snakemake scripts call (each wires rule inputs/outputs to the package)."""

from __future__ import annotations

import logging

from .settings import Settings
from .shards import write_table_atomic
from .texts import load_category

log = logging.getLogger(__name__)


def extract_category(
    settings: Settings,
    category: str,
    text_file: str,
    tokens_out: str,
    activation_out: dict[tuple[str, int], str],
) -> None:
    """Extract one category: load the model and every SAE once, write all its shards."""
    from .extract import check_layers_exist, extract, shard_metadata, tokenize_texts
    from .models import load_model, resolve_device
    from .saes import load_sae

    texts = load_category(text_file, category)
    device = resolve_device(settings.device)
    model = load_model(settings.model, device=device, dtype=settings.dtype)
    check_layers_exist(model, settings.layers)
    saes = [
        load_sae(name, layer, family.source(layer), device=device, dtype=settings.dtype)
        for name, family in sorted(settings.saes.items())
        for layer in settings.layers
    ]
    tokenized = tokenize_texts(
        model, texts, settings.extraction["max_tokens"], settings.extraction["long_texts"]
    )
    tokens, tables = extract(
        model, saes, tokenized, settings.extraction["batch_size"], progress_desc=category
    )
    for s in saes:
        meta = shard_metadata(
            settings.model, s, category, len(texts), tokens.num_rows, settings.dtype
        )
        write_table_atomic(tables[(s.family, s.layer)], activation_out[(s.family, s.layer)], meta)
    write_table_atomic(tokens, tokens_out)
    log.info("%s: %d texts, %d tokens, %d SAEs", category, len(texts), tokens.num_rows, len(saes))

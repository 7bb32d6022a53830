"""Optional reference corpus (``dashboards.corpus``): a larger, general set of texts whose SAE
activations are extracted with the study's own machinery (``sae_specialists.extract``), so that
max-activating examples also come from outside the study's texts.

Formats (by file suffix):
- ``.txt``: one text per line (empty lines skipped);
- ``.jsonl``: one JSON object per line, the text under ``corpus_text_field`` (or a JSON string);
- ``.parquet``: the column ``corpus_text_field``.
The first ``corpus_max_texts`` texts are used, each truncated to ``corpus_max_tokens`` tokens (BOS
included). Corpus texts get the category ``corpus`` and ids ``corpus-<sha256 prefix>``.

Shards (the data contract's schemas, one directory apart from the study's):
``{R}/corpus/tokens.parquet`` and ``{R}/corpus/activations/sae={family}/layer={layer}.parquet``.
The model is loaded only inside ``extract_corpus`` (rule dashboard_corpus).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..errors import TextsError
from ..texts import Text, text_id

log = logging.getLogger(__name__)

CORPUS_CATEGORY = "corpus"


def read_corpus(path: str | Path, field: str = "text", max_texts: int | None = None) -> list[Text]:
    """The corpus texts (see the module doc), with stable ids."""
    path = Path(path)
    if not path.is_file():
        raise TextsError(f"dashboards.corpus: file {str(path)!r} does not exist.")
    suffix = path.suffix.lower()
    raw: list[str] = []
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        if field not in table.column_names:
            raise TextsError(
                f"dashboards.corpus: {path} has no column {field!r} (columns: "
                f"{table.column_names}). Set dashboards.corpus_text_field."
            )
        raw = [t for t in table.column(field).to_pylist() if isinstance(t, str)]
    elif suffix in (".jsonl", ".ndjson"):
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except json.JSONDecodeError as err:
                    raise TextsError(f"dashboards.corpus: {path}, line {number}: {err}") from None
                if isinstance(item, dict):
                    if field not in item:
                        raise TextsError(
                            f"dashboards.corpus: {path}, line {number} has no key {field!r}. "
                            "Set dashboards.corpus_text_field."
                        )
                    item = item[field]
                if isinstance(item, str):
                    raw.append(item)
                if max_texts and len(raw) >= max_texts:
                    break
    elif suffix == ".txt":
        raw = path.read_text(encoding="utf-8").splitlines()
    else:
        raise TextsError(
            f"dashboards.corpus: {path} must be a .txt (one text per line), .jsonl or .parquet "
            "file."
        )
    raw = [t for t in raw if t.strip()]
    if max_texts:
        raw = raw[: int(max_texts)]
    if not raw:
        raise TextsError(f"dashboards.corpus: {path} holds no non-empty text.")
    texts, seen = [], {}
    for item in raw:
        base = text_id(CORPUS_CATEGORY, item)
        seen[base] = seen.get(base, 0) + 1
        texts.append(
            Text(base if seen[base] == 1 else f"{base}-{seen[base]}", CORPUS_CATEGORY, item)
        )
    return texts


def extract_corpus(
    settings, dash: dict, tokens_out: str, activation_out: dict[tuple[str, int], str]
) -> None:
    """Rule dashboard_corpus: load the model and every SAE once, extract the corpus, write its
    token shard and one activation shard per (family, layer)."""
    from ..extract import check_layers_exist, extract, shard_metadata, tokenize_texts
    from ..models import load_model, resolve_device
    from ..saes import load_sae
    from ..shards import write_table_atomic

    texts = read_corpus(dash["corpus"], dash["corpus_text_field"], dash["corpus_max_texts"])
    device = resolve_device(settings.device)
    model = load_model(settings.model, device=device, dtype=settings.dtype)
    check_layers_exist(model, settings.layers)
    saes = [
        load_sae(name, layer, family.source(layer), device=device, dtype=settings.dtype)
        for name, family in sorted(settings.saes.items())
        for layer in settings.layers
    ]
    tokenized = tokenize_texts(model, texts, int(dash["corpus_max_tokens"]), "truncate")
    tokens, tables = extract(
        model, saes, tokenized, settings.extraction["batch_size"], progress_desc="corpus"
    )
    for s in saes:
        meta = shard_metadata(
            settings.model, s, CORPUS_CATEGORY, len(texts), tokens.num_rows, settings.dtype
        )
        meta["corpus"] = str(dash["corpus"])
        write_table_atomic(tables[(s.family, s.layer)], activation_out[(s.family, s.layer)], meta)
    write_table_atomic(tokens, tokens_out)
    log.info("corpus: %d texts, %d tokens, %d SAEs", len(texts), tokens.num_rows, len(saes))

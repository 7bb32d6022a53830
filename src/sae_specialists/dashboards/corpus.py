"""Optional reference corpus (``dashboards.corpus``): a larger, general set of texts whose SAE
activations are extracted by the study's own extraction job (``pipeline.extract_category``:
same model and SAE loading, streaming windows, per-token encoding, atomic shards), so that
max-activating examples also come from outside the study's texts.

The corpus file is read like a category file (``sae_specialists.corpus``): ``.jsonl`` (the text
under ``dashboards.corpus_text_field``), ``.parquet`` (that column), ``.txt`` (one text per line,
or per blank-line-separated block with ``extraction.text_split: blank_lines``) or ``.yaml``.
Only its first ``corpus_max_texts`` texts are used, each truncated to ``corpus_max_tokens`` tokens
(BOS included). Its texts get the category ``corpus`` and ids ``corpus-<sha256 prefix>``.

Shards (the data contract's schemas, in their own directory):
``{R}/corpus/tokens.parquet`` and ``{R}/corpus/activations/sae={family}/layer={layer}.parquet``.
The model is loaded only inside ``extract_corpus`` (rule dashboard_corpus).
"""

from __future__ import annotations

import dataclasses
import logging

log = logging.getLogger(__name__)

CORPUS_CATEGORY = "corpus"


def corpus_settings(settings, dash: dict):
    """The study's settings with the extraction options of the reference corpus."""
    extraction = {
        **settings.extraction,
        "max_tokens": int(dash["corpus_max_tokens"]),
        "long_texts": "truncate",
        "chunk_size": dash["corpus_max_texts"],  # chunk 0 = the first corpus_max_texts texts
        "text_field": dash["corpus_text_field"],
    }
    return dataclasses.replace(settings, extraction=extraction)


def extract_corpus(
    settings, dash: dict, tokens_out: str, activation_out: dict[tuple[str, int], str]
) -> dict:
    """Rule dashboard_corpus: extract the corpus's first texts with the study's extraction job
    (model and every SAE loaded once); write its token shard and one activation shard per
    (family, layer)."""
    from ..extraction.pipeline import extract_category

    summary = extract_category(
        corpus_settings(settings, dash),
        CORPUS_CATEGORY,
        str(dash["corpus"]),
        tokens_out,
        activation_out,
        chunk=0,
        n_chunks=None,
    )
    log.info("reference corpus %s: %s", dash["corpus"], summary)
    return summary

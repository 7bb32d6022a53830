"""Optional reference corpus (``dashboards.corpus``): a larger, general set of texts whose SAE
activations are extracted by the study's own extraction job (``extraction.pipeline``:
same model and SAE loading, streaming windows, per-token encoding, atomic shards), so that
max-activating examples also come from outside the study's texts.

The corpus file is read like a category file (``extraction.corpus``): ``.jsonl`` (the text
under ``dashboards.corpus_text_field``), ``.parquet`` (that column), ``.txt`` (one text per line,
or per blank-line-separated block with ``extraction.text_split: blank_lines``) or ``.yaml``.
Only its first ``corpus_max_texts`` texts are used, each truncated to ``corpus_max_tokens`` tokens
(BOS included). Its texts get the category ``corpus`` and ids ``corpus-<sha256 prefix>``.

Shards (the data contract's schemas, in their own directory):
``{R}/corpus/tokens.parquet`` and ``{R}/corpus/activations/sae={family}/layer={layer}.parquet``.
The model is loaded only inside ``extract_corpus`` (rule dashboard_corpus).
"""

from __future__ import annotations

import logging

from ..core.settings import ExtractionSettings
from ..extraction.loading import ModelAndSAEs

log = logging.getLogger(__name__)

CORPUS_CATEGORY = "corpus"


def extract_corpus(
    job: ModelAndSAEs,
    options: ExtractionSettings,
    corpus: str,
    tokens_out: str,
    activation_out: dict[tuple[str, int], str],
) -> dict:
    """Rule dashboard_corpus: extract the corpus's first ``options.chunk_size`` texts with the
    study's extraction job (model and every SAE loaded once); write its token shard and one
    activation shard per (family, layer)."""
    from ..extraction.pipeline import extract_category

    summary = extract_category(
        job, options, CORPUS_CATEGORY, str(corpus), tokens_out, activation_out, chunk=0
    )
    log.info("reference corpus %s: %s", corpus, summary)
    return summary

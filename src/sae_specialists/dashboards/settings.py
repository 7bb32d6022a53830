"""The ``dashboards:`` config section, with its defaults (also in the JSON schema)."""

from __future__ import annotations

import copy
from typing import Any

DEFAULTS: dict[str, Any] = {
    "top_k_features": 5,  # strongest and most frequent features per SAE and layer (<= 10)
    "examples": 10,  # max-activating examples per feature (one per text)
    "window": {"before": 10, "after": 4},  # tokens shown around the max token
    "quantiles": 4,  # activation quantile intervals below the top examples (0: none)
    "quantile_examples": 3,  # examples per quantile interval
    "histogram_bins": 40,
    "logit_top": 10,  # tokens listed per direction in the logit effects
    "corpus": None,  # optional reference corpus: .txt / .jsonl / .parquet
    "corpus_text_field": "text",  # JSONL key / Parquet column holding the text
    "corpus_max_texts": 1000,  # first N texts of the corpus (null: all)
    "corpus_max_tokens": 128,  # corpus texts are truncated to this many tokens (BOS included)
}


def dashboard_settings(config: dict) -> dict[str, Any]:
    """``config["dashboards"]`` merged over the defaults (``window`` merged key by key)."""
    given = dict(config.get("dashboards") or {})
    out = copy.deepcopy(DEFAULTS)
    window = given.pop("window", None) or {}
    out.update(given)
    out["window"] = {**DEFAULTS["window"], **window}
    return out

"""Feature dashboards: max-activating examples, activation quantiles, histogram, per-category
profile and logit effects of a feature, rendered as self-contained offline HTML pages.

Modules here read Parquet only (shards, analysis tables, logit effects) and never import torch,
transformer_lens or sae_lens at module level: the dashboard rules never load the model. The two
rules that do load it call ``logits.compute_logit_effects`` and ``corpus.extract_corpus`` (whose
heavy imports are inside the functions).
"""

from __future__ import annotations

__all__ = ["corpus", "data", "entry", "index", "logits", "render"]

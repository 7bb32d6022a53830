"""The data contract (docs/data-contract.md): the Arrow schemas of the token and activation
shards the extraction stage writes and every later stage reads.

- tokens shard: one row per stored position (BOS included and flagged, padding never);
- activation shard: one row per (token, feature) with activation > 0, with the JSON metadata
  (model, family, layer, d_sae, neuronpedia_id, ...) under the key ``sae_specialists``;
- pooled-residual shard (per family and layer): one row per text, the SAE's input vector
  averaged over the text's non-BOS stored positions (``resid_mean``), their number
  (``n_counted``) and the BOS position's vector (``resid_bos``, null without BOS); the
  validation stage's probe baselines read it (docs/data-contract.md).

Imports pyarrow: only jobs that read or write shards import this module.
"""

from __future__ import annotations

import pyarrow as pa

# a vocabulary token: its id, its text (core/tokens.py) and its raw bytes
TOKEN_FIELDS = [("token_id", pa.int32()), ("token", pa.string()), ("token_bytes", pa.binary())]

TOKENS_SCHEMA = pa.schema(
    [
        ("text_id", pa.string()),
        ("category", pa.string()),
        ("token_pos", pa.int32()),
        *TOKEN_FIELDS,
        ("bos", pa.bool_()),
    ]
)

ACTIVATIONS_SCHEMA = pa.schema(
    [
        ("text_id", pa.string()),
        ("token_pos", pa.int32()),
        ("feature", pa.int32()),
        ("activation", pa.float32()),
    ]
)

POOLED_SCHEMA = pa.schema(
    [
        ("text_id", pa.string()),
        ("category", pa.string()),
        ("n_counted", pa.int32()),
        ("resid_mean", pa.list_(pa.float32())),
        ("resid_bos", pa.list_(pa.float32())),
    ]
)

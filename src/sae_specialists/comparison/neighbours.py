"""One sweep over the SAEs' decoders: the unit decoder rows of the features of interest, and
their nearest features by decoder cosine.

Relations (docs/comparison.md), for a query feature q of SAE (family f, layer l):
- ``same_sae``: the other features of the same SAE (any hook: one SAE, one basis);
- ``next_layer``: the features of f's next layer (the next in f's own layer list);
- ``other_component``: the features of every other family g at the same layer l;
- ``written_into``: for an attention-out or MLP-out SAE (q is something block l's attention /
  MLP writes), the features of the residual SAE that first reads the residual stream after it,
  one per residual family (hooks.written_into: resid_pre of block l + 1, or resid_mid / post of
  block l when a family reads those).
The last three only between SAEs whose decoders live in the residual basis with the same d_in
(hooks.comparable): a hook_z SAE has same-SAE neighbours only.

Only neighbours whose cosine is above a floor (``min_cosine``, comparison.related_min_cosine)
are listed: a "nearest" feature at cosine 0.0 is no neighbour, and its rank would only follow
the feature id. A query with no neighbour above the floor in a searched SAE has one row for it
with ``rank``, ``other_feature`` and ``cosine`` null ("none above the floor").

The sweep goes layer by layer and loads each SAE's W_dec once: the SAEs of one layer are held
together (for other_component), then dropped; the next-layer search uses the query rows kept
from the previous layer, never its W_dec.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import polars as pl

from ..core.jobs import progress
from .decoders import nearest, unit_rows
from .hooks import comparable, written_into
from .tracking import family_layers

RELATED_COLUMNS = [
    "sae",
    "layer",
    "feature",
    "relation",
    "other_sae",
    "other_layer",
    "rank",
    "other_feature",
    "cosine",
]
RELATED_SCHEMA = {
    "sae": pl.String,
    "layer": pl.Int64,
    "feature": pl.Int64,
    "relation": pl.String,
    "other_sae": pl.String,
    "other_layer": pl.Int64,
    "rank": pl.Int64,
    "other_feature": pl.Int64,
    "cosine": pl.Float64,
}

Key = tuple[str, int]


def _rows(
    relation: str, src: Key, features: list[int], dst: Key, idx, cos, floor: float
) -> list[tuple]:
    """The neighbours above ``floor`` (ranks 1.. in cosine order), or one row with rank,
    feature and cosine null when there is none."""
    out = []
    for i, f in enumerate(features):
        head = (src[0], src[1], int(f), relation, dst[0], dst[1])
        kept = [r for r in range(idx.shape[1]) if cos[i, r] > floor]
        if not kept:
            out.append((*head, None, None, None))
        out += [(*head, r + 1, int(idx[i, r]), float(cos[i, r])) for r in kept]
    return out


def sweep_decoders(
    saes: pl.DataFrame,
    queries: Mapping[Key, list[int]],
    load: Callable[[Key], np.ndarray],
    k: int,
    min_cosine: float = 0.0,
) -> tuple[dict[tuple[str, int, int], np.ndarray], pl.DataFrame]:
    """(unit decoder row of every query feature, related-features table RELATED_COLUMNS).

    ``queries``: (family, layer) -> feature ids of interest; ``load(key)``: that SAE's W_dec.
    ``k`` neighbours per query and relation (per other family for other_component and
    written_into) with a cosine above ``min_cosine``; k = 0: rows only. Every SAE in ``saes``
    is loaded once, in layer order.
    """
    info = {(r["sae"], int(r["layer"])): r for r in saes.iter_rows(named=True)}
    layers_of = family_layers(saes)
    previous = {
        (f, layers[i]): (f, layers[i - 1])
        for f, layers in layers_of.items()
        for i in range(1, len(layers))
    }
    readers: dict[Key, list[Key]] = {}  # residual SAE -> the component SAEs it reads
    for component, targets in written_into(saes).items():
        for target in targets:
            readers.setdefault(target, []).append(component)
    by_layer: dict[int, list[Key]] = {}
    for key in sorted(info, key=lambda kk: (kk[1], kk[0])):
        by_layer.setdefault(key[1], []).append(key)
    directions: dict[tuple[str, int, int], np.ndarray] = {}
    related: list[tuple] = []

    def query_rows(key: Key) -> tuple[list[int], np.ndarray]:
        features = sorted(set(queries.get(key, [])))
        if not features:
            return [], np.zeros((0, 0))
        return features, np.stack([directions[(key[0], key[1], f)] for f in features])

    for layer in progress(sorted(by_layer), desc="decoders by layer", unit="layers"):
        loaded = {key: load(key) for key in by_layer[layer]}
        for key, w_dec in loaded.items():
            features = sorted(set(queries.get(key, [])))
            if features:
                rows = unit_rows(w_dec, features)
                directions.update({(key[0], key[1], f): rows[i] for i, f in enumerate(features)})
        if k <= 0:
            continue
        for key, w_dec in loaded.items():
            features, rows = query_rows(key)
            if features:
                idx, cos = nearest(rows, w_dec, k, exclude=features)
                related += _rows("same_sae", key, features, key, idx, cos, min_cosine)
            prev = previous.get(key)
            if prev is not None and comparable(info[prev], info[key]) is None:
                features, rows = query_rows(prev)
                if features:
                    idx, cos = nearest(rows, w_dec, k)
                    related += _rows("next_layer", prev, features, key, idx, cos, min_cosine)
            for other in loaded:
                if other[0] == key[0] or comparable(info[other], info[key]) is not None:
                    continue
                features, rows = query_rows(other)
                if features:
                    idx, cos = nearest(rows, w_dec, k)
                    related += _rows("other_component", other, features, key, idx, cos, min_cosine)
            # a component SAE at a layer label above its reader's has no rows yet (not in
            # `directions`): layer labels follow the blocks, so this does not happen in practice
            for component in readers.get(key, []):
                if component[1] > layer:
                    continue
                features, rows = query_rows(component)
                if features:
                    idx, cos = nearest(rows, w_dec, k)
                    related += _rows("written_into", component, features, key, idx, cos, min_cosine)
        del loaded
    frame = pl.DataFrame(related, schema=RELATED_SCHEMA, orient="row").sort(
        "sae", "layer", "feature", "relation", "other_sae", "other_layer", "rank", nulls_last=True
    )
    return directions, frame

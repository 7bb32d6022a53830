"""One (SAE family, layer) model job of the circuits stage: every specialist of the layer as a root,
on its category's texts, to raw tables (every feature, nothing ranked; docs/circuits.md).

The raw tables hold sums over the counted positions; ``circuits.rank`` divides, ranks and keeps
the top k, so changing ``top_k`` or a display setting reruns no model job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from ..core.jobs import progress as progress_bar
from .edges import Root, RootResult, root_circuit

ROOTS_SCHEMA = {
    "family": pl.String,
    "layer": pl.Int64,
    "category": pl.String,
    "feature": pl.Int64,
    "n_texts": pl.Int64,
    "n_tokens": pl.Int64,
    "clean_sum": pl.Float64,
}
_ROOT = {k: ROOTS_SCHEMA[k] for k in ("family", "layer", "category", "feature")}
DOWNSTREAM_SCHEMA = {
    **_ROOT,
    "target_family": pl.String,
    "target_layer": pl.Int64,
    "target_feature": pl.Int64,
    "n_tokens": pl.Int64,
    "clean_sum": pl.Float64,  # the target's activation, summed over the counted positions
    "change_sum": pl.Float64,  # ablated - clean, summed
    "abs_change_sum": pl.Float64,
}
UPSTREAM_SCHEMA = {
    **_ROOT,
    "source_family": pl.String,
    "source_layer": pl.Int64,
    "source_feature": pl.Int64,  # null: the SAE's error node
    "node": pl.String,  # "feature" | "error"
    "n_tokens": pl.Int64,
    "activation_sum": pl.Float64,  # the source's activation, summed (null: error node)
    "attribution_sum": pl.Float64,
}
VERIFIED_SCHEMA = {
    **_ROOT,
    "rank": pl.Int64,  # by |attribution|, 1 = largest
    "source_family": pl.String,
    "source_layer": pl.Int64,
    "source_feature": pl.Int64,
    "n_tokens": pl.Int64,
    "root_clean_sum": pl.Float64,
    "attribution_sum": pl.Float64,
    "ablation_drop_sum": pl.Float64,  # clean - ablated m, the source ablated alone
    "joint_remaining_sum": pl.Float64,  # m with ranks 1..rank ablated together
}
RAW_TABLES = ("roots", "downstream", "upstream", "verified")
SCHEMAS = {
    "roots": ROOTS_SCHEMA,
    "downstream": DOWNSTREAM_SCHEMA,
    "upstream": UPSTREAM_SCHEMA,
    "verified": VERIFIED_SCHEMA,
}


@dataclass(frozen=True)
class Options:
    verify: int = 10
    batch_size: int = 8


def empty_tables() -> dict[str, pl.DataFrame]:
    return {name: pl.DataFrame(schema=SCHEMAS[name]) for name in RAW_TABLES}


def run_roots(
    model,
    sites,
    roots: Sequence[Root],
    texts: dict[str, list[Sequence[int]]],
    options: Options,
    pad_id: int = 0,
) -> dict[str, pl.DataFrame]:
    """Every root on its category's texts (``texts``: category -> token ids, BOS first)."""
    results = []
    total = sum(len(texts.get(r.category, [])) for r in roots)
    with progress_bar(total=total, desc="circuits", unit="texts") as bar:
        for root in roots:
            results.append(
                root_circuit(
                    model,
                    sites,
                    root,
                    texts.get(root.category, []),
                    verify=options.verify,
                    batch_size=options.batch_size,
                    pad_id=pad_id,
                    progress=bar,
                )
            )
    return tables_of(results)


def tables_of(results: Sequence[RootResult]) -> dict[str, pl.DataFrame]:
    frames: dict[str, list[pl.DataFrame]] = {name: [] for name in RAW_TABLES}
    for r in results:
        key = {
            "family": r.root.family,
            "layer": r.root.layer,
            "category": r.root.category,
            "feature": r.root.feature,
        }
        frames["roots"].append(
            pl.DataFrame(
                [{**key, "n_texts": r.n_texts, "n_tokens": r.n_tokens, "clean_sum": r.clean_sum}],
                schema=ROOTS_SCHEMA,
            )
        )
        frames["downstream"] += [_downstream(key, r, site, d) for site, d in r.downstream.items()]
        frames["upstream"] += [_upstream(key, r, site, u) for site, u in r.upstream.items()]
        if r.verified is not None:
            frames["verified"].append(_verified(key, r))
    out = {}
    for name, parts in frames.items():
        parts = [p for p in parts if p.height]
        out[name] = (
            pl.concat(parts, how="vertical") if parts else pl.DataFrame(schema=SCHEMAS[name])
        )
    return out


def _repeat(key: dict, n: int) -> dict:
    return {k: [v] * n for k, v in key.items()}


def _downstream(key, r: RootResult, site, d) -> pl.DataFrame:
    keep = np.flatnonzero(d.abs_change > 0)
    n = len(keep)
    return pl.DataFrame(
        {
            **_repeat(key, n),
            "target_family": [site[0]] * n,
            "target_layer": [site[1]] * n,
            "target_feature": keep.astype(np.int64),
            "n_tokens": [r.n_tokens] * n,
            "clean_sum": d.clean[keep],
            "change_sum": d.change[keep],
            "abs_change_sum": d.abs_change[keep],
        },
        schema=DOWNSTREAM_SCHEMA,
    )


def _upstream(key, r: RootResult, site, u) -> pl.DataFrame:
    keep = np.flatnonzero(u.attribution != 0)
    n = len(keep) + 1
    return pl.DataFrame(
        {
            **_repeat(key, n),
            "source_family": [site[0]] * n,
            "source_layer": [site[1]] * n,
            "source_feature": [*keep.tolist(), None],
            "node": ["feature"] * (n - 1) + ["error"],
            "n_tokens": [r.n_tokens] * n,
            "activation_sum": [*u.activation[keep].tolist(), None],
            "attribution_sum": [*u.attribution[keep].tolist(), float(u.error)],
        },
        schema=UPSTREAM_SCHEMA,
    )


def _verified(key, r: RootResult) -> pl.DataFrame:
    v = r.verified
    n = len(v.nodes)
    return pl.DataFrame(
        {
            **_repeat(key, n),
            "rank": list(range(1, n + 1)),
            "source_family": [site[0] for site, _, _ in v.nodes],
            "source_layer": [site[1] for site, _, _ in v.nodes],
            "source_feature": [f for _, f, _ in v.nodes],
            "n_tokens": [r.n_tokens] * n,
            "root_clean_sum": [r.clean_sum] * n,
            "attribution_sum": [a for _, _, a in v.nodes],
            "ablation_drop_sum": v.drop,
            "joint_remaining_sum": v.joint_remaining,
        },
        schema=VERIFIED_SCHEMA,
    )

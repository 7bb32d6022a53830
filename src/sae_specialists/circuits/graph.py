"""Nodes, links and the graph JSON of the circuits stage (docs/circuits.md, "Graph JSON").

The JSON names its fields after circuit-tracer's / Neuronpedia's attribution-graph JSON where the
meaning is the same, so that a viewer of that format can read it with a thin adapter:

==========================  ===================================================================
ours                        circuit-tracer / Neuronpedia graph JSON
==========================  ===================================================================
``nodes[].node_id``         ``node_id`` (ours: ``family/layer/feature``, ``family/layer/error``)
``nodes[].jsNodeId``        ``jsNodeId`` (same as node_id)
``nodes[].feature``         ``feature`` (the SAE feature index; null for an error node)
``nodes[].layer``           ``layer`` (the SAE's layer; ``family`` names the SAE family)
``nodes[].ctx_idx``         ``ctx_idx``: always null — a node here is aggregated over every
                            counted position of the category's texts, not one prompt position
``nodes[].feature_type``    ``feature_type``: ``"sae feature"`` | ``"sae error"`` (circuit-tracer:
                            ``"cross layer transcoder"`` | ``"mlp reconstruction error"`` | ...)
``nodes[].activation``      ``activation`` (mean over the counted tokens, root nodes only)
``nodes[].clerp``           ``clerp`` (the node's label: its category if it is a specialist,
                            else its top promoted tokens)
``links[].source/target``   ``source`` / ``target`` (node ids)
``links[].weight``          ``weight``: the edge's effect per counted token (docs/circuits.md)
==========================  ===================================================================

Not in circuit-tracer's format: ``links[].kind`` (``ablation`` | ``attribution``),
``links[].ablation`` (the measured drop of a verified upstream edge), ``links[].root`` and
``links[].category`` (whose circuit the edge belongs to: an edge is measured on the root's
category texts), ``nodes[].hook``, ``nodes[].order`` (the node's column: hook order in the
forward pass), ``nodes[].specialist_of``, ``nodes[].promotes`` / ``suppresses`` and
``nodes[].dashboard``. There are no logit or embedding nodes: a node's direct effect on the
logits is in ``promotes`` / ``suppresses``.
"""

from __future__ import annotations

import polars as pl

from .rank import ROOT_KEY, node_id

FORMAT = "sae-specialists circuits graph v1"

NODES_SCHEMA = {
    "node_id": pl.String,
    "family": pl.String,
    "layer": pl.Int64,
    "feature": pl.Int64,  # null: error node
    "kind": pl.String,  # "feature" | "error"
    "hook": pl.String,
    "order": pl.Int64,  # the column: the hook's place in the forward pass
    "specialist_of": pl.List(pl.String),
    "promotes": pl.String,
    "suppresses": pl.String,
    "dashboard": pl.String,  # path relative to results_dir, null: no dashboard for the feature
}

LINKS_SCHEMA = {
    "family": pl.String,  # the root (the specialist whose circuit this edge belongs to)
    "layer": pl.Int64,
    "category": pl.String,
    "feature": pl.Int64,
    "root": pl.String,
    "direction": pl.String,  # "upstream" | "downstream"
    "source": pl.String,
    "target": pl.String,
    "rank": pl.Int64,  # null: error node
    "kind": pl.String,  # "ablation" (measured) | "attribution" (first-order estimate)
    "weight": pl.Float64,  # effect per counted token
    "relative": pl.Float64,  # downstream: / target clean mean; upstream: share of the root
    "ablation": pl.Float64,  # upstream, verified: the measured drop per counted token
    "target_is_specialist": pl.Boolean,
}


def links(down_top: pl.DataFrame, up_top: pl.DataFrame) -> pl.DataFrame:
    root = pl.concat_str(
        [pl.col("family"), pl.col("layer").cast(pl.String), pl.col("feature").cast(pl.String)],
        separator="/",
    )
    down = down_top.select(
        *ROOT_KEY,
        root.alias("root"),
        pl.lit("downstream").alias("direction"),
        root.alias("source"),
        pl.concat_str(
            [
                pl.col("target_family"),
                pl.col("target_layer").cast(pl.String),
                pl.col("target_feature").cast(pl.String),
            ],
            separator="/",
        ).alias("target"),
        "rank",
        pl.lit("ablation").alias("kind"),
        pl.col("effect").alias("weight"),
        "relative",
        pl.lit(None, pl.Float64).alias("ablation"),
        "target_is_specialist",
    )
    up = up_top.select(
        *ROOT_KEY,
        root.alias("root"),
        pl.lit("upstream").alias("direction"),
        pl.concat_str(
            [
                pl.col("source_family"),
                pl.col("source_layer").cast(pl.String),
                pl.col("source_feature").cast(pl.String).fill_null("error"),
            ],
            separator="/",
        ).alias("source"),
        root.alias("target"),
        "rank",
        pl.lit("attribution").alias("kind"),
        pl.col("attribution").alias("weight"),
        pl.col("share").alias("relative"),
        "ablation",
        pl.lit(True).alias("target_is_specialist"),
    )
    return pl.concat([down, up], how="vertical").cast(LINKS_SCHEMA).select(list(LINKS_SCHEMA))


def nodes(
    link_table: pl.DataFrame,
    sites: pl.DataFrame,
    specialists: pl.DataFrame,
    words: pl.DataFrame,
    dashboards: set[tuple[str, int, int]],
    dashboard_path,
) -> pl.DataFrame:
    """Every node a link touches; ``words``: family, layer, feature, promotes, suppresses;
    ``dashboards``: the (family, layer, feature) that have a dashboard page, whose path relative
    to results_dir is ``dashboard_path(family, layer, feature)``."""
    ids = sorted(set(link_table["source"].to_list()) | set(link_table["target"].to_list()))
    spec = {}
    s = (
        specialists.filter(pl.col("has_specialist"))
        if "has_specialist" in specialists.columns
        else specialists
    )
    for row in s.iter_rows(named=True):
        spec.setdefault((row["sae"], int(row["layer"]), int(row["feature"])), []).append(
            row["category"]
        )
    site = {(r["family"], int(r["layer"])): r for r in sites.iter_rows(named=True)}
    word = {
        (r["family"], int(r["layer"]), int(r["feature"])): r for r in words.iter_rows(named=True)
    }
    rows = []
    for nid in ids:
        family, layer, feature = nid.rsplit("/", 2)
        layer = int(layer)
        feat = None if feature == "error" else int(feature)
        s_ = site.get((family, layer), {})
        w = word.get((family, layer, feat), {}) if feat is not None else {}
        key = (family, layer, feat)
        rows.append(
            {
                "node_id": nid,
                "family": family,
                "layer": layer,
                "feature": feat,
                "kind": "error" if feat is None else "feature",
                "hook": s_.get("hook"),
                "order": s_.get("order"),
                "specialist_of": sorted(spec.get(key, [])),
                "promotes": w.get("promotes"),
                "suppresses": w.get("suppresses"),
                "dashboard": dashboard_path(family, layer, feat) if key in dashboards else None,
            }
        )
    return pl.DataFrame(rows, schema=NODES_SCHEMA)


def graph_json(
    node_table: pl.DataFrame, link_table: pl.DataFrame, summary: pl.DataFrame, metadata: dict
) -> dict:
    """The document (see the module docstring for the fields)."""
    act = {
        node_id(r["family"], r["layer"], r["feature"]): r["mean_activation"]
        for r in summary.iter_rows(named=True)
    }
    out_nodes = []
    for r in node_table.iter_rows(named=True):
        label = ", ".join(r["specialist_of"]) or (r["promotes"] or "")
        out_nodes.append(
            {
                **r,
                "jsNodeId": r["node_id"],
                "ctx_idx": None,
                "feature_type": "sae error" if r["kind"] == "error" else "sae feature",
                "activation": act.get(r["node_id"]),
                "clerp": label,
            }
        )
    return {
        "format": FORMAT,
        "metadata": metadata,
        "qParams": {
            "pinnedIds": [
                node_id(r["family"], r["layer"], r["feature"])
                for r in summary.iter_rows(named=True)
            ]
        },
        "nodes": out_nodes,
        "links": link_table.to_dicts(),
        "specialists": summary.to_dicts(),
    }

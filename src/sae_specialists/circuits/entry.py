"""Entry points of the circuits rules (workflow/rules/circuits.smk, docs/circuits.md).

- ``roots``: the analysis specialists table -> circuits/roots.json, every (family, layer)'s
  specialist set (its layer job takes its set as a param and this file as an ``ancient`` input,
  so a threshold change reruns a layer job only when its set changed).
- ``layer``: one (family, layer): the model and every SAE of the run loaded once; each
  specialist of the layer on its category's texts from the tokens shards -> raw tables (sums
  over counted positions, every feature; nothing ranked).
- ``tables``: every layer's raw tables -> ranked edges, nodes, the per-specialist summary
  (Parquet + CSV), graph.json, the pages and the findings board's verdict records. No model:
  ``top_k`` and the display settings are its params only.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import polars as pl

from ..core.errors import ModelError, ShardError
from ..core.io import write_parquet, write_tables, write_text
from ..core.layout import CIRCUITS_LAYER_TABLES as LAYER_TABLES

log = logging.getLogger("sae_specialists.circuits")

SITES_SCHEMA = {"family": pl.String, "layer": pl.Int64, "hook": pl.String, "order": pl.Int64}


def roots(smk: Any) -> None:
    """Rule circuits_roots."""
    from ..causal.entry import specialist_sets

    sets = specialist_sets(
        pl.read_parquet(smk.input.specialists), smk.params.sae_layers, smk.params.families
    )
    write_text(json.dumps(sets, indent=1, sort_keys=True) + "\n", smk.output[0])
    log.info("%d specialists in %d SAE layers", sum(map(len, sets.values())), len(sets))


def category_texts(token_paths, categories, max_texts: int | None) -> dict[str, list]:
    """category -> token ids (BOS first) of its first ``max_texts`` texts in shard order."""
    from ..causal.entry import read_texts

    out: dict[str, list] = {c: [] for c in categories}
    for text in read_texts(token_paths):
        if text.category in out and (max_texts is None or len(out[text.category]) < max_texts):
            out[text.category].append(text.ids)
    return out


def _write(frames: dict, outputs) -> None:
    for name in LAYER_TABLES:
        write_parquet(frames[name], outputs[name])


def layer(smk: Any) -> None:
    """Rule circuits_layer: one (family, layer)."""
    from .edges import Root
    from .run import empty_tables

    p = smk.params
    family, layer_ = str(p.family), int(p.layer)
    roots_ = [Root(family, layer_, int(f), str(c)) for c, f in p.roots]
    if not roots_:
        log.info("%s layer %d: no specialist (model not loaded)", family, layer_)
        _write({**empty_tables(), "sites": pl.DataFrame(schema=SITES_SCHEMA)}, smk.output)
        return

    import torch

    from ..extraction.loading import ModelAndSAEs
    from .edges import freeze, make_sites
    from .run import Options, run_roots

    torch.set_num_threads(smk.threads)
    max_texts = None if p.max_texts is None else int(p.max_texts)
    texts = category_texts(list(smk.input.tokens), {r.category for r in roots_}, max_texts)
    empty = sorted(c for c, t in texts.items() if not t)
    if empty:
        raise ShardError(
            f"circuits: the tokens shards hold no text of {empty}; rebuild them with `snakemake`."
        )
    job = ModelAndSAEs(dict(p.model), dict(p.saes), p.device, p.dtype)
    model, saes, device = job.load()
    if model.tokenizer.bos_token_id is None:
        raise ModelError("circuits: the model's tokenizer has no BOS token; set bos_token.")
    sites = make_sites(model, saes)
    freeze(model, sites)
    log.info(
        "%s layer %d: %d specialists, %d SAE sites, device %s, %d torch threads",
        family,
        layer_,
        len(roots_),
        len(sites),
        device,
        torch.get_num_threads(),
    )
    frames = run_roots(
        model,
        sites,
        roots_,
        texts,
        Options(verify=int(p.verify), batch_size=int(p.batch_size)),
        pad_id=int(model.tokenizer.pad_token_id or 0),
    )
    frames["sites"] = pl.DataFrame(
        [{"family": s.family, "layer": s.layer, "hook": s.hook, "order": s.order} for s in sites],
        schema=SITES_SCHEMA,
    )
    _write(frames, smk.output)


def _concat(paths) -> pl.DataFrame:
    frames = [pl.read_parquet(path) for path in paths]
    nonempty = [f for f in frames if f.height] or frames[:1]
    return pl.concat(nonempty, how="vertical") if nonempty else pl.DataFrame()


def read_logits(paths: dict, top: int) -> pl.DataFrame:
    """The dashboards' logit tables ("family/layer" -> path), ranks <= ``top``."""
    frames = []
    for key, path in paths.items():
        family, layer_ = key.rsplit("/", 1)
        frames.append(
            pl.scan_parquet(path)
            .filter(pl.col("rank") <= top)
            .select(
                pl.lit(family).alias("family"),
                pl.lit(int(layer_), pl.Int64).alias("layer"),
                pl.col("feature").cast(pl.Int64),
                "direction",
                pl.col("rank").cast(pl.Int64),
                "token_display",
            )
            .collect()
        )
    if not frames:
        return pl.DataFrame(
            schema={
                "family": pl.String,
                "layer": pl.Int64,
                "feature": pl.Int64,
                "direction": pl.String,
                "rank": pl.Int64,
                "token_display": pl.String,
            }
        )
    return pl.concat(frames, how="vertical")


def dashboard_features(dirs: dict) -> set[tuple[str, int, int]]:
    """(family, layer, feature) with a dashboard page (the dashboards' features.parquet)."""
    out = set()
    for key, directory in dirs.items():
        family, layer_ = key.rsplit("/", 1)
        table = Path(directory) / "features.parquet"
        if table.exists():
            for f in pl.read_parquet(table, columns=["feature"])["feature"].to_list():
                out.add((family, int(layer_), int(f)))
    return out


def tables(smk: Any) -> None:
    """Rule circuits_tables."""
    from ..core.verdicts import write_verdicts
    from .graph import graph_json, links, nodes
    from .pages import write_pages
    from .rank import RankOptions, downstream_edges, join_tokens, summary, upstream_edges
    from .verdicts import verdict_records

    i, p = smk.input, smk.params
    raw = {name: _concat(getattr(i, name)) for name in LAYER_TABLES}
    specialists = pl.read_parquet(i.specialists)
    options = RankOptions(top_k=int(p.top_k), floor=float(p.floor))
    logits = read_logits(dict(p.logit_paths), int(p.display["logit_tokens"]))
    down_top = downstream_edges(raw["downstream"], specialists, options)
    up_top = upstream_edges(raw["upstream"], raw["verified"], raw["roots"], options)
    summ = summary(
        raw["roots"], down_top, raw["downstream"], up_top, raw["verified"], logits, options
    )
    link_table = links(down_top, up_top)
    words = join_tokens(
        logits.select("family", "layer", "feature").unique(), logits, "family", "layer", "feature"
    )
    sites = raw["sites"].unique().sort("order") if raw["sites"].height else raw["sites"]
    results_dir = Path(smk.output.graph).parent.parent  # graph.json: results_dir/circuits/
    node_table = nodes(
        link_table,
        sites,
        specialists,
        words,
        dashboard_features(dict(p.dashboard_dirs)),
        lambda family, layer_, feature: str(
            Path(os.path.relpath(p.dashboard_dirs[f"{family}/{layer_}"], results_dir))
            / f"feature={feature}.html"
        ),
    )
    write_tables({"specialists": summ, "edges": link_table, "nodes": node_table}, smk.output)
    metadata = {"settings": dict(p.settings), "n_specialists": summ.height}
    document = graph_json(node_table, link_table, summ, metadata)
    write_text(json.dumps(document, indent=1, sort_keys=True, default=str) + "\n", smk.output.graph)
    write_pages(smk.output.pages, summ, node_table, link_table, results_dir, dict(p.display))
    n = write_verdicts(verdict_records(summ, sites), smk.output.verdicts)
    log.info(
        "%d specialists, %d edges, %d nodes, %d verdicts (%d dead ends)",
        summ.height,
        link_table.height,
        node_table.height,
        n,
        int(summ["dead_end"].sum()) if summ.height else 0,
    )

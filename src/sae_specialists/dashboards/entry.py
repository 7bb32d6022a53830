"""Entry points of the dashboard rules (called by the thin scripts/dashboard_*.py).

Files of one layer's dashboard directory ``{R}/dashboards/sae={family}/layer={layer}/``:
- ``feature={id}.html``: one dashboard per selected feature;
- ``index.html``: the layer's list of dashboards (what the Snakemake report shows);
- ``features.parquet``: one row per dashboard (roles, category and score, density, max, ...);
- ``examples.parquet``: every example shown (top and quantile), with its token window;
- ``histograms.parquet``, ``profiles.parquet``: the histogram bins and per-category profiles.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import polars as pl

from ..core.io import read_metadata, write_table_atomic, write_text
from ..core.settings import ExtractionSettings
from ..extraction.loading import ModelAndSAEs
from .data import Source, build_layer_data
from .index import build_index
from .render import feature_page, layer_page

log = logging.getLogger("sae_specialists.dashboards")

LAYER_TABLES = ("features", "examples", "histograms", "profiles")


def rel(target: str | os.PathLike, start_dir: str | os.PathLike) -> str:
    return Path(os.path.relpath(target, start_dir)).as_posix()


def write_layer(
    out_dir: str | os.PathLike,
    data,
    token_views: Mapping[str, str],
    index_path: str | os.PathLike,
    verdicts: Mapping[str, Mapping] | None = None,
    related: Callable[[int], str] | None = None,
    causal: Callable[[int], str] | None = None,
) -> list[Path]:
    """Write a layer's dashboards, list page and Parquet tables; returns the dashboard pages.
    ``token_views``: category -> the layer's token view page of that category; ``verdicts``:
    category -> the validation verdict of the layer's specialist of that category;
    ``related``: feature -> its related-features block (related.py)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "sae": data.family,
        "layer": data.layer,
        "settings": data.settings,
        "hook_name": data.meta.get("hook_name"),
        "neuronpedia_id": data.meta.get("neuronpedia_id"),
    }
    for name in LAYER_TABLES:
        write_table_atomic(getattr(data, name).to_arrow(), out / f"{name}.parquet", meta)
    pages = []
    for row in data.features.iter_rows(named=True):
        f = row["feature"]
        views = {
            cat: rel(token_views[cat], out)
            for cat in row["specialist_categories"] or []
            if cat in token_views
        }
        html = feature_page(
            row=row,
            examples=data.examples.filter(pl.col("feature") == f),
            histogram=data.histograms.filter(pl.col("feature") == f),
            profile=data.profiles.filter(pl.col("feature") == f),
            logits=data.logits.filter(pl.col("feature") == f)
            if data.logits.height
            else data.logits,
            settings=data.settings,
            links={"index": rel(index_path, out), "layer": "index.html", "token_view": views},
            verdicts={
                cat: v
                for cat, v in (verdicts or {}).items()
                if v.get("feature") == f and cat in (row["specialist_categories"] or [])
            },
            related=related(f) if related is not None else "",
            causal=causal(f) if causal is not None else "",
        )
        path = out / row["page"]
        write_text(html, path)
        pages.append(path)
    write_text(
        layer_page(data.features, data.family, data.layer, rel(index_path, out)), out / "index.html"
    )
    return pages


def logits(smk: Any) -> None:
    """Rule logit_effects: one SAE family (every layer) -> the logit effects of every feature."""
    import torch

    from .logits import compute_logit_effects

    torch.set_num_threads(smk.threads)
    p = smk.params
    job = ModelAndSAEs(dict(p.model), dict(p.saes), p.device, p.dtype)
    compute_logit_effects(
        job, list(smk.output.tables), top=p.top, histograms=list(smk.output.histograms)
    )


def corpus(smk: Any) -> None:
    """Rule dashboard_corpus: the reference corpus -> token shard + one activation shard per
    (family, layer) (``params.saes`` order)."""
    import torch

    from .corpus import extract_corpus

    torch.set_num_threads(smk.threads)
    p = smk.params
    job = ModelAndSAEs(dict(p.model), dict(p.saes), p.device, p.dtype)
    options = ExtractionSettings(
        batch_size=p.batch_size,
        max_tokens=p.max_tokens,
        long_texts="truncate",
        chunk_size=p.max_texts,  # chunk 0 = the first max_texts texts
        text_field=p.text_field,
        text_split=p.text_split,
        max_memory_gb=p.max_memory_gb,
        jobs="per_family",  # picks extraction rules; the corpus job is its own rule
    )
    outputs = dict(zip(p.saes, smk.output.activations, strict=True))
    extract_corpus(job, options, smk.input.corpus, smk.output.tokens, outputs)


def layer(smk: Any) -> None:
    """Rule dashboards_layer."""
    family, layer_ = str(smk.wildcards.family), int(smk.wildcards.layer)
    i, p = smk.input, smk.params
    sources = [Source("study", list(i.tokens), list(i.activations))]
    if p.corpus:
        sources.append(Source("corpus", [i.corpus_tokens], [i.corpus_activations]))
    meta = read_metadata(i.activations[0])
    logits = pl.read_parquet(i.logits)
    settings = dict(p.settings, aggregation=p.aggregation)
    data = build_layer_data(
        family=family,
        layer=layer_,
        sources=sources,
        texts=pl.read_parquet(i.texts),
        per_text=pl.scan_parquet(i.per_text),
        specialists=pl.read_parquet(i.specialists),
        strongest=pl.read_parquet(i.strongest),
        frequent=pl.read_parquet(i.frequent),
        logits=logits,
        settings=settings,
        include_bos=p.include_bos,
        threshold=p.threshold,
        meta=meta,
    )
    verdicts = dict(getattr(p, "validation", None) or {})  # category -> verdict
    related = None
    if getattr(i, "related", None):  # the comparison stage's table (docs/comparison.md)
        from .related import dashboard_pages, related_block

        table = pl.read_parquet(i.related)
        floor = read_metadata(i.related, required=False).get("min_cosine")
        pages_of = dashboard_pages(
            pl.read_parquet(i.specialists),
            pl.read_parquet(i.strongest),
            pl.read_parquet(i.frequent),
            {(str(f), int(x)): d for (f, x), d in dict(p.dashboard_dirs).items()},
            int(p.settings["top_k_features"]),
        )

        def related(f: int) -> str:
            return related_block(table, family, layer_, f, pages_of, smk.output[0], floor)

    causal = None
    if getattr(i, "causal_top_tokens", None):  # the causal stage's tables (docs/causal.md)
        from .causal import causal_block

        top = pl.read_parquet(i.causal_top_tokens)
        steering = pl.read_parquet(i.causal_steering)
        causal_verdicts = dict(p.causal or {})
        causal_pages = {c: rel(path, smk.output[0]) for c, path in dict(p.causal_pages).items()}

        def causal(f: int) -> str:
            return causal_block(f, top, steering, causal_verdicts, causal_pages)

    surface = None
    if getattr(i, "surface", None):  # what each specialist detects (docs/surface.md)
        from .surface import surface_block

        surface_table = pl.read_parquet(i.surface)

        def surface(f: int) -> str:
            return surface_block(surface_table, family, layer_, f)

    from .surface import chained

    pages = write_layer(
        smk.output[0],
        data,
        p.token_views,
        p.index,
        verdicts,
        related,
        causal=chained(causal, surface),  # the causal block, then "What it detects"
    )
    log.info(
        "dashboards %s layer %d: %d features, %d examples",
        family,
        layer_,
        len(pages),
        data.examples.height,
    )


def index(smk: Any) -> None:
    """Rule dashboards_index."""
    out = Path(smk.output[0])
    frames = []
    for d in smk.input.dirs:
        df = pl.read_parquet(Path(d) / "features.parquet")
        frames.append(
            df.with_columns((pl.lit(rel(d, out.parent) + "/") + pl.col("page")).alias("href"))
        )
    features = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
    # the verdict stages' records (core/verdicts.py; stages: (stage, title, mark) in order)
    from ..core.verdicts import read_verdicts

    stages = [tuple(s) for s in smk.params.verdict_stages]
    tables = [read_verdicts(path) for path in smk.input.verdicts]
    verdicts = pl.concat(tables) if tables else None
    write_text(build_index(features, dict(smk.params.settings), verdicts, stages), out)
    log.info("dashboards index: %d dashboards", features.height)

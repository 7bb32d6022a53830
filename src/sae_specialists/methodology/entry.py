"""Entry points of the methodology rules (scripts/methodology_*.py run them through
core.jobs.run)."""

from __future__ import annotations

import logging
from typing import Any

import polars as pl

from ..analysis import tables as tb
from ..core.errors import UserError
from ..core.io import write_csv, write_parquet, write_text

log = logging.getLogger("sae_specialists.methodology")


def _write(df: pl.DataFrame, parquet: str, csv: str, meta: dict | None = None) -> None:
    write_parquet(df, parquet, meta)
    write_csv(df, csv)


def _load(smk: Any):
    texts = pl.read_parquet(smk.input.texts)
    lazy, ids, metas = tb.scan_per_text(list(smk.input.per_text))
    check_dense_budget(lazy, texts.height, float(smk.params.max_dense_gb))
    return tb.collect(lazy), ids, sorted(metas), texts


def check_dense_budget(pt: pl.LazyFrame, n_texts: int, max_gb: float) -> float:
    """The methodology scores every active feature on dense texts x features matrices (one per
    SAE family and layer, all held at once). Refuse, before loading anything, when they would
    need more than ``max_gb``; returns the size in GB otherwise."""
    per_layer = pt.group_by("sae", "layer").agg(pl.col("feature").n_unique().alias("n"))
    per_layer = tb.collect(per_layer)
    gb = n_texts * int(per_layer["n"].sum()) * 8 / 1e9
    if gb > max_gb:
        raise UserError(
            f"the methodology study needs {gb:.1f} GB of dense per-text matrices here "
            f"({n_texts} texts x {int(per_layer['n'].sum())} active features over "
            f"{per_layer.height} SAE layers), more than methodology.max_dense_gb = {max_gb:g}. "
            "It is meant for study-size corpora (up to a few thousand texts); for a large corpus "
            "set methodology.enabled: false (the analysis and dashboards scale without it), or "
            "raise methodology.max_dense_gb if the machine has the memory."
        )
    return gb


def _layers(pt, texts, keys):
    from ..analysis.dense import layer_data

    return [layer_data(pt, texts, sae, layer) for sae, layer in keys]


def variants(smk: Any) -> None:
    """Rule methodology_variants: the model and every SAE loaded once, then each category's
    variants (``params.categories`` order, the order of every output list)."""
    import torch

    from ..extraction.loading import ModelAndSAEs
    from .variants import run_variants_job

    torch.set_num_threads(max(1, int(smk.threads)))
    p, out = smk.params, smk.output
    job = ModelAndSAEs(dict(p.model), dict(p.saes), p.device, p.dtype)
    token_paths = [list(p.tokens[c]) for c in p.categories]
    results = run_variants_job(job, token_paths, p.batch_size)
    for i, (category, (resid, pad, texts)) in enumerate(zip(p.categories, results, strict=True)):
        meta = {
            "category": str(category),
            "attention_mask": None,
            "padding_side": "right",
            "padded_length": int(texts["padded_length"].max() or 0),
            "pad_token_id": int(texts["pad_token_id"].max() or 0),
        }
        write_parquet(resid, out.resid[i], meta)
        write_parquet(pad, out.pad[i], meta)
        write_parquet(texts, out.texts[i], meta)
        log.info(
            "%s: %d texts padded to %d; %d aggregate-then-encode rows, %d pad rows",
            category,
            texts.height,
            meta["padded_length"],
            resid.height,
            pad.height,
        )


def ablation(smk: Any) -> None:
    from ..analysis.charts import job_script, save_chart  # altair: only the jobs that draw charts
    from . import charts as ch
    from .ablation import ablation_table

    p = smk.params
    acts = dict(p.activations)  # (family, layer) -> its activation shards
    variants = None
    if p.model_variants:
        variants = [
            {"resid": r, "pad": q, "texts": t}
            for r, q, t in zip(smk.input.resid, smk.input.pad, smk.input.pad_texts, strict=True)
        ]
    rows, summary = ablation_table(
        list(smk.input.tokens),
        acts,
        variants,
        float(p.threshold),
        int(p.candidates),
        str(p.aggregation),
        bool(p.include_bos),
    )
    o = smk.output
    _write(rows, o.rows, o.rows_csv)
    _write(summary, o.summary, o.summary_csv)
    save_chart(ch.ablation_chart(summary), o.chart_html, o.chart_png, script=job_script(smk))
    for r in summary.iter_rows(named=True):
        log.info(
            "%-45s %s layer %s: %s/%s",
            r["method"],
            r["sae"],
            r["layer"],
            r["specialists_found"],
            r["n_categories"],
        )


def sweep(smk: Any) -> None:
    from ..analysis.charts import job_script, save_chart  # altair: only the jobs that draw charts
    from . import charts as ch
    from .sweep import sweep_thresholds, threshold_sweep

    p = smk.params
    pt, _, keys, texts = _load(smk)
    grid = sweep_thresholds(list(p.thresholds), float(p.threshold))
    df = threshold_sweep(_layers(pt, texts, keys), grid, int(p.candidates))
    o = smk.output
    _write(df, o.table, o.table_csv)
    js = job_script(smk)
    save_chart(ch.sweep_chart(df, float(p.threshold)), o.chart_html, o.chart_png, script=js)


def scores(smk: Any) -> None:
    from ..analysis.charts import job_script, save_chart  # altair: only the jobs that draw charts
    from . import charts as ch
    from .allfeatures import all_feature_table
    from .auroc import auroc_table

    p = smk.params
    pt, ids, keys, texts = _load(smk)
    layers = _layers(pt, texts, keys)
    thr, k = float(p.threshold), int(p.candidates)
    allfeat = all_feature_table(layers, thr, k)
    auroc = tb.with_links(auroc_table(layers, thr, k), ids)
    o = smk.output
    _write(allfeat, o.all_features, o.all_features_csv)
    _write(allfeat.filter(pl.col("missed")), o.missed, o.missed_csv)
    _write(auroc, o.auroc, o.auroc_csv)
    save_chart(ch.topk_chart(allfeat), o.topk_html, o.topk_png, script=job_script(smk))
    save_chart(ch.auroc_chart(auroc), o.auroc_html, o.auroc_png, script=job_script(smk))
    log.info(
        "top-%d misses a better feature in %d of %d cells",
        k,
        int(allfeat["missed"].sum()),
        allfeat.height,
    )


def bootstrap(smk: Any) -> None:
    from ..analysis.bootstrap import bootstrap_table, stability_columns
    from ..analysis.charts import job_script, save_chart  # altair: only the jobs that draw charts
    from . import charts as ch

    p = smk.params
    pt, ids, keys, texts = _load(smk)
    thr, k = float(p.threshold), int(p.candidates)
    boot = bootstrap_table(
        _layers(pt, texts, keys), thr, k, int(p.resamples), int(p.seed), float(p.ci)
    )
    o = smk.output
    _write(tb.with_links(boot, ids), o.table, o.table_csv)
    _write(stability_columns(boot), o.stability, o.stability_csv)
    for sae, html, png in zip(p.families, o.charts_html, o.charts_png, strict=True):
        save_chart(ch.stability_chart(boot, sae), html, png, script=job_script(smk))
    rep = boot.filter(pl.col("has_specialist"))
    if rep.height:
        log.info(
            "%d specialists, median stability %.3f, min %.3f",
            rep.height,
            rep["stability"].median(),
            rep["stability"].min(),
        )


def report(smk: Any) -> None:
    from .report import build_report

    i, p = smk.input, smk.params
    ablation = pl.read_parquet(i.ablation) if getattr(i, "ablation", None) else None
    settings = dict(
        threshold=float(p.threshold),
        candidates=int(p.candidates),
        aggregation=str(p.aggregation),
        include_bos=bool(p.include_bos),
        bootstrap_resamples=int(p.resamples),
        seed=int(p.seed),
        ci=float(p.ci),
    )
    text = build_report(
        ablation=ablation,
        sweep=pl.read_parquet(i.sweep),
        auroc=pl.read_parquet(i.auroc),
        allfeat=pl.read_parquet(i.all_features),
        boot=pl.read_parquet(i.bootstrap),
        settings=settings,
    )
    write_text(text, smk.output[0])

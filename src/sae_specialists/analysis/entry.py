"""Entry points of the analysis rules (scripts/analysis_*.py run them through core.jobs.run).

Each takes the ``snakemake`` object of its job and wires its input, output, params (exactly the
settings the job uses) and wildcards to the package functions.
"""

from __future__ import annotations

import logging
from typing import Any

import polars as pl

from ..core.io import write_csv, write_parquet
from . import tables as tb
from .pertext import build_per_text, build_texts

log = logging.getLogger("sae_specialists.analysis")


def _write_table(df: pl.DataFrame, parquet: str, csv: str) -> None:
    write_parquet(df, parquet)
    write_csv(df, csv)


def _keys(metas: dict[tuple[str, int], dict]) -> pl.DataFrame:
    return pl.DataFrame(
        {"sae": [k[0] for k in metas], "layer": [k[1] for k in metas]},
        schema={"sae": pl.String, "layer": pl.Int64},
    )


def texts(smk: Any) -> None:
    df = build_texts(list(smk.input.tokens), smk.output[0], smk.params.include_bos)
    log.info("%d texts, %d categories", df.height, df["category"].n_unique())


def per_text(smk: Any) -> None:
    rows = build_per_text(
        list(smk.input.tokens),
        list(smk.input.activations),
        smk.output[0],
        family=str(smk.wildcards.family),
        layer=int(smk.wildcards.layer),
        aggregation=smk.params.aggregation,
        include_bos=smk.params.include_bos,
    )
    log.info("%d (text, feature) rows with value > 0", rows)


def peak_tables(smk: Any) -> None:
    pt, ids, metas = tb.scan_per_text(list(smk.input.per_text))
    txt = pl.read_parquet(smk.input.texts)
    out = {
        "strongest": tb.strongest(pt, txt),
        "frequent": tb.frequent(pt, txt),
        "category_peaks": tb.category_peaks(pt, txt, _keys(metas)),
    }
    for name, df in out.items():
        _write_table(tb.with_links(df, ids), smk.output[name], smk.output[name + "_csv"])


def candidates_and_stability(pt, txt, keys, p) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The candidates table and the bootstrap stability columns of the reported specialists
    (fraction of resamples of texts within categories in which the same feature wins, and a
    percentile interval of the score), one (sae, layer) in memory at a time, restricted to the
    features the rule can look at (``candidate_layer_data``): memory does not grow with the
    number of active features. The resamples depend only on the text list and the seed, so every
    layer sees the same ones."""
    from .bootstrap import bootstrap_table, stability_columns
    from .dense import candidate_layer_data

    cands, boots = [], []
    for sae, layer in keys:
        data = candidate_layer_data(pt, txt, sae, layer, p.candidates)
        cands.append(tb.layer_candidates(data, p.threshold, p.candidates))
        boots.append(bootstrap_table([data], p.threshold, p.candidates, p.resamples, p.seed, p.ci))
    boot = pl.concat(boots) if boots else bootstrap_table([], 0.0, 1, 1, 0)
    candidates = pl.concat(cands) if cands else pl.DataFrame(schema=tb.CANDIDATE_SCHEMA)
    return candidates, stability_columns(boot).drop("category_feature", strict=False)


def specialist_tables(smk: Any) -> None:
    p = smk.params
    pt, ids, metas = tb.scan_per_text(list(smk.input.per_text))
    txt = pl.read_parquet(smk.input.texts)
    cands, stability = candidates_and_stability(pt, txt, sorted(metas), p)
    specialists = tb.specialists(cands, txt, _keys(metas)).join(
        stability, on=["sae", "layer", "category", "feature"], how="left", nulls_equal=True
    )
    out = {
        "selective": tb.selective(pt, txt, p.threshold),
        "candidates": cands,
        "specialists": specialists,
    }
    for name, df in out.items():
        _write_table(tb.with_links(df, ids), smk.output[name], smk.output[name + "_csv"])
    for row in tb.specialists_found(specialists).iter_rows(named=True):
        log.info(
            "%s layer %s: %s/%s specialists",
            row["sae"],
            row["layer"],
            row["found"],
            row["n_categories"],
        )


def chart_script(smk: Any) -> None:
    """The run's shared Vega / Vega-Lite / vega-embed script (core/vega.py)."""
    from ..core.vega import write_chart_script

    write_chart_script(smk.output.script)


def peak_charts(smk: Any) -> None:
    from . import charts as ch  # altair: imported only by the chart rules

    i, o = smk.input, smk.output
    js = ch.job_script(smk)  # every page loads the run's shared Vega script
    ch.save_chart(
        ch.peak_by_layer(pl.read_parquet(i.strongest)), o.peak_html, o.peak_png, script=js
    )
    ch.save_chart(
        ch.peak_by_layer_category(pl.read_parquet(i.category_peaks)),
        o.peak_category_html,
        o.peak_category_png,
        script=js,
    )
    ch.save_chart(
        ch.coverage_by_layer(pl.read_parquet(i.frequent)),
        o.coverage_html,
        o.coverage_png,
        script=js,
    )


def specialist_charts(smk: Any) -> None:
    """The specialists-found chart, and one heatmap per SAE family (``params.families``, in the
    order of the heatmap outputs)."""
    from . import charts as ch

    spec = pl.read_parquet(smk.input.specialists)
    o = smk.output
    js = ch.job_script(smk)
    found = ch.specialists_found_chart(tb.specialists_found(spec))
    ch.save_chart(found, o.found_html, o.found_png, script=js)
    for sae, html_path, png_path in zip(
        smk.params.families, o.heatmap_html, o.heatmap_png, strict=True
    ):
        ch.save_chart(ch.specialist_heatmap(spec, sae), html_path, png_path, script=js)

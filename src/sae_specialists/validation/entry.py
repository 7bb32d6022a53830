"""Entry points of the validation rules (scripts/validation_*.py run them through
core.jobs.run). Each wires its job's input, output and params (exactly the settings it uses) to
the package functions; workflow/rules/validation.smk documents the rules."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ..core.errors import UserError
from ..core.io import write_csv, write_parquet, write_text

log = logging.getLogger("sae_specialists.validation")


def _pair(df: pl.DataFrame, parquet: str, csv: str) -> None:
    write_parquet(df, parquet)
    write_csv(df, csv)


def load_layer(per_text: str, texts: str, max_dense_gb: float):
    """The dense texts x active-features matrix of one per-text table (``LayerData``), after
    checking it fits in ``max_dense_gb``."""
    from ..analysis.dense import layer_data
    from ..analysis.tables import collect, scan_per_text

    txt = pl.read_parquet(texts)
    pt, _, metas = scan_per_text([per_text])
    ((sae, layer),) = metas
    n_active = collect(pt.select(pl.col("feature").n_unique())).item()
    gb = txt.height * int(n_active) * 8 / 1e9
    if gb > max_dense_gb:
        raise UserError(
            f"validation of {sae} layer {layer} needs a {gb:.1f} GB dense per-text matrix "
            f"({txt.height} texts x {n_active} active features), more than "
            f"validation.max_dense_gb = {max_dense_gb:g}. The stage is meant for study-size "
            "corpora; set validation.enabled: false for this corpus, or raise "
            "validation.max_dense_gb if the machine has the memory."
        )
    return layer_data(collect(pt), txt, sae, layer)


def _log_cells(rows: list[dict], message: str, values: Callable[[dict], tuple]) -> None:
    """One log line per cell row: its SAE, layer and category, then ``message`` with
    ``values(row)``."""
    for r in rows:
        log.info("%s layer %s %s: " + message, r["sae"], r["layer"], r["category"], *values(r))


def heldout(smk: Any) -> None:
    """Held-out selection and the random-feature floor of every SAE family and layer (one
    dense layer in memory at a time)."""
    from .cells import HELDOUT_SCHEMA, frame, heldout_layer
    from .heldout import FOLD_SCHEMA, heldout_frame

    p = smk.params
    folds, cells = [], []
    for path in smk.input.per_text:
        data = load_layer(path, smk.input.texts, p.max_dense_gb)
        held, rows = heldout_layer(
            data,
            threshold=p.threshold,
            candidates=p.candidates,
            n_folds=p.folds,
            seed=p.seed,
            draws=p.random_feature_draws,
            tolerance=p.density_tolerance,
        )
        folds.append(heldout_frame(held))
        cells += rows
        _log_cells(
            rows,
            "feature %s, held-out AUROC %s, fold agreement %s, floor %s",
            lambda r: (
                r["feature"],
                _f(r["heldout_auroc"]),
                _f(r["fold_agreement"]),
                _f(r["floor_auroc"]),
            ),
        )
    write_parquet(pl.concat(folds) if folds else pl.DataFrame(schema=FOLD_SCHEMA), smk.output.folds)
    write_parquet(frame(cells, HELDOUT_SCHEMA), smk.output.cells)


def null(smk: Any) -> None:
    """Shuffled-label null of every SAE family and layer (the same permutations for all)."""
    from .cells import NULL_CELL_SCHEMA, frame, null_layer_rows
    from .null import NULL_SCHEMA, null_frame, permutations

    p = smk.params
    frames, cells = [], []
    for path in smk.input.per_text:
        data = load_layer(path, smk.input.texts, p.max_dense_gb)
        labels = data.cat_index[permutations(data.n_texts, p.permutations, p.seed)]
        nulls, rows = null_layer_rows(
            data, labels, threshold=p.threshold, candidates=p.candidates, seed=p.seed
        )
        frames += [null_frame(data, c, res) for c, res in zip(data.categories, nulls, strict=True)]
        cells += rows
        _log_cells(
            rows,
            "p = %s, null 95th percentile of the best score %s",
            lambda r: (_f(r["p_value"], 4), _f(r["null_score_p95"], 0)),
        )
    write_parquet(
        pl.concat(frames) if frames else pl.DataFrame(schema=NULL_SCHEMA), smk.output.null
    )
    write_parquet(frame(cells, NULL_CELL_SCHEMA), smk.output.cells)


BASELINE_SCHEMA = {
    "sae": pl.String,
    "layer": pl.Int64,
    "category": pl.String,
    "fold": pl.Int64,
    "method": pl.String,
    "k": pl.Int64,
    "auroc": pl.Float64,
    "balanced_accuracy": pl.Float64,
    "C": pl.Float64,
    "features": pl.String,
}


def baselines(smk: Any) -> None:
    """Difference of means, dense probe and k-sparse probes of one (family, layer), on the
    held-out folds of every category."""
    from .baselines import baseline_rows
    from .folds import category_folds
    from .residuals import read_pooled

    p = smk.params
    data = load_layer(smk.input.per_text, smk.input.texts, p.max_dense_gb)
    x = read_pooled(list(smk.input.pooled), data.text_ids, p.include_bos)
    rows = []
    for c, category in enumerate(data.categories):
        folds = category_folds(data.cat_index, c, p.folds, p.seed)
        if folds is None:
            continue
        for r in baseline_rows(
            x,
            data.values,
            data.features,
            data.cat_index == c,
            folds,
            ks=tuple(p.probe_k),
            seed=p.seed,
            threads=smk.threads,
        ):
            rows.append({"sae": data.sae, "layer": data.layer, "category": category, **r})
    df = (
        pl.DataFrame(rows, schema=BASELINE_SCHEMA) if rows else pl.DataFrame(schema=BASELINE_SCHEMA)
    )
    write_parquet(df, smk.output[0])
    means = (
        df.group_by("category", "method", "k")
        .agg(pl.col("auroc").mean())
        .sort("category", "method", "k")
    )
    for category, method, k, auc in means.iter_rows():
        log.info(
            "%s layer %s %s: %s%s held-out AUROC %s",
            data.sae,
            data.layer,
            category,
            method,
            "" if k is None else f" k={k}",
            _f(auc),
        )


def _concat(paths, schema=None) -> pl.DataFrame:
    frames = [pl.read_parquet(p) for p in paths]
    if not frames:
        return pl.DataFrame(schema=schema)
    return pl.concat(frames, how="vertical")


def verdicts(smk: Any) -> None:
    """The cell table with verdicts (+ the folds and baselines tables, verdicts.json and the
    findings board's records; summary.md: rule validation_summary)."""
    from .table import join_cells, with_verdicts

    p = smk.params
    cells = join_cells(pl.read_parquet(smk.input.heldout), pl.read_parquet(smk.input.null))
    # layers without pooled-residual shards (made before them, or elsewhere) have no baselines
    base = _concat(smk.input.baselines, BASELINE_SCHEMA) if p.baselines else None
    shown = tuple(["dense_probe"] + ([f"ksparse_{k}" for k in p.shown_k]))
    out = with_verdicts(
        cells, base, alpha=p.alpha, min_auroc=p.min_auroc, probe_margin=p.probe_margin, shown=shown
    )
    out = out.sort("sae", "layer", "category")
    _pair(out, smk.output.cells, smk.output.cells_csv)
    _pair(
        pl.read_parquet(smk.input.folds).sort("sae", "layer", "category", "fold"),
        smk.output.folds,
        smk.output.folds_csv,
    )
    if p.baselines:
        _pair(
            base.sort("sae", "layer", "category", "fold", "method", "k", nulls_last=False),
            smk.output.baselines,
            smk.output.baselines_csv,
        )
    write_text(verdicts_json(out), smk.output.verdicts)
    from ..core.verdicts import write_verdicts
    from .board import verdict_records

    write_verdicts(verdict_records(out), smk.output.board)
    for r in out.filter(pl.col("has_specialist")).iter_rows(named=True):
        log.info("%s layer %s %s: %s", r["sae"], r["layer"], r["category"], r["verdict_text"])


def summary(smk: Any) -> None:
    """validation/summary.md and summary.html from the cell table; with the surface stage's
    records, what each specialist detects, linked to surface/summary.md (core/crosslinks.py)."""
    from ..core.crosslinks import cell, relative, stage_labels
    from .report import build_summary, summary_page

    i, o, p = smk.input, smk.output, smk.params
    cells = pl.read_parquet(i.cells)
    surface = None
    if i.surface:
        surface = cell(stage_labels(i.surface[0]), relative(p.surface_summary, o.summary))
    text = build_summary(cells, dict(p.summary), surface)
    for section in i.learning_curve:  # validation_learning_curve's
        text = text.rstrip("\n") + "\n\n" + Path(section).read_text(encoding="utf-8")
    write_text(text, o.summary)
    write_text(summary_page(text), o.summary_html)


VERDICT_KEYS = (
    "feature",
    "has_specialist",
    "heldout_auroc",
    "p_value",
    "verdict",
    "verdict_text",
    "fails_heldout",
)


def verdicts_json(cells: pl.DataFrame) -> str:
    """What the report and the dashboards show, keyed "family/layer/category" (sorted keys,
    rounded numbers: the file's content changes only when what is shown changes)."""
    out = {}
    for r in cells.iter_rows(named=True):
        row = {k: r[k] for k in VERDICT_KEYS}
        for k in ("heldout_auroc", "p_value"):
            row[k] = None if row[k] is None else round(float(row[k]), 4)
        out[f"{r['sae']}/{r['layer']}/{r['category']}"] = row
    return json.dumps(out, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def charts(smk: Any) -> None:
    """Per SAE family: held-out AUROC by layer vs baselines, the null, the marked heatmap."""
    from ..analysis.charts import job_script, save_chart, specialist_heatmap
    from . import charts as ch

    cells = pl.read_parquet(smk.input.cells)
    nulls = pl.read_parquet(smk.input.null)
    spec = pl.read_parquet(smk.input.specialists)
    marks = cells.select("sae", "layer", "category", "verdict", "fails_heldout")
    spec = spec.join(marks, on=["sae", "layer", "category"], how="left")
    o, js = smk.output, job_script(smk)
    for i, sae in enumerate(smk.params.families):
        save_chart(ch.heldout_chart(cells, sae), o.heldout_html[i], o.heldout_png[i], script=js)
        save_chart(ch.null_chart(nulls, cells, sae), o.null_html[i], o.null_png[i], script=js)
        save_chart(specialist_heatmap(spec, sae), o.heatmap_html[i], o.heatmap_png[i], script=js)


def test_set(smk: Any) -> None:
    """The full-data specialists evaluated on the separate test texts (validation.test_texts)."""
    from ..analysis.dense import layer_data
    from ..analysis.tables import collect, scan_per_text
    from .heldout import TEST_SET_SCHEMA, test_set_rows

    p = smk.params
    study_txt = pl.read_parquet(smk.input.texts)
    test_txt = pl.read_parquet(smk.input.test_texts)
    rows = []
    for study_path, test_path in zip(smk.input.per_text, smk.input.test_per_text, strict=True):
        pt, _, metas = scan_per_text([study_path])
        ((sae, layer),) = metas
        tpt, _, _ = scan_per_text([test_path])
        study = layer_data(collect(pt), study_txt, sae, layer)
        test = layer_data(collect(tpt), test_txt, sae, layer)
        rows += test_set_rows(study, test, p.threshold, p.candidates)
    df = (
        pl.DataFrame(rows, schema=TEST_SET_SCHEMA) if rows else pl.DataFrame(schema=TEST_SET_SCHEMA)
    )
    _pair(df, smk.output.table, smk.output.table_csv)


def learning_curve(smk: Any) -> None:
    """How many texts each finding needs: the learning curve of every cell (one dense layer in
    memory at a time), its tables, summary section, findings-board records and charts."""
    from ..analysis.charts import job_script, save_chart
    from ..core.jobs import progress
    from ..core.verdicts import write_verdicts
    from . import learning_curve as lc
    from .table import join_cells

    p = smk.params
    s = lc.CurveSettings(
        ladder=tuple(p.ladder),
        draws=p.draws,
        permutations=p.permutations,
        pass_share=p.pass_share,
        folds=p.folds,
        seed=p.seed,
        threshold=p.threshold,
        candidates=p.candidates,
        alpha=p.alpha,
        min_auroc=p.min_auroc,
    )
    # the top rung (every text) is the stage's own cell: validation_heldout's and _null's
    stage = join_cells(pl.read_parquet(smk.input.heldout), pl.read_parquet(smk.input.null))
    draws = []
    for path in smk.input.per_text:
        data = load_layer(path, smk.input.texts, p.max_dense_gb)
        bar = progress(
            total=lc.n_jobs(data.category_sizes(), s),
            desc=f"{data.sae} layer {data.layer} learning curve",
            unit="subsamples",
        )
        draws.append(lc.curve_layer(data, s, stage, bar.update))
        bar.close()
    draw_df = pl.concat(draws) if draws else pl.DataFrame(schema=lc.DRAW_SCHEMA)
    rungs = lc.rung_table(draw_df, s.pass_share)
    cells = lc.cell_table(rungs, lc.full_frame(stage), s)
    o = smk.output
    write_parquet(draw_df.sort("sae", "layer", "category", "n", "draw"), o.draws)
    _pair(rungs, o.rungs, o.rungs_csv)
    _pair(cells, o.cells, o.cells_csv)
    write_verdicts(lc.verdict_records(cells), o.verdicts)
    write_text(lc.summary_markdown(cells, s), o.summary)
    for r in cells.iter_rows(named=True):
        log.info("%s layer %s: %s", r["sae"], r["layer"], r["sentence"])
    js = job_script(smk)
    for i, sae in enumerate(p.families):
        chart = lc.curve_chart(rungs, sae, s.alpha, s.min_auroc)
        save_chart(chart, o.chart_html[i], o.chart_png[i], script=js)


def _f(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "–"
    return f"{x:.{digits}f}"

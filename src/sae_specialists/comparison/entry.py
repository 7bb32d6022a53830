"""Entry points of the comparison rules (scripts/comparison_*.py run them through core.jobs.run).

Each wires its job's snakemake input/output/params to study.py and writes every table as
Parquet + CSV and every chart as HTML (loading the run's shared Vega script) + PNG.
"""

from __future__ import annotations

import logging
from typing import Any

import polars as pl

from ..core.io import write_csv, write_parquet, write_tables
from . import study
from .charts import components_chart, links_chart, splits_chart

log = logging.getLogger("sae_specialists.comparison")


def _save(chart, smk: Any) -> None:
    from ..analysis.charts import job_script, save_chart

    save_chart(chart, smk.output.chart_html, smk.output.chart_png, script=job_script(smk))


def _activations(p: Any) -> dict[tuple[str, int], list[str]]:
    return {(str(f), int(layer)): list(paths) for (f, layer), paths in dict(p.activations).items()}


def _sources(p: Any) -> dict[tuple[str, int], dict]:
    return {(str(f), int(layer)): dict(src) for (f, layer), src in dict(p.saes).items()}


def _n_positions(texts_path: str) -> int:
    return int(pl.read_parquet(texts_path, columns=["n_counted"])["n_counted"].sum())


def _coactivation_inputs(i: Any, p: Any) -> tuple:
    """(activation shard paths, counted positions, their number): the study's ``activations``,
    ``counted`` and ``n_positions`` arguments."""
    counted = study.counted_by_shard(list(i.tokens), bool(p.include_bos))
    return _activations(p), counted, _n_positions(i.texts)


def components(smk: Any) -> None:
    """Rule comparison_components."""
    saes = study.sae_frame(list(smk.input.per_text))
    out = study.components(study.read_specialists(smk.input.specialists), saes)
    write_tables(out, smk.output)
    _save(components_chart(out["components"]), smk)
    first = out["component_first"].filter(pl.col("first"))
    log.info(
        "first family per category: %s", dict(zip(first["category"], first["sae"], strict=True))
    )


def related(smk: Any) -> None:
    """Rule comparison_related."""
    from ..analysis.tables import scan_per_text

    i, p = smk.input, smk.params
    saes = study.sae_frame(list(i.per_text))
    per_text, _, _ = scan_per_text(list(i.per_text))
    keys = list(saes.select("sae", "layer").iter_rows())
    candidates = study.candidate_features(per_text, pl.read_parquet(i.texts), keys, p.candidates)
    features = study.features_of_interest(
        candidates, pl.read_parquet(i.strongest), pl.read_parquet(i.frequent)
    )
    out = study.related(
        features,
        saes,
        study.decoder_loader(_sources(p)),
        *_coactivation_inputs(i, p),
        int(p.neighbours),
        float(p.min_cosine),
    )
    # the floor goes with the table: the dashboards say "none above <floor>"
    related_ = out["related_features"]
    write_parquet(related_, smk.output.related_features, {"min_cosine": float(p.min_cosine)})
    write_csv(related_, smk.output.related_features_csv)
    write_parquet(out["feature_directions"], smk.output.feature_directions)


def tracking(smk: Any) -> None:
    """Rule comparison_tracking."""
    i, p = smk.input, smk.params
    saes = study.sae_frame(list(i.per_text))
    out = study.tracking(
        study.read_specialists(i.specialists),
        pl.read_parquet(i.related_features),
        study.read_directions(pl.read_parquet(i.feature_directions)),
        saes,
        *_coactivation_inputs(i, p),
    )
    write_tables(out, smk.output)
    _save(links_chart(out["specialist_members"], out["specialist_links"]), smk)


def splits(smk: Any) -> None:
    """Rule comparison_splits."""
    from ..analysis.tables import scan_per_text

    i, p = smk.input, smk.params
    saes = study.sae_frame(list(i.per_text))
    per_text, _, _ = scan_per_text(list(i.per_text))
    out = study.splits(
        study.read_specialists(i.specialists),
        saes,
        per_text,
        study.decoder_loader(_sources(p)),
        *_coactivation_inputs(i, p),
        float(p.threshold),
        float(p.split_min_correlation),
        float(p.split_min_cosine),
    )
    write_tables(out, smk.output)
    _save(splits_chart(out["splits"]), smk)
    log.info("%d ladder members, %d child rows", out["ladders"].height, out["splits"].height)

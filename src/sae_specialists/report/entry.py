"""Entry points of the analysis stage's report rules: ``analysis_token_views`` (the token views
of each category's specialist) and ``analysis_report`` (summary.md and analysis.html, with the
findings board of the verdict stages that need no model: report/findings.py)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import polars as pl

from ..analysis.tokenview import build_token_views
from ..core.io import read_metadata, write_text
from .doc import link
from .findings import (
    add_headlines,
    against_marks,
    board_cells,
    board_html,
    headline_inputs,
    load_verdicts,
)
from .index import build_index
from .summary import build_summary, study_families

log = logging.getLogger("sae_specialists.report")


def token_views(smk: Any) -> None:
    """Token views of every (family, layer): one page per category's specialist (rule
    analysis_token_views)."""
    i, p = smk.input, smk.params
    specialists = pl.read_parquet(i.specialists)
    texts_df = pl.read_parquet(i.texts)
    for (family, layer), per_text_path in p.per_text.items():
        activations = p.activations[(family, layer)]
        log.info("token views %s layer %d: %d activation shards", family, layer, len(activations))
        build_token_views(
            sae=family,
            layer=layer,
            specialists=specialists,
            per_text=pl.scan_parquet(per_text_path),
            texts=texts_df,
            token_paths=list(i.tokens),
            activation_paths=activations,
            outputs=p.token_views[(family, layer)],
            neuronpedia_id=read_metadata(per_text_path).get("neuronpedia_id"),
            include_bos=p.include_bos,
            threshold=p.threshold,
            index_path=p.index,
        )


def dashboard_linker(dashboard_dirs: dict, page: str | os.PathLike):
    """(family, layer, feature) -> the dashboard's path relative to ``page`` (keys of
    ``dashboard_dirs``: "family/layer")."""
    base = Path(page).parent

    def href(family: str, layer: int, feature: int) -> str | None:
        d = dashboard_dirs.get(f"{family}/{int(layer)}")
        if d is None:
            return None
        return Path(os.path.relpath(Path(d) / f"feature={int(feature)}.html", base)).as_posix()

    return href


def report(smk: Any) -> None:
    """summary.md and analysis.html (rule analysis_report)."""
    i, o, p = smk.input, smk.output, smk.params
    specialists = pl.read_parquet(i.specialists)
    stages = list(p.verdict_stages)
    tables = dict(zip(stages, list(i.verdicts), strict=True))
    cells = board_cells(specialists, load_verdicts(tables), stages)
    summary_doc = build_summary(
        strongest=pl.read_parquet(i.strongest),
        frequent=pl.read_parquet(i.frequent),
        selective=pl.read_parquet(i.selective),
        specialists=specialists,
        texts=pl.read_parquet(i.texts),
        settings={
            "aggregation": p.aggregation,
            "include_bos": p.include_bos,
            "threshold": p.threshold,
            "candidates": p.candidates,
            "study_families": study_families(p.model_name, dict(p.sae_releases)),
        },
        marks=against_marks(cells),
    )
    if i.validation:  # the validation stage's verdicts (docs/validation.md)
        from ..validation.workflow import read_verdicts
        from .validation import add_summary_section

        rel = os.path.relpath(p.validation_summary, os.path.dirname(o.summary))
        add_summary_section(summary_doc, read_verdicts(i.validation), Path(rel).as_posix())
    if "causal" in p.left_out and p.causal_index:  # it runs the model: its results' page
        rel = os.path.relpath(p.causal_index, os.path.dirname(o.summary))
        summary_doc.h(2, "Causal check")
        summary_doc.p(
            "Its verdicts (ablation runs the model, so `snakemake analysis` never reruns it) "
            "are on the findings board of index.html and at ",
            link("causal/pages/index.html", Path(rel).as_posix()),
            ".",
        )
    # the stages' headlines (the surface stage's depth sentence): report/findings.py
    add_headlines(
        summary_doc,
        *headline_inputs(p.headline_stages, i.headlines, p.headline_links, o.summary),
    )
    write_text(summary_doc.to_markdown(), o.summary)
    board = board_html(
        cells,
        stages,
        dashboard_href=dashboard_linker(dict(p.dashboard_dirs), o.index),
        left_out_stages=list(p.left_out),
    )
    views = {
        (family, layer, category): page
        for (family, layer), pages in p.token_views.items()
        for category, page in pages.items()
    }
    page = build_index(
        output=o.index,
        board=board,
        cells=cells,
        summary=summary_doc,
        summary_md=o.summary,
        tables=dict(p.tables),
        charts=[tuple(chart) for chart in p.charts],
        token_views=views,
        specialists=specialists,
        per_text=[path for path in p.per_text.values()],
        texts_path=i.texts,
    )
    write_text(page, o.index)

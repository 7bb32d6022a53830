"""Entry point of rule analysis_report: the token views of each category's specialist,
summary.md and index.html linking every table, chart and view (one job: a threshold change
reruns three jobs, the specialist tables, then this and the specialist charts side by side)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import polars as pl

from ..analysis.tokenview import build_token_views
from ..core.io import read_metadata, write_text
from .index import build_index
from .summary import build_summary, study_families

log = logging.getLogger("sae_specialists.report")


def _token_views(smk: Any) -> None:
    """Token views of every (family, layer): one page per category's specialist."""
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
            index_path=smk.output.index,
        )


def report(smk: Any) -> None:
    """Token views, summary.md and index.html (rule analysis_report)."""
    i, o, p = smk.input, smk.output, smk.params
    _token_views(smk)
    summary_doc = build_summary(
        strongest=pl.read_parquet(i.strongest),
        frequent=pl.read_parquet(i.frequent),
        selective=pl.read_parquet(i.selective),
        specialists=pl.read_parquet(i.specialists),
        texts=pl.read_parquet(i.texts),
        settings={
            "aggregation": p.aggregation,
            "include_bos": p.include_bos,
            "threshold": p.threshold,
            "candidates": p.candidates,
            "study_families": study_families(p.model_name, dict(p.sae_releases)),
        },
    )
    verdicts = dict(getattr(p, "validation", None) or {})
    if verdicts:  # the validation stage's verdicts (docs/validation.md)
        from .validation import add_summary_section

        rel = os.path.relpath(p.validation_summary, os.path.dirname(o.summary))
        add_summary_section(summary_doc, verdicts, Path(rel).as_posix())
    causal = getattr(p, "causal", None)
    if causal is not None:  # the causal check's verdicts (docs/causal.md)
        from .causal import add_summary_section as add_causal_section

        rel = os.path.relpath(p.causal_index, os.path.dirname(o.summary))
        add_causal_section(summary_doc, dict(causal), Path(rel).as_posix())
    write_text(summary_doc.to_markdown(), o.summary)
    views = {
        (family, layer, category): page
        for (family, layer), pages in p.token_views.items()
        for category, page in pages.items()
    }
    page = build_index(
        output=o.index,
        summary=summary_doc,
        summary_md=o.summary,
        tables=dict(p.tables),
        charts=[tuple(chart) for chart in p.charts],
        token_views=views,
        specialists=pl.read_parquet(i.specialists),
        per_text=list(i.per_text),
        texts_path=i.texts,
        verdicts=verdicts,
        causal=dict(causal or {}),
    )
    write_text(page, o.index)

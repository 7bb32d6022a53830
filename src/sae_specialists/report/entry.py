"""Entry point of rule analysis_report: the token views of each category's specialist,
summary.md and index.html linking every table, chart and view (one job)."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import polars as pl

from ..analysis.entry import SAE_IN_NAME, _settings, by_sae_layer, logged
from ..analysis.shards import read_metadata, write_text
from ..analysis.tokenview import build_token_views
from .index import build_index
from .summary import build_summary


def _summary_doc(smk: Any):
    i = smk.input
    return build_summary(
        strongest=pl.read_parquet(i.strongest),
        frequent=pl.read_parquet(i.frequent),
        selective=pl.read_parquet(i.selective),
        specialists=pl.read_parquet(i.specialists),
        texts=pl.read_parquet(i.texts),
        settings=_settings(smk),
    )


def _token_views(smk: Any, lg: logging.Logger) -> None:
    """Token views of every (family, layer): one page per category's specialist."""
    i, p = smk.input, smk.params
    per_text_paths = by_sae_layer(list(i.per_text))
    activations = by_sae_layer(list(i.activations))
    pages = by_sae_layer(list(p.token_views))
    specialists = pl.read_parquet(i.specialists)
    texts_df = pl.read_parquet(i.texts)
    for (family, layer), per_text_path in per_text_paths.items():
        lg.info("token views %s layer %d: %d activation shards", family, layer,
                len(activations[(family, layer)]))
        build_token_views(
            sae=family,
            layer=layer,
            specialists=specialists,
            per_text=pl.scan_parquet(per_text_path[0]),
            texts=texts_df,
            token_paths=list(i.tokens),
            activation_paths=activations[(family, layer)],
            outputs={Path(page).stem: page for page in pages[(family, layer)]},
            neuronpedia_id=read_metadata(per_text_path[0]).get("neuronpedia_id"),
            include_bos=bool(p.include_bos),
            threshold=float(p.threshold),
            index_path=smk.output.index,
        )


_VIEW = re.compile(r"sae=([A-Za-z0-9_-]+)/layer=(\d+)/([A-Za-z0-9_-]+)\.html$")
CHART_TITLES = {
    "peak_by_layer": "Peak activation by layer",
    "peak_by_layer_category": "Peak activation by layer and category",
    "coverage_by_layer": "Coverage of the most frequent feature by layer",
    "specialists_found": "Specialists found per layer",
}


def report(smk: Any) -> None:
    """Token views, summary.md and index.html (rule analysis_report)."""
    with logged(smk, "report (token views, summary, index)") as lg:
        i, o = smk.input, smk.output
        _token_views(smk, lg)
        summary_doc = _summary_doc(smk)
        write_text(summary_doc.to_markdown(), o.summary)
        tables = {}
        for pq_path in i.tables:
            if pq_path.endswith(".parquet"):
                tables[Path(pq_path).stem] = (pq_path, pq_path[: -len(".parquet")] + ".csv")
        charts = []
        for html_path in [p for p in smk.params.charts if p.endswith(".html")]:
            stem = Path(html_path).stem
            m = SAE_IN_NAME.search(stem)
            title = f"Specialist scores, SAE {m.group(1)}" if m else CHART_TITLES.get(stem, stem)
            charts.append((title, html_path, html_path[: -len(".html")] + ".png"))
        views = {}
        for page in smk.params.token_views:
            m = _VIEW.search(Path(page).as_posix())
            views[(m.group(1), int(m.group(2)), m.group(3))] = page
        page = build_index(
            output=o.index,
            summary=summary_doc,
            summary_md=o.summary,
            tables=tables,
            charts=charts,
            token_views=views,
            specialists=pl.read_parquet(i.specialists),
            per_text=list(i.per_text),
            texts_path=i.texts,
        )
        write_text(page, o.index)

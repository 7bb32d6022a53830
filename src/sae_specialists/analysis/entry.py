"""Entry points called by the thin scripts/analysis_*.py (one per Snakemake rule).

Each takes the ``snakemake`` object that Snakemake injects into a script and wires its input,
output, params and wildcards to the package functions; logging goes to the rule's log file.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl

from . import tables as tb
from .pertext import build_per_text, build_texts
from .shards import write_csv, write_parquet

log = logging.getLogger("sae_specialists.analysis")


@contextmanager
def logged(smk: Any, what: str) -> Iterator[logging.Logger]:
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if getattr(smk, "log", None) and len(smk.log):
        Path(smk.log[0]).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(smk.log[0], mode="w", encoding="utf-8"))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        handlers=handlers,
        force=True,
    )
    start = time.perf_counter()
    log.info("%s: start", what)
    try:
        yield log
    except Exception:
        log.exception("%s: failed", what)
        raise
    log.info(
        "%s: done in %.2f s, peak RSS %d MB, polars threads %d",
        what,
        time.perf_counter() - start,
        peak_rss_mb(),
        pl.thread_pool_size(),
    )


def peak_rss_mb() -> int:
    """Peak resident memory of this job's process so far (Linux: ru_maxrss is in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def _settings(smk: Any) -> dict[str, Any]:
    p = smk.params
    return {
        "aggregation": p.aggregation,
        "include_bos": bool(p.include_bos),
        "threshold": float(p.threshold),
        "candidates": int(p.candidates),
    }


def _write_table(df: pl.DataFrame, parquet: str, csv: str) -> None:
    write_parquet(df, parquet)
    write_csv(df, csv)


def _keys(metas: dict[tuple[str, int], dict]) -> pl.DataFrame:
    return pl.DataFrame(
        {"sae": [k[0] for k in metas], "layer": [k[1] for k in metas]},
        schema={"sae": pl.String, "layer": pl.Int64},
    )


def texts(smk: Any) -> None:
    with logged(smk, "texts") as lg:
        df = build_texts(list(smk.input.tokens), smk.output[0], bool(smk.params.include_bos))
        lg.info("%d texts, %d categories", df.height, df["category"].n_unique())


def per_text(smk: Any) -> None:
    with logged(smk, f"per-text {smk.wildcards.family} layer {smk.wildcards.layer}") as lg:
        rows = build_per_text(
            list(smk.input.tokens),
            list(smk.input.activations),
            smk.output[0],
            family=str(smk.wildcards.family),
            layer=int(smk.wildcards.layer),
            aggregation=str(smk.params.aggregation),
            include_bos=bool(smk.params.include_bos),
        )
        lg.info("%d (text, feature) rows with value > 0", rows)


def peak_tables(smk: Any) -> None:
    with logged(smk, "peak tables"):
        pt, ids, metas = tb.scan_per_text(list(smk.input.per_text))
        txt = pl.read_parquet(smk.input.texts)
        out = {
            "strongest": tb.strongest(pt, txt),
            "frequent": tb.frequent(pt, txt),
            "category_peaks": tb.category_peaks(pt, txt, _keys(metas)),
        }
        for name, df in out.items():
            _write_table(tb.with_links(df, ids), smk.output[name], smk.output[name + "_csv"])


def with_stability(specialists: pl.DataFrame, pt, txt, keys, p) -> pl.DataFrame:
    """Add bootstrap stability (fraction of resamples of texts within categories in which the
    same feature wins) and a percentile interval of the score to the specialists table.

    One layer in memory at a time, restricted to the features the selection can look at
    (``candidate_layer_data``): memory does not grow with the number of active features."""
    from .bootstrap import bootstrap_table, stability_columns
    from .dense import candidate_layer_data

    k = int(p.candidates)
    layers = (candidate_layer_data(pt, txt, sae, layer, k) for sae, layer in keys)
    boot = bootstrap_table(
        layers, float(p.threshold), k, int(p.resamples), int(p.seed), float(p.ci)
    )
    columns = stability_columns(boot).drop("category_feature", strict=False)
    return specialists.join(
        columns, on=["sae", "layer", "category", "feature"], how="left", nulls_equal=True
    )


def specialist_tables(smk: Any) -> None:
    with logged(smk, "specialist tables") as lg:
        pt, ids, metas = tb.scan_per_text(list(smk.input.per_text))
        txt = pl.read_parquet(smk.input.texts)
        thr, k = float(smk.params.threshold), int(smk.params.candidates)
        cands = tb.candidates(pt, txt, thr, k)
        out = {
            "selective": tb.selective(pt, txt, thr),
            "candidates": cands,
            "specialists": with_stability(
                tb.specialists(cands, txt, _keys(metas)), pt, txt, sorted(metas), smk.params
            ),
        }
        for name, df in out.items():
            _write_table(tb.with_links(df, ids), smk.output[name], smk.output[name + "_csv"])
        found = tb.specialists_found(out["specialists"])
        for row in found.iter_rows(named=True):
            lg.info(
                "%s layer %s: %s/%s specialists",
                row["sae"],
                row["layer"],
                row["found"],
                row["n_categories"],
            )


def peak_charts(smk: Any) -> None:
    from . import charts as ch  # altair: imported only by the chart rules

    with logged(smk, "peak charts"):
        i, o = smk.input, smk.output
        ch.save_chart(ch.peak_by_layer(pl.read_parquet(i.strongest)), o.peak_html, o.peak_png)
        ch.save_chart(
            ch.peak_by_layer_category(pl.read_parquet(i.category_peaks)),
            o.peak_category_html,
            o.peak_category_png,
        )
        ch.save_chart(
            ch.coverage_by_layer(pl.read_parquet(i.frequent)), o.coverage_html, o.coverage_png
        )


SAE_IN_NAME = re.compile(r"sae=([A-Za-z0-9_-]+)")


def specialist_charts(smk: Any) -> None:
    from . import charts as ch

    with logged(smk, "specialist charts"):
        spec = pl.read_parquet(smk.input.specialists)
        o = smk.output
        ch.save_chart(
            ch.specialists_found_chart(tb.specialists_found(spec)), o.found_html, o.found_png
        )
        for html_path, png_path in zip(o.heatmap_html, o.heatmap_png, strict=True):
            sae = SAE_IN_NAME.search(Path(html_path).name).group(1)
            ch.save_chart(ch.specialist_heatmap(spec, sae), html_path, png_path)


_SAE_LAYER_IN_PATH = re.compile(r"sae=([A-Za-z0-9_-]+)/layer=(\d+)(?:/|\.parquet$)")


def by_sae_layer(paths: list[str]) -> dict[tuple[str, int], list[str]]:
    """Group contract paths (``.../sae=F/layer=L/...`` or ``.../sae=F/layer=L.parquet``) by
    (family, layer), keeping their order."""
    out: dict[tuple[str, int], list[str]] = {}
    for path in paths:
        match = _SAE_LAYER_IN_PATH.search(Path(path).as_posix())
        if match is None:
            raise ValueError(f"no sae=F/layer=N in path {path}")
        out.setdefault((match.group(1), int(match.group(2))), []).append(str(path))
    return out

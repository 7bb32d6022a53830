"""Entry points of the surface rules (scripts/surface_*.py run them through core.jobs.run). Each
wires its job's input, output and params (exactly the settings it uses) to the package
functions; workflow/rules/surface.smk documents the rules."""

from __future__ import annotations

import logging
from typing import Any

import polars as pl

from ..core.io import write_csv, write_parquet, write_text
from ..core.verdicts import write_verdicts

log = logging.getLogger("sae_specialists.surface")


def _pair(df: pl.DataFrame, parquet: str, csv: str) -> None:
    write_parquet(df, parquet)
    write_csv(df, csv)


def layer_specialists(specialists: pl.DataFrame, sae: str, layer: int) -> pl.DataFrame:
    """The (category, feature) of every specialist of (sae, layer), categories sorted."""
    return (
        specialists.filter(
            (pl.col("sae") == sae) & (pl.col("layer") == int(layer)) & pl.col("has_specialist")
        )
        .select("category", pl.col("feature").cast(pl.Int64))
        .sort("category")
    )


def layer(smk: Any) -> None:
    """The token measures of one (family, layer): token and bigram R², top-token mass, trigger
    tokens inside vs outside the category, for every specialist of the layer."""
    from .cells import frames, specialist_rows
    from .data import read_activations, read_tokens

    p, w = smk.params, smk.wildcards
    sae, layer_id = str(w.family), int(w.layer)
    texts = pl.read_parquet(smk.input.texts)
    wanted = layer_specialists(pl.read_parquet(smk.input.specialists), sae, layer_id)
    tokens = read_tokens(smk.input.tokens, texts, p.include_bos)
    acts = read_activations(smk.input.activations, tokens, wanted["feature"].to_list())
    rows, token_rows = [], []
    for category, feature in wanted.iter_rows():
        row, toks = specialist_rows(
            sae,
            layer_id,
            category,
            feature,
            tokens,
            acts[feature],
            p.folds,
            p.seed,
            p.trigger_mass,
            p.max_triggers,
        )
        rows.append(row)
        token_rows += toks
        log.info(
            "%s layer %s %s: feature %s, token R² %s, bigram R² %s, outside ratio %s",
            sae,
            layer_id,
            category,
            feature,
            row["token_r2"],
            row["bigram_r2"],
            row["outside_ratio"],
        )
    specialists_df, tokens_df = frames(rows, token_rows)
    write_parquet(specialists_df, smk.output.specialists)
    write_parquet(tokens_df, smk.output.tokens)


def probe_texts(smk: Any) -> None:
    """Every probe set in one text file (one extraction job per family) and its index."""
    from pathlib import Path

    from .probe import write_probe_texts

    files = {c: {k: Path(v) for k, v in sets.items()} for c, sets in smk.params.files.items()}
    index = write_probe_texts(files, smk.output.texts, smk.output.index)
    log.info("%d probe texts (%d categories with sets)", index.height, len(files) - 1)


def probe_measures(smk: Any, specialists: pl.DataFrame) -> pl.DataFrame:
    """The probe measures (``probe.probe_table``) of the specialists of the probed layers,
    from the probe texts' shards: per text, the feature's largest activation over the counted
    positions (the analysis' per-text ``max``, same BOS rule)."""
    from ..analysis.pertext import per_text_values
    from .probe import probe_table

    p = smk.params
    tokens = list(smk.input.probe_tokens)
    acts = list(smk.input.probe_activations)
    frames = []
    for i, (sae, layer_id) in enumerate(p.probe_layers):
        paths = acts[i * len(tokens) : (i + 1) * len(tokens)]
        pt = per_text_values(tokens, paths, p.aggregation, p.include_bos)
        frames.append(
            pt.select(
                pl.lit(str(sae)).alias("sae"),
                pl.lit(int(layer_id), dtype=pl.Int64).alias("layer"),
                "text_id",
                pl.col("feature").cast(pl.Int64),
                pl.col("max").alias("value"),  # its largest activation on the text
            )
        )
    probed = pl.DataFrame(
        {
            "sae": [str(f) for f, _ in p.probe_layers],
            "layer": [int(x) for _, x in p.probe_layers],
        },
        schema={"sae": pl.String, "layer": pl.Int64},
    )
    wanted = specialists.join(probed, on=["sae", "layer"], how="semi")
    index = pl.read_parquet(smk.input.probe_index[0])
    table = probe_table(wanted, pl.concat(frames), index, p.threshold)
    for r in table.iter_rows(named=True):
        log.info(
            "%s layer %s %s: fires on %s/%s meaning-only, %s/%s marker-only, %s/%s neutral",
            *(r[k] for k in ("sae", "layer", "category", "meaning_fired", "meaning_n")),
            *(r[k] for k in ("markers_fired", "markers_n", "neutral_fired", "neutral_n")),
        )
    return table


def verdicts(smk: Any) -> None:
    """Every layer's measures with a verdict per specialist, the per-layer shares, the chart,
    the findings board's records and the depth sentence, the stage's headline (summary.md:
    rule surface_summary)."""
    from ..analysis.charts import job_script, save_chart
    from .report import board_records, depth_sentence, layer_shares, r2_chart, with_verdicts
    from .verdict import Thresholds

    p = smk.params
    thresholds = Thresholds(p.token_r2_min, p.outside_min, p.gated_max, p.fires_min, p.auroc_min)
    parts = [pl.read_parquet(path) for path in smk.input.specialists]
    measured = pl.concat(parts, how="vertical")
    if p.probe_layers:
        probes = probe_measures(smk, measured)
        measured = measured.join(probes, on=["sae", "layer", "category", "feature"], how="left")
    specialists = with_verdicts(measured, thresholds)
    tokens = pl.concat([pl.read_parquet(path) for path in smk.input.tokens], how="vertical")
    layers = layer_shares(specialists)
    _pair(specialists, smk.output.specialists, smk.output.specialists_csv)
    _pair(tokens, smk.output.tokens, smk.output.tokens_csv)
    _pair(layers, smk.output.layers, smk.output.layers_csv)
    write_verdicts(board_records(specialists), smk.output.board)
    write_text(depth_sentence(layers) + "\n", smk.output.headline)
    save_chart(
        r2_chart(specialists), smk.output.chart_html, smk.output.chart_png, script=job_script(smk)
    )
    for r in specialists.select("sae", "layer", "category", "verdict_label").iter_rows():
        log.info("%s layer %s %s: %s", *r)


def summary(smk: Any) -> None:
    """surface/summary.md: the depth sentence, the per-layer shares and every specialist with
    its verdict, and beside it its validation and causal verdicts (linked to their summaries)
    when those stages ran (core/crosslinks.py)."""
    from ..core.crosslinks import column, relative, stage_labels
    from .report import summary_md

    i, p, out = smk.input, smk.params, smk.output[0]
    specialists = pl.read_parquet(i.specialists)
    links = {}
    if i.validation:
        href = relative(p.validation_summary, out)
        links["validation"] = column(specialists, stage_labels(i.validation[0]), href)
    if i.causal:
        links["causal check"] = column(
            specialists,
            stage_labels(i.causal[0]),
            lambda r: relative(
                causal_page(p.causal_pages, r["sae"], r["layer"], r["category"]), out
            ),
        )
    text = summary_md(specialists, pl.read_parquet(i.layers), dict(p.summary), links)
    write_text(text, out)


def causal_page(pages: str, family: str, layer, category: str) -> str:
    """A causal cell's page under the causal pages directory (causal/pages.py's layout)."""
    from ..causal.pages import cell_page_path

    return f"{pages}/{cell_page_path(family, int(layer), category)}"


def topics(smk: Any) -> None:
    """The topic x form design of every measured family and layer (surface/topics.py): forms
    (specialists against the other topics and against every category, top-k selective
    features, marker mass share), topics (Jaccard overlaps, pooled geometry), and the rank
    correlation of selectivity with causal Δloss when the causal stage ran."""
    from .design import causal_correlation, causal_specialists, design_tables, topics_summary

    p, i = smk.params, smk.input
    n = len(p.layers)
    per_text, acts = list(i.per_text), list(i.activations)
    pooled = list(i.pooled)
    a, b = len(acts) // n if n else 0, len(pooled) // n if n else 0
    layers = [
        dict(
            sae=str(sae),
            layer=int(layer_id),
            per_text=per_text[k],
            activations=acts[k * a : (k + 1) * a],
            pooled=pooled[k * b : (k + 1) * b],
        )
        for k, (sae, layer_id) in enumerate(p.layers)
    ]
    forms, topic_rows = design_tables(
        layers,
        tokens=list(i.tokens),
        texts=i.texts,
        specialists=pl.read_parquet(i.specialists),
        design=dict(p.design),
        markers={c: list(m) for c, m in dict(p.markers).items()},
        threshold=p.threshold,
        candidates=p.candidates,
        topk=p.topk,
        permutations=p.permutations,
        seed=p.seed,
        include_bos=p.include_bos,
    )
    specialists = pl.read_parquet(i.specialists)
    effects = pl.read_parquet(i.causal_effects[0]) if i.causal_effects else None
    causal = causal_correlation(specialists, effects)
    _pair(forms, smk.output.forms, smk.output.forms_csv)
    _pair(topic_rows, smk.output.topics, smk.output.topics_csv)
    _pair(causal, smk.output.causal, smk.output.causal_csv)
    summary = topics_summary(
        forms, topic_rows, causal, dict(p.summary), causal_specialists(specialists, effects)
    )
    write_text(summary, smk.output.summary)
    for r in topic_rows.iter_rows(named=True):
        log.info(
            "%s layer %s topic %s: Jaccard top-k %s, specialists %s; cosine within topic %s, "
            "across %s, p %s",
            *(r[k] for k in ("sae", "layer", "topic", "jaccard_topk", "jaccard_specialists")),
            *(r[k] for k in ("within_topic", "across", "p_value")),
        )

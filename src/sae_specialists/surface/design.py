"""The topic x form design's tables (surface/topics.py has the measures; docs/surface.md).

forms: one row per (family, layer, category of the design, ``against``): ``other_topics`` (the
    texts of the same topic's other forms absent) or ``all`` (the analysis' own rule: every
    other category counts as out); the specialist (feature, score, n_in, n_out), its top-k
    selective features and its marker mass share over the form's counted positions.
topics: one row per (family, layer, topic): Jaccard of its forms' top-k sets and of their
    specialists, both ways; the topic's own within-topic cosine, and the layer's pooled
    geometry (within topic, within form, across both, permutation p).
causal: the rank correlation (Spearman) of the analysis specialists' selectivity score with
    their causal Δloss inside the category (zero ablation), when the causal stage ran; and how
    often zero-ablating a specialist changes the top-1 predicted token on its category's loss
    positions (causal ``top1_changed_share``): pooled over every specialist's positions
    (``top1_changed_share``, of ``top1_positions``), the mean of the specialists' shares, and
    how many specialists change at least one prediction. Per specialist:
    :func:`causal_specialists` (summary.md).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from ..analysis.dense import layer_data
from ..analysis.selection import select
from ..validation.residuals import read_pooled
from .data import read_activations, read_tokens
from .topics import (
    Design,
    against_other_topics,
    geometry,
    marker_share,
    mean_pairwise_jaccard,
    selective_features,
)

AGAINST = ("other_topics", "all")
FORM_SCHEMA = {
    "sae": pl.String,
    "layer": pl.Int64,
    "category": pl.String,
    "topic": pl.String,
    "form": pl.String,
    "against": pl.String,
    "feature": pl.Int64,
    "score": pl.Int64,
    "n_in": pl.Int64,
    "n_out": pl.Int64,
    "has_specialist": pl.Boolean,
    "topk_features": pl.String,
    "marker_share": pl.Float64,
}
TOPIC_SCHEMA = {
    "sae": pl.String,
    "layer": pl.Int64,
    "topic": pl.String,
    "n_forms": pl.Int64,
    "jaccard_topk": pl.Float64,
    "jaccard_specialists": pl.Float64,
    "jaccard_topk_all": pl.Float64,
    "jaccard_specialists_all": pl.Float64,
    "topic_within": pl.Float64,
    "within_topic": pl.Float64,
    "within_form": pl.Float64,
    "across": pl.Float64,
    "p_value": pl.Float64,
    "permutations": pl.Int64,
}
CAUSAL_SCHEMA = {
    "n_specialists": pl.Int64,
    "spearman_rho": pl.Float64,
    "p_value": pl.Float64,
    "top1_changed_share": pl.Float64,  # pooled: changed positions / positions, every specialist
    "top1_positions": pl.Int64,
    "top1_mean_share": pl.Float64,  # the mean of the specialists' own shares
    "top1_n_changing": pl.Int64,  # specialists that change at least one top-1 prediction
}


def _per_text(path: str) -> pl.DataFrame:
    from ..analysis.tables import collect, scan_per_text

    pt, _, _ = scan_per_text([path])
    return collect(pt)


def _token_texts(tokens, positions: np.ndarray) -> list[str]:
    raw = tokens.token_bytes
    return [raw[int(t)].decode("utf-8", errors="ignore") for t in tokens.positions.token[positions]]


def design_tables(
    layers: list[dict],
    *,
    tokens: list[str],
    texts: str,
    specialists: pl.DataFrame,
    design: dict[str, str],
    markers: dict[str, list[str]],
    threshold: float,
    candidates: int,
    topk: int,
    permutations: int,
    seed: int,
    include_bos: bool,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(forms, topics) of every layer in ``layers`` (dicts: sae, layer, per_text, activations,
    pooled)."""
    txt = pl.read_parquet(texts)
    tok = read_tokens(tokens, txt, include_bos)
    d = Design.parse(design, tok.categories)
    form_rows, topic_rows = [], []
    for spec in layers:
        sae, layer = spec["sae"], spec["layer"]
        data = layer_data(_per_text(spec["per_text"]), txt, sae, layer)
        rows = _form_rows(data, tok, d, specialists, spec, markers, threshold, candidates, topk)
        form_rows += rows
        pooled = read_pooled(spec["pooled"], data.text_ids, include_bos)
        topic_rows += _topic_rows(data, d, rows, pooled, permutations, seed)
    forms = (
        pl.DataFrame(form_rows, schema=FORM_SCHEMA)
        if form_rows
        else pl.DataFrame(schema=FORM_SCHEMA)
    )
    topics = (
        pl.DataFrame(topic_rows, schema=TOPIC_SCHEMA)
        if topic_rows
        else pl.DataFrame(schema=TOPIC_SCHEMA)
    )
    return forms, topics


def _form_rows(data, tok, d, specialists, spec, markers, threshold, candidates, topk):
    sae, layer = spec["sae"], spec["layer"]
    rows = []
    wanted = {}
    for category in sorted(d.cells):
        c = data.categories.index(category)
        for against in AGAINST:
            w = (
                against_other_topics(data.categories, data.cat_index, d, category)
                if against == "other_topics"
                else np.ones((1, data.n_texts), dtype=np.int64)
            )
            sel = select(data, c, weights=w, threshold=threshold, k=candidates)
            has = bool(sel.has_specialist[0])
            top = selective_features(
                data.values, data.features, data.cat_index, c, w[0], threshold, topk
            )
            topic, form = d.cells[category]
            row = dict(
                sae=sae,
                layer=layer,
                category=category,
                topic=topic,
                form=form,
                against=against,
                feature=int(sel.feature[0]) if sel.feature[0] >= 0 else None,
                score=int(sel.score[0]),
                n_in=int(sel.n_in[0]),
                n_out=int(sel.n_out[0]),
                has_specialist=has,
                topk_features=" ".join(str(f) for f in top),
                marker_share=None,
            )
            rows.append(row)
            if has and markers.get(category):
                wanted.setdefault(row["feature"], []).append(row)
    if wanted:
        acts = read_activations(spec["activations"], tok, list(wanted))
        text_cat = tok.positions.cat_index[tok.positions.text]
        for feature, form_rows in wanted.items():
            for row in form_rows:
                at = np.flatnonzero(text_cat == tok.categories.index(row["category"]))
                row["marker_share"] = marker_share(
                    _token_texts(tok, at), acts[feature][at], markers[row["category"]]
                )
    return rows


def _topic_rows(data, d, form_rows, pooled, permutations, seed):
    in_design = np.isin(np.array(data.categories)[data.cat_index], list(d.cells))
    names = np.array(data.categories)[data.cat_index][in_design]
    topic = np.array([d.cells[c][0] for c in names])
    form = np.array([d.cells[c][1] for c in names])
    g = geometry(pooled[in_design], topic, form, permutations, seed)
    x = pooled[in_design]
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-300)
    out = []
    for t, cats in d.topics().items():
        by = {a: [r for r in form_rows if r["topic"] == t and r["against"] == a] for a in AGAINST}
        mask = topic == t
        sims = x[mask] @ x[mask].T
        pairs = (form[mask][:, None] != form[mask][None, :]) & np.triu(
            np.ones_like(sims, dtype=bool), 1
        )
        out.append(
            dict(
                sae=data.sae,
                layer=data.layer,
                topic=t,
                n_forms=len(cats),
                jaccard_topk=_jac_topk(by["other_topics"]),
                jaccard_specialists=_jac_spec(by["other_topics"]),
                jaccard_topk_all=_jac_topk(by["all"]),
                jaccard_specialists_all=_jac_spec(by["all"]),
                topic_within=float(sims[pairs].mean()) if pairs.any() else None,
                within_topic=g.within_topic,
                within_form=g.within_form,
                across=g.across,
                p_value=g.p_value,
                permutations=g.permutations,
            )
        )
    return out


def _jac_topk(rows) -> float | None:
    return mean_pairwise_jaccard([set(r["topk_features"].split()) for r in rows])


def _jac_spec(rows) -> float | None:
    sets = [{r["feature"]} if r["has_specialist"] else set() for r in rows]
    return mean_pairwise_jaccard(sets)


def causal_specialists(specialists: pl.DataFrame, effects: pl.DataFrame | None) -> pl.DataFrame:
    """Per analysis specialist checked by the causal stage (zero ablation): its score, Δloss on
    its category, and the share of its category's loss positions whose top-1 prediction the
    ablation changes (of ``top1_positions``)."""
    if effects is None or not effects.height:
        return pl.DataFrame()
    zero = effects.filter(pl.col("mode") == "zero").select(
        "sae", "layer", "category", "feature", "in_mean", "top1_changed_share", "top1_positions"
    )
    return (
        specialists.filter(pl.col("has_specialist"))
        .select("sae", "layer", "category", "feature", "score")
        .join(zero, on=["sae", "layer", "category", "feature"], how="inner")
        .sort("sae", "layer", "category")
    )


def causal_correlation(specialists: pl.DataFrame, effects: pl.DataFrame | None) -> pl.DataFrame:
    """Spearman ρ of the specialists' score with their causal Δloss inside (zero ablation), and
    how often ablating a specialist changes the top-1 predicted token (module docstring)."""
    joined = causal_specialists(specialists, effects)
    if not joined.height:
        return pl.DataFrame(schema=CAUSAL_SCHEMA)
    from scipy.stats import spearmanr

    measured = joined.drop_nulls("in_mean")
    if measured.height < 3:
        rho, p = None, None
    else:
        res = spearmanr(measured["score"].to_numpy(), measured["in_mean"].to_numpy())
        rho, p = float(res.statistic), float(res.pvalue)
    top1 = joined.drop_nulls("top1_changed_share")
    positions = int(top1["top1_positions"].sum())
    changed = sum(
        round(share * n) for share, n in top1.select("top1_changed_share", "top1_positions").rows()
    )
    return pl.DataFrame(
        {
            "n_specialists": [measured.height],
            "spearman_rho": [rho],
            "p_value": [p],
            "top1_changed_share": [changed / positions if positions else None],
            "top1_positions": [positions],
            "top1_mean_share": [top1["top1_changed_share"].mean() if top1.height else None],
            "top1_n_changing": [int((top1["top1_changed_share"] > 0).sum())],
        },
        schema=CAUSAL_SCHEMA,
    )


def topics_summary(forms, topics, causal, settings: dict, per_specialist=None) -> str:
    """surface/topics/summary.md."""
    from .report import _md_table

    lines = [
        "# Topic x form design",
        "",
        "Each form's specialist selected against the other topics only (`other_topics`: the "
        "same topic's other forms count neither in nor out) and against every other category "
        "(`all`, the analysis' rule); docs/surface.md.",
        "",
        "Settings: " + ", ".join(f"{k} {v}" for k, v in settings.items()),
        "",
        "## Topics",
        "",
        *_md_table(topics),
        "",
        "## Forms",
        "",
        *_md_table(forms),
        "",
        "## Selectivity vs causal effect",
        "",
    ]
    r = causal.row(0, named=True) if causal.height else None
    if r is None:
        lines.append("No causal stage results (causal.enabled false): neither is measured.")
        return "\n".join(lines) + "\n"
    if r["spearman_rho"] is not None:
        lines.append(
            f"Spearman ρ of the specialists' score with their Δloss inside (zero ablation): "
            f"{r['spearman_rho']:.3f} (p {r['p_value']:.3g}, {r['n_specialists']} specialists)."
        )
    else:
        lines.append("Fewer than 3 specialists with a causal Δloss: no rank correlation.")
    if r["top1_changed_share"] is not None:
        lines += [
            "",
            f"Zero-ablating a specialist changes the top-1 predicted token at "
            f"{r['top1_changed_share']:.1%} of its category's loss positions (pooled over "
            f"{r['top1_positions']:,} positions of every specialist; mean of the specialists' "
            f"shares {r['top1_mean_share']:.1%}); {r['top1_n_changing']} of "
            f"{r['n_specialists']} specialists change at least one prediction.",
        ]
    if per_specialist is not None and per_specialist.height:
        shown = per_specialist.with_columns(
            pl.Series(
                "top1_changed",
                [
                    "n/a" if share is None else f"{share:.1%} of {n:,}"
                    for share, n in per_specialist.select(
                        "top1_changed_share", "top1_positions"
                    ).rows()
                ],
                dtype=pl.String,
            )
        ).drop("top1_changed_share", "top1_positions")
        lines += ["", "Per specialist (zero ablation, its category's texts):", ""]
        lines += _md_table(shown)
    return "\n".join(lines) + "\n"

"""Dashboard data of one SAE family and layer, from shards, analysis tables and logit effects.

Which features get a dashboard: every specialist (a category's best candidate with score > 0)
and the ``top_k_features`` strongest and most frequent features of the layer (the analysis
tables ``specialists``, ``strongest``, ``frequent``).

Per feature (all activations are per-token; *counted* positions are every position except BOS,
unless ``analysis.include_bos``):
- density: fraction of counted tokens on which the feature fires (activation > 0), over the
  study's texts and, separately, the reference corpus when there is one;
- max-activating examples: the ``examples`` texts (study texts and corpus texts together) with the
  largest maximum counted-token activation, one per text, each as a window of ``before`` tokens
  before and ``after`` tokens after its max token, widened so that no character split over
  tokens is cut (ties: earlier text, then earlier position);
- quantile examples: the non-zero counted-token activations are cut at their quantiles into
  ``quantiles`` intervals; from each (highest first) ``quantile_examples`` texts evenly spread
  over the interval's range, each shown around its largest activation inside the interval;
- histogram: counts of the non-zero counted-token activations in ``histogram_bins`` equal bins
  from 0 to the max;
- per-category profile (study texts only): number of texts, mean per-text value (the analysis's
  aggregation; texts where the feature is inactive count as 0), fraction of texts where it is
  active (value > 0) and above the threshold, largest per-text value.

Reads Parquet only (no model, no torch).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from ..core.contract import ACTIVATIONS_SCHEMA, TOKENS_SCHEMA
from ..core.io import scan_shards
from ..core.tokens import text_spans

EXAMPLE_SCHEMA = {
    "feature": pl.Int32,
    "kind": pl.String,  # top | quantile
    "interval": pl.Int32,  # quantile interval (0 = lowest); null for top examples
    "interval_lo": pl.Float64,
    "interval_hi": pl.Float64,
    # share of the feature's counted non-zero activations inside the interval (null for top)
    "interval_share": pl.Float64,
    "rank": pl.Int32,  # 1-based within (feature, kind, interval)
    "source": pl.String,  # study | corpus
    "text_id": pl.String,
    "category": pl.String,
    "token_pos": pl.Int32,  # the example's central (max) token
    "activation": pl.Float64,
    "window_pos": pl.List(pl.Int32),
    "window_tokens": pl.List(pl.String),
    "window_token_bytes": pl.List(pl.Binary),  # raw bytes: pages draw them (core/tokens.py)
    "window_acts": pl.List(pl.Float64),
    "window_counted": pl.List(pl.Boolean),
}
HISTOGRAM_SCHEMA = {
    "feature": pl.Int32,
    "bin": pl.Int32,
    "lo": pl.Float64,
    "hi": pl.Float64,
    "count": pl.Int64,
}
PROFILE_SCHEMA = {
    "feature": pl.Int32,
    "category": pl.String,
    "n_texts": pl.Int64,
    "mean_value": pl.Float64,
    "frac_active": pl.Float64,
    "frac_above": pl.Float64,
    "max_value": pl.Float64,
}


@dataclass
class Source:
    """Texts whose activations feed the examples: the study's shards, or the corpus's."""

    name: str
    token_paths: Sequence[str | os.PathLike]
    activation_paths: Sequence[str | os.PathLike]


@dataclass
class LayerData:
    family: str
    layer: int
    features: pl.DataFrame
    examples: pl.DataFrame
    histograms: pl.DataFrame
    profiles: pl.DataFrame
    logits: pl.DataFrame
    meta: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)


# -- feature selection --------------------------------------------------------------------------


def select_features(
    specialists: pl.DataFrame,
    strongest: pl.DataFrame,
    frequent: pl.DataFrame,
    family: str,
    layer: int,
    top_k: int,
) -> pl.DataFrame:
    """One row per feature to show: feature, roles, specialist_categories, specialist_scores,
    strongest_rank, strongest_peak, frequent_rank, frequent_coverage. Sorted by feature."""

    def here(df: pl.DataFrame) -> pl.DataFrame:
        return df.filter((pl.col("sae") == family) & (pl.col("layer") == layer))

    spec = here(specialists).filter(pl.col("has_specialist") & pl.col("feature").is_not_null())
    strong = here(strongest).filter(pl.col("rank") <= top_k)
    freq = here(frequent).filter(pl.col("rank") <= top_k)
    rows: dict[int, dict] = {}

    def row(f: int) -> dict:
        return rows.setdefault(
            int(f),
            {
                "feature": int(f),
                "roles": [],
                "specialist_categories": [],
                "specialist_scores": [],
                "strongest_rank": None,
                "strongest_peak": None,
                "frequent_rank": None,
                "frequent_coverage": None,
            },
        )

    for r in spec.sort("category").iter_rows(named=True):
        x = row(r["feature"])
        if "specialist" not in x["roles"]:
            x["roles"].append("specialist")
        x["specialist_categories"].append(r["category"])
        x["specialist_scores"].append(int(r["score"]))
    for r in strong.iter_rows(named=True):
        x = row(r["feature"])
        x["roles"].append("strongest")
        x["strongest_rank"], x["strongest_peak"] = int(r["rank"]), float(r["peak"])
    for r in freq.iter_rows(named=True):
        x = row(r["feature"])
        x["roles"].append("frequent")
        x["frequent_rank"], x["frequent_coverage"] = int(r["rank"]), float(r["coverage"])
    schema = {
        "feature": pl.Int32,
        "roles": pl.List(pl.String),
        "specialist_categories": pl.List(pl.String),
        "specialist_scores": pl.List(pl.Int64),
        "strongest_rank": pl.Int64,
        "strongest_peak": pl.Float64,
        "frequent_rank": pl.Int64,
        "frequent_coverage": pl.Float64,
    }
    return pl.DataFrame([rows[f] for f in sorted(rows)], schema=schema, orient="row")


# -- shards -------------------------------------------------------------------------------------


def load_tokens(source: Source, text_order: pl.DataFrame | None, offset: int) -> pl.DataFrame:
    """source, text_id, category, token_pos, token, token_bytes, bos, text_rank (global
    example order)."""
    columns = ["text_id", "category", "token_pos", "token", "token_bytes", "bos"]
    tokens = (
        scan_shards(source.token_paths, TOKENS_SCHEMA, columns).collect().with_row_index("_row")
    )
    first = tokens.group_by("text_id").agg(pl.col("_row").min().alias("_first"))
    if text_order is not None:
        first = first.join(text_order.select("text_id", "text_order"), on="text_id", how="left")
        key = [pl.col("text_order").fill_null(np.iinfo(np.int64).max), pl.col("_first")]
    else:
        key = [pl.col("_first")]
    first = (
        first.sort(key)
        .with_row_index("text_rank")
        .select("text_id", (pl.col("text_rank").cast(pl.Int64) + offset).alias("text_rank"))
    )
    return (
        tokens.join(first, on="text_id", how="left")
        .with_columns(pl.lit(source.name).alias("source"))
        .sort("text_rank", "token_pos")
        .select(
            "source", "text_id", "category", "token_pos", "token", "token_bytes", "bos", "text_rank"
        )
    )


def load_activations(source: Source, features: Sequence[int]) -> pl.DataFrame:
    """source, text_id, token_pos, feature, activation of the given features."""
    return (
        scan_shards(source.activation_paths, ACTIVATIONS_SCHEMA)
        .filter(pl.col("feature").is_in([int(f) for f in features]))
        .collect()
        .with_columns(pl.lit(source.name).alias("source"))
    )


# -- per-feature pieces ---------------------------------------------------------------------------


class TextIndex:
    """Tokens of every text, for cutting windows: (source, text_id) -> arrays."""

    def __init__(self, tokens: pl.DataFrame, include_bos: bool):
        self.texts: dict[tuple[str, str], tuple[list[str], list[bytes], list[bool], str]] = {}
        self._spans: dict[tuple[str, str], list[tuple[int, int]]] = {}
        for (src, tid), grp in tokens.group_by(["source", "text_id"], maintain_order=True):
            counted = [include_bos or not b for b in grp["bos"].to_list()]
            self.texts[(src, tid)] = (
                grp["token"].to_list(),
                grp["token_bytes"].to_list(),
                counted,
                grp["category"][0],
            )

    def spans(self, key: tuple[str, str]) -> list[tuple[int, int]]:
        """(first, last) token of each text span of the text (core/tokens.py)."""
        if key not in self._spans:
            self._spans[key] = [(s.first, s.last) for s in text_spans(self.texts[key][1])]
        return self._spans[key]

    def window(
        self, key: tuple[str, str], pos: int, before: int, after: int, acts: dict[int, float]
    ) -> dict:
        """``before`` tokens before ``pos`` and ``after`` after it, widened to whole characters
        (a character split over tokens is never cut at the window's edge)."""
        toks, raws, counted, _ = self.texts[key]
        lo, hi = max(0, pos - before), min(len(toks) - 1, pos + after)
        for first, last in self.spans(key):
            if first < lo <= last:
                lo = first
            if first <= hi < last:
                hi = last
        positions = list(range(lo, hi + 1))
        return {
            "window_pos": positions,
            "window_tokens": [toks[p] for p in positions],
            "window_token_bytes": [raws[p] for p in positions],
            "window_acts": [float(acts.get(p, 0.0)) for p in positions],
            "window_counted": [counted[p] for p in positions],
        }


def _per_text_max(counted_acts: pl.DataFrame) -> pl.DataFrame:
    """One row per text: its largest activation and the first position attaining it."""
    return (
        counted_acts.sort(["activation", "text_rank", "token_pos"], descending=[True, False, False])
        .group_by(["source", "text_id"], maintain_order=True)
        .first()
    )


def top_examples(counted_acts: pl.DataFrame, n: int) -> pl.DataFrame:
    return _per_text_max(counted_acts).head(n)


def quantile_examples(
    counted_acts: pl.DataFrame, n_intervals: int, per_interval: int
) -> list[tuple[int, float, float, float, pl.DataFrame]]:
    """[(interval, lo, hi, share, examples)], highest interval first, ``share`` the fraction of
    the activations inside the interval; empty intervals are left out."""
    if n_intervals <= 0 or counted_acts.height == 0:
        return []
    values = counted_acts["activation"].to_numpy()
    edges = np.quantile(values, np.linspace(0.0, 1.0, n_intervals + 1))
    out = []
    for i in range(n_intervals - 1, -1, -1):
        lo, hi = float(edges[i]), float(edges[i + 1])
        inside = (pl.col("activation") <= hi) & (
            (pl.col("activation") >= lo) if i == 0 else (pl.col("activation") > lo)
        )
        inside_acts = counted_acts.filter(inside)
        share = inside_acts.height / counted_acts.height
        per_text = _per_text_max(inside_acts).sort(
            ["activation", "text_rank"], descending=[True, False]
        )
        if per_text.height == 0:
            continue
        picks = np.unique(np.round(np.linspace(0, per_text.height - 1, per_interval)).astype(int))
        out.append((i, lo, hi, share, per_text[picks.tolist()]))
    return out


def histogram(values: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """(counts, edges) of the values on ``bins`` equal bins from 0 to their max."""
    if values.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    top = float(values.max())
    return np.histogram(values, bins=bins, range=(0.0, top if top > 0 else 1.0))


def category_profile(
    per_text: pl.DataFrame, texts: pl.DataFrame, feature: int, threshold: float
) -> pl.DataFrame:
    """Per study category (see the module doc)."""
    pt = per_text.filter(pl.col("feature") == feature).select("text_id", "value")
    return (
        texts.select("text_id", "category")
        .join(pt, on="text_id", how="left")
        .with_columns(pl.col("value").fill_null(0.0))
        .group_by("category")
        .agg(
            pl.len().cast(pl.Int64).alias("n_texts"),
            pl.col("value").mean().alias("mean_value"),
            (pl.col("value") > 0).mean().alias("frac_active"),
            (pl.col("value") > threshold).mean().alias("frac_above"),
            pl.col("value").max().alias("max_value"),
        )
        .sort("category")
        .with_columns(pl.lit(feature, dtype=pl.Int32).alias("feature"))
        .select(list(PROFILE_SCHEMA))
    )


# -- the layer -------------------------------------------------------------------------------------


STATS_SCHEMA = {
    "feature": pl.Int32,
    "n_fire": pl.Int64,
    "n_counted": pl.Int64,
    "density": pl.Float64,
    "study_n_fire": pl.Int64,
    "study_n_counted": pl.Int64,
    "study_density": pl.Float64,
    "corpus_n_fire": pl.Int64,
    "corpus_n_counted": pl.Int64,
    "corpus_density": pl.Float64,
    "max_activation": pl.Float64,
    "top_category": pl.String,
}


@dataclass
class LayerShards:
    """The shards of one (family, layer) restricted to the chosen features: every stored
    token of every source, and the chosen features' activations joined to their tokens."""

    tokens: pl.DataFrame
    acts: pl.DataFrame
    n_counted: dict[str, int]  # counted positions per source
    index: TextIndex


def load_layer_shards(
    sources: Sequence[Source], texts: pl.DataFrame, features: list[int], include_bos: bool
) -> LayerShards:
    """``sources[0]`` is the study (its text order comes from ``texts``)."""
    token_frames, act_frames, offset = [], [], 0
    for i, source in enumerate(sources):
        toks = load_tokens(source, texts if i == 0 else None, offset)
        offset += toks["text_id"].n_unique()
        token_frames.append(toks)
        act_frames.append(load_activations(source, features))
    tokens = pl.concat(token_frames, how="vertical")
    acts = pl.concat(act_frames, how="vertical").join(
        tokens.select("source", "text_id", "token_pos", "category", "bos", "text_rank"),
        on=["source", "text_id", "token_pos"],
        how="inner",
    )
    counted_tokens = tokens if include_bos else tokens.filter(~pl.col("bos"))
    n_counted = dict(counted_tokens.group_by("source").len().iter_rows())
    return LayerShards(tokens, acts, n_counted, TextIndex(tokens, include_bos))


def feature_examples(
    f: int, fa: pl.DataFrame, counted: pl.DataFrame, index: TextIndex, settings: dict
) -> list[dict]:
    """The top and quantile examples of feature ``f`` (``fa``: its activations; ``counted``:
    those on counted positions), each with its token window."""
    before, after = int(settings["window"]["before"]), int(settings["window"]["after"])
    text_acts: dict[tuple[str, str], dict[int, float]] = {}
    for src, tid, pos, a in fa.select("source", "text_id", "token_pos", "activation").rows():
        text_acts.setdefault((src, tid), {})[pos] = a

    def example(r: dict, kind: str, rank: int, interval=None, lo=None, hi=None, share=None):
        key = (r["source"], r["text_id"])
        return {
            "feature": f,
            "kind": kind,
            "interval": interval,
            "interval_lo": lo,
            "interval_hi": hi,
            "interval_share": share,
            "rank": rank,
            "source": r["source"],
            "text_id": r["text_id"],
            "category": r["category"],
            "token_pos": r["token_pos"],
            "activation": r["activation"],
            **index.window(key, r["token_pos"], before, after, text_acts.get(key, {})),
        }

    top = top_examples(counted, int(settings["examples"])).iter_rows(named=True)
    out = [example(r, "top", rank) for rank, r in enumerate(top, 1)]
    for interval, lo, hi, share, picked in quantile_examples(
        counted, int(settings["quantiles"]), int(settings["quantile_examples"])
    ):
        for rank, r in enumerate(picked.iter_rows(named=True), 1):
            out.append(example(r, "quantile", rank, interval, lo, hi, share))
    return out


def histogram_rows(f: int, values: np.ndarray, bins: int) -> list[dict]:
    counts, edges = histogram(values, bins)
    return [
        {"feature": f, "bin": b, "lo": float(edges[b]), "hi": float(edges[b + 1]), "count": int(c)}
        for b, c in enumerate(counts)
    ]


def feature_stats(
    f: int,
    counted: pl.DataFrame,
    values: np.ndarray,
    profile: pl.DataFrame,
    sources: Sequence[Source],
    n_counted: dict[str, int],
) -> dict:
    """Firing counts and densities (overall, study, reference corpus), the largest activation
    and the category of highest mean per-text value of feature ``f`` (STATS_SCHEMA)."""
    fires = dict(counted.group_by("source").len().iter_rows()) if counted.height else {}
    study, corpus = sources[0].name, (sources[1].name if len(sources) > 1 else None)
    total_fire = sum(fires.values())
    total_counted = sum(n_counted.values())
    top_cat = (
        profile.sort(["mean_value", "category"], descending=[True, False])["category"][0]
        if profile.height and profile["mean_value"].max() > 0
        else None
    )
    return {
        "feature": f,
        "n_fire": total_fire,
        "n_counted": total_counted,
        "density": total_fire / total_counted if total_counted else 0.0,
        "study_n_fire": fires.get(study, 0),
        "study_n_counted": n_counted.get(study, 0),
        "study_density": (fires.get(study, 0) / n_counted[study]) if n_counted.get(study) else 0.0,
        "corpus_n_fire": fires.get(corpus, 0) if corpus else None,
        "corpus_n_counted": n_counted.get(corpus, 0) if corpus else None,
        "corpus_density": (fires.get(corpus, 0) / n_counted[corpus])
        if corpus and n_counted.get(corpus)
        else None,
        "max_activation": float(values.max()) if values.size else 0.0,
        "top_category": top_cat,
    }


def feature_table(
    chosen: pl.DataFrame,
    stats: pl.DataFrame,
    family: str,
    layer: int,
    meta: dict,
    logits: pl.DataFrame | None,
) -> pl.DataFrame:
    """One row per dashboard: the chosen features with their roles, statistics, links, page
    name and top logit token."""
    np_id = meta.get("neuronpedia_id")
    table = chosen.join(stats, on="feature", how="left").with_columns(
        pl.lit(family).alias("sae"),
        pl.lit(int(layer), dtype=pl.Int64).alias("layer"),
        pl.lit(meta.get("hook_name"), dtype=pl.String).alias("hook_name"),
        (
            pl.lit(f"https://www.neuronpedia.org/{np_id}/") + pl.col("feature").cast(pl.String)
            if np_id
            else pl.lit(None, dtype=pl.String)
        ).alias("neuronpedia_url"),
        (pl.lit("feature=") + pl.col("feature").cast(pl.String) + pl.lit(".html")).alias("page"),
    )
    if logits is not None and logits.height:
        top_logit = logits.filter(
            (pl.col("direction") == "positive") & (pl.col("rank") == 1)
        ).select(pl.col("feature").cast(pl.Int32), pl.col("token_display").alias("top_logit"))
        table = table.join(top_logit, on="feature", how="left")
    else:
        table = table.with_columns(pl.lit(None, dtype=pl.String).alias("top_logit"))
    return table.select(["sae", "layer", *[c for c in table.columns if c not in ("sae", "layer")]])


def build_layer_data(
    *,
    family: str,
    layer: int,
    sources: Sequence[Source],
    texts: pl.DataFrame,
    per_text: pl.DataFrame | pl.LazyFrame,
    specialists: pl.DataFrame,
    strongest: pl.DataFrame,
    frequent: pl.DataFrame,
    logits: pl.DataFrame | None,
    settings: dict,
    include_bos: bool,
    threshold: float,
    meta: dict | None = None,
) -> LayerData:
    """Every selected feature's dashboard data for one (family, layer); ``sources[0]`` is the
    study (its text order comes from ``texts``), a second source is the reference corpus."""
    chosen = select_features(
        specialists, strongest, frequent, family, layer, int(settings["top_k_features"])
    )
    features = chosen["feature"].to_list()
    # only the chosen features' rows: a lazy per-text table is never read whole
    per_text = per_text.lazy().filter(pl.col("feature").is_in(features)).collect()
    shards = load_layer_shards(sources, texts, features, include_bos)
    acts = shards.acts
    acts_by_feature = {int(k[0]): g for k, g in acts.group_by(["feature"], maintain_order=True)}

    feature_rows, examples, hists, profiles = [], [], [], []
    for f in features:
        fa = acts_by_feature.get(f, acts.head(0))
        counted = fa if include_bos else fa.filter(~pl.col("bos"))
        examples += feature_examples(f, fa, counted, shards.index, settings)
        values = counted["activation"].to_numpy()
        hists += histogram_rows(f, values, int(settings["histogram_bins"]))
        profile = category_profile(per_text, texts, f, threshold)
        profiles.append(profile)
        feature_rows.append(feature_stats(f, counted, values, profile, sources, shards.n_counted))

    stats = pl.DataFrame(feature_rows, schema=STATS_SCHEMA, orient="row")
    meta = dict(meta or {})
    if logits is not None and logits.height:
        logits = logits.filter(pl.col("feature").is_in(features))
    return LayerData(
        family=family,
        layer=int(layer),
        features=feature_table(chosen, stats, family, layer, meta, logits),
        examples=pl.DataFrame(examples, schema=EXAMPLE_SCHEMA, orient="row"),
        histograms=pl.DataFrame(hists, schema=HISTOGRAM_SCHEMA, orient="row"),
        profiles=pl.concat(profiles) if profiles else pl.DataFrame(schema=PROFILE_SCHEMA),
        logits=logits if logits is not None else pl.DataFrame(),
        meta=meta,
        settings=dict(settings, include_bos=bool(include_bos), threshold=float(threshold)),
    )

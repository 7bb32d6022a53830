"""Neuronpedia export: one SAE layer's dashboards as the files SAEDashboard's Neuronpedia runner
writes for upload (docs/dashboards.md, "Neuronpedia export").

The reference is SAEDashboard's ``NeuronpediaRunner`` (sae_dashboard/neuronpedia/
neuronpedia_runner.py) and its ``NeuronpediaConverter`` / ``NeuronpediaDashboardBatch``
(neuronpedia_converter.py, neuronpedia_dashboard.py): for one SAE it writes, in one directory,

- ``batch-{n}.json``: ``{"model_id", "layer", "sae_set", "sae_id_suffix", "features": [...]}``,
  features split into near-equal batches of at most ``n_features_at_a_time`` (128; Neuronpedia's
  upload API takes at most 128 features per request), as ``numpy.array_split`` does in the runner;
- ``skipped_indexes.json``: ``{"model_id", "layer" (a string), "sae_set", "log_sparsity",
  "skipped_indexes"}``, the SAE's features that have no data in the batches (Neuronpedia's
  ``upload-skipped-features`` creates them as features without dashboards);
- ``run_settings.json``: the settings the files were made with.

Each feature (``NeuronpediaDashboardFeature.to_dict``): ``feature_index``; the top positive and
negative logit effects as ``pos_str``/``pos_values`` and ``neg_str``/``neg_values``;
``frac_nonzero`` (the dashboard's density); ``freq_hist_data_bar_values``/``_heights`` (the
activation histogram: bin centres and counts); ``logits_hist_data_bar_values``/``_heights``
(histogram of the feature's logit effects over the whole vocabulary, 50 bins from its smallest
to its largest effect, as SAEDashboard's logits histogram); ``n_prompts_total``,
``n_tokens_in_prompt``, ``dataset``; ``activations``, one per dashboard example: ``tokens``,
``values`` (0 on positions the analysis does not count, e.g. BOS, as the runner's
``ignore_tokens``), ``qualifying_token_index`` (the
example's central token in the window), and its group: ``bin_min = -1``, ``bin_max`` = the
feature's max activation, ``bin_contains = -1`` for the top examples, and the interval's bounds
and the fraction of the feature's non-zero activations inside it for the quantile examples
(highest interval first). The neuron-alignment and correlation tables and
``decoder_weights_dist`` are empty lists (this project does not compute them; the runner leaves
``decoder_weights_dist`` empty too unless the SAE is on ``hook_z``). Floats are rounded to 5
decimals as in the converter.

Token strings are the tokenizer's vocabulary strings with SAEDashboard's ``HTML_ANOMALIES``
replaced, as the runner's ``get_vocab_dict``: for byte-level BPE tokenizers (GPT-2 style) the
token's bytes in GPT-2's byte alphabet (``Ġ`` -> space, ``Ċ`` -> newline, curly quotes and dashes
restored); for other tokenizers the decoded token text. Neuronpedia applies the same replacements
when it shows a token.

Identifiers: a known SAELens release has a Neuronpedia id ``{model_id}/{layer}-{sae_set}`` (with an
optional ``__{suffix}``), used as is; any other SAE gets the configured model id and set name
(default: the model's name and the family's name, lowercased, other characters as ``-``).
Converting the directory to Neuronpedia's bulk-import layout (release.jsonl, features/*.jsonl.gz,
...) is SAEDashboard's ``export_neuronpedia_dashboards`` (it reads exactly these batch files).

Reads the dashboard tables and the logit effects only (no model, no torch).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from ..core.io import atomic_dir
from ..core.tokens import bytes_to_unicode
from .neuronpedia_ids import NeuronpediaIds, neuronpedia_ids, slug  # noqa: F401 (tests)

# SAEDashboard's NeuronpediaRunner.HTML_ANOMALIES (applied to every vocabulary string).
HTML_ANOMALIES = {
    "âĢĶ": "—",
    "âĢĵ": "–",
    "âĢľ": "“",
    "âĢĿ": "”",
    "âĢĺ": "‘",
    "âĢĻ": "’",
    "âĢĭ": " ",
    "Ġ": " ",
    "Ċ": "\n",
    "ĉ": "\t",
}
FEATURES_PER_BATCH = 128  # NeuronpediaRunnerConfig.n_features_at_a_time; the upload API's max
DECIMALS = 5  # FeatureProcessor.round_list
BATCH_KEYS = ("model_id", "layer", "sae_set", "sae_id_suffix", "features")
FEATURE_KEYS = (
    "feature_index",
    "neuron_alignment_indices",
    "neuron_alignment_values",
    "neuron_alignment_l1",
    "correlated_neurons_indices",
    "correlated_neurons_l1",
    "correlated_neurons_pearson",
    "correlated_features_indices",
    "correlated_features_l1",
    "correlated_features_pearson",
    "neg_str",
    "neg_values",
    "pos_str",
    "pos_values",
    "frac_nonzero",
    "freq_hist_data_bar_values",
    "freq_hist_data_bar_heights",
    "logits_hist_data_bar_heights",
    "logits_hist_data_bar_values",
    "n_prompts_total",
    "n_tokens_in_prompt",
    "dataset",
    "decoder_weights_dist",
    "activations",
    "vector",
)
ACTIVATION_KEYS = (
    "bin_min",
    "bin_max",
    "bin_contains",
    "tokens",
    "values",
    "qualifying_token_index",
)
SKIPPED_KEYS = ("model_id", "layer", "sae_set", "log_sparsity", "skipped_indexes")

_BYTE_ALPHABET = bytes_to_unicode()
_ANOMALY = re.compile("|".join(re.escape(k) for k in HTML_ANOMALIES))


def vocab_string(text: str, raw: bytes | None, byte_level: bool) -> str:
    """The runner's string for a token: its vocabulary entry with ``HTML_ANOMALIES`` replaced
    (byte-level tokenizers: the bytes in GPT-2's alphabet), else the decoded ``text``."""
    if byte_level and raw is not None:
        piece = "".join(_BYTE_ALPHABET[b] for b in raw)
        return _ANOMALY.sub(lambda m: HTML_ANOMALIES[m.group(0)], piece)
    return text


def _round(values) -> list[float]:
    return [round(float(v), DECIMALS) for v in values]


def feature_batches(features: Sequence[int], per_batch: int = FEATURES_PER_BATCH) -> list[list]:
    """Near-equal batches of at most ``per_batch`` features (the runner's ``array_split``)."""
    if not features:
        return []
    n = math.ceil(len(features) / per_batch)
    return [[int(f) for f in part] for part in np.array_split(np.asarray(features), n)]


def activation_record(example: dict, byte_level: bool, bin_: tuple[float, float, float]) -> dict:
    """One dashboard example as a runner activation (see the module doc)."""
    raws = example.get("window_token_bytes") or [None] * len(example["window_tokens"])
    tokens = [
        vocab_string(t, r, byte_level) for t, r in zip(example["window_tokens"], raws, strict=True)
    ]
    values = [
        a if counted else 0.0
        for a, counted in zip(example["window_acts"], example["window_counted"], strict=True)
    ]
    return {
        "bin_min": bin_[0],
        "bin_max": bin_[1],
        "bin_contains": bin_[2],
        "tokens": tokens,
        "values": _round(values),
        "qualifying_token_index": list(example["window_pos"]).index(int(example["token_pos"])),
    }


def feature_record(
    feature: dict,
    examples: pl.DataFrame,
    histogram: pl.DataFrame,
    logits: pl.DataFrame,
    logit_histogram: pl.DataFrame | None,
    *,
    byte_level: bool,
    n_prompts_total: int,
    n_tokens_in_prompt: int,
    dataset: str,
) -> dict:
    """One feature as ``NeuronpediaDashboardFeature.to_dict`` (see the module doc)."""
    max_act = round(float(feature["max_activation"] or 0.0), DECIMALS)
    acts = []
    for ex in examples.filter(pl.col("kind") == "top").sort("rank").iter_rows(named=True):
        acts.append(activation_record(ex, byte_level, (-1, max_act, -1)))
    quantile = examples.filter(pl.col("kind") == "quantile").sort(
        ["interval", "rank"], descending=[True, False]
    )
    for ex in quantile.iter_rows(named=True):
        bin_ = (
            round(ex["interval_lo"], DECIMALS),
            round(ex["interval_hi"], DECIMALS),
            round(ex["interval_share"], DECIMALS),
        )
        acts.append(activation_record(ex, byte_level, bin_))

    def side(direction: str) -> tuple[list[str], list[float]]:
        rows = logits.filter(pl.col("direction") == direction).sort("rank")
        raws = rows["token_bytes"].to_list() if "token_bytes" in rows.columns else None
        strings = [
            vocab_string(t, raws[i] if raws else None, byte_level)
            for i, t in enumerate(rows["token"].to_list())
        ]
        return strings, _round(rows["effect"].to_list())

    pos_str, pos_values = side("positive")
    neg_str, neg_values = side("negative")
    hist = histogram.sort("bin")
    if logit_histogram is not None and logit_histogram.height:
        lh = logit_histogram.sort("bin")
        logit_values = _round(((lh["lo"] + lh["hi"]) / 2).to_list())
        logit_heights = [int(c) for c in lh["count"].to_list()]
    else:
        logit_values, logit_heights = [], []
    return {
        "feature_index": int(feature["feature"]),
        "neuron_alignment_indices": [],
        "neuron_alignment_values": [],
        "neuron_alignment_l1": [],
        "correlated_neurons_indices": [],
        "correlated_neurons_l1": [],
        "correlated_neurons_pearson": [],
        "correlated_features_indices": [],
        "correlated_features_l1": [],
        "correlated_features_pearson": [],
        "neg_str": neg_str,
        "neg_values": neg_values,
        "pos_str": pos_str,
        "pos_values": pos_values,
        "frac_nonzero": float(feature["density"] or 0.0),
        "freq_hist_data_bar_values": _round(((hist["lo"] + hist["hi"]) / 2).to_list()),
        "freq_hist_data_bar_heights": [int(c) for c in hist["count"].to_list()],
        "logits_hist_data_bar_heights": logit_heights,
        "logits_hist_data_bar_values": logit_values,
        "n_prompts_total": int(n_prompts_total),
        "n_tokens_in_prompt": int(n_tokens_in_prompt),
        "dataset": dataset,
        "decoder_weights_dist": [],
        "activations": acts,
        "vector": [],
    }


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")


def write_layer_export(
    out_dir: str | os.PathLike,
    *,
    ids: NeuronpediaIds,
    features: pl.DataFrame,
    examples: pl.DataFrame,
    histograms: pl.DataFrame,
    logits: pl.DataFrame,
    logit_histograms: pl.DataFrame | None,
    d_sae: int,
    byte_level: bool,
    n_prompts_total: int,
    n_tokens_in_prompt: int,
    dataset: str = "",
    per_batch: int = FEATURES_PER_BATCH,
    settings: dict | None = None,
) -> list[Path]:
    """Write the layer's runner directory ``out_dir`` (replaced whole, atomically: the files are
    made in a hidden sibling directory that is renamed into place). Returns the batch files."""
    out = Path(out_dir)
    with atomic_dir(out, suffix=".tmp") as tmp:
        chosen = sorted(int(f) for f in features["feature"].to_list())
        by_id = {int(r["feature"]): r for r in features.iter_rows(named=True)}
        names = []
        for n, batch in enumerate(feature_batches(chosen, per_batch)):
            records = [
                feature_record(
                    by_id[f],
                    examples.filter(pl.col("feature") == f),
                    histograms.filter(pl.col("feature") == f),
                    logits.filter(pl.col("feature") == f),
                    None
                    if logit_histograms is None
                    else logit_histograms.filter(pl.col("feature") == f),
                    byte_level=byte_level,
                    n_prompts_total=n_prompts_total,
                    n_tokens_in_prompt=n_tokens_in_prompt,
                    dataset=dataset,
                )
                for f in batch
            ]
            batch_data = {
                "model_id": ids.model_id,
                "layer": ids.layer,
                "sae_set": ids.sae_set,
                "sae_id_suffix": ids.sae_id_suffix,
                "features": records,
            }
            names.append(f"batch-{n}.json")
            _write_json(tmp / names[-1], batch_data)
        skipped = sorted(set(range(int(d_sae))) - set(chosen))
        _write_json(
            tmp / "skipped_indexes.json",
            {
                "model_id": ids.model_id,
                "layer": str(ids.layer),
                "sae_set": ids.sae_set,
                "log_sparsity": None,
                "skipped_indexes": skipped,
            },
        )
        _write_json(
            tmp / "run_settings.json",
            {
                "model_id": ids.model_id,
                "layer": ids.layer,
                "sae_set": ids.sae_set,
                "np_set_name": ids.sae_set,
                "np_sae_id_suffix": ids.sae_id_suffix,
                "neuronpedia_source": ids.source,
                "huggingface_dataset_path": dataset,
                "n_prompts_total": int(n_prompts_total),
                "n_tokens_in_prompt": int(n_tokens_in_prompt),
                "n_features_at_a_time": int(per_batch),
                "d_sae": int(d_sae),
                "n_features_exported": len(chosen),
                "sae_specialists": settings or {},
            },
        )
    return [out / name for name in names]


def text_lengths(token_paths) -> tuple[int, int]:
    """(number of texts, most positions in one text, BOS included) of token shards."""
    from ..core.contract import TOKENS_SCHEMA
    from ..core.io import scan_shards

    per_text = (
        scan_shards(token_paths, TOKENS_SCHEMA, ["text_id", "token_pos"])
        .group_by("text_id")
        .agg(pl.col("token_pos").max())
        .collect()
    )
    if per_text.height == 0:
        return 0, 0
    return per_text.height, int(per_text["token_pos"].max()) + 1


def export_layer(smk) -> None:
    """Rule neuronpedia_export: one (family, layer)'s dashboards as the runner's files."""
    from ..core.errors import ShardError
    from ..core.io import read_metadata

    i, p = smk.input, smk.params
    family, layer = str(smk.wildcards.family), int(smk.wildcards.layer)
    layer_dir = Path(i.dashboards)
    meta = read_metadata(i.logits)
    if "byte_level" not in meta:
        raise ShardError(
            f"{i.logits} was written before the Neuronpedia export existed (no byte_level in its "
            "metadata). Delete it and rerun `snakemake export` to remake it."
        )
    n_texts, longest = text_lengths(list(i.tokens))
    if p.corpus:
        n_corpus, longest_corpus = text_lengths([i.corpus_tokens])
        n_texts, longest = n_texts + n_corpus, max(longest, longest_corpus)
    ids = neuronpedia_ids(
        meta.get("neuronpedia_id"),
        layer=layer,
        model_name=str(p.model_name),
        family=family,
        model_id=p.model_id,
        sae_set=dict(p.sae_sets).get(family),
    )
    files = write_layer_export(
        smk.output[0],
        ids=ids,
        features=pl.read_parquet(layer_dir / "features.parquet"),
        examples=pl.read_parquet(layer_dir / "examples.parquet"),
        histograms=pl.read_parquet(layer_dir / "histograms.parquet"),
        logits=pl.read_parquet(i.logits),
        logit_histograms=pl.read_parquet(i.logit_histograms),
        d_sae=int(meta["d_sae"]),
        byte_level=bool(meta["byte_level"]),
        n_prompts_total=n_texts,
        n_tokens_in_prompt=longest,
        dataset=str(p.dataset),
        per_batch=int(p.features_per_batch),
        settings={
            "family": family,
            "layer": layer,
            "hook_name": meta.get("hook_name"),
            "model": meta.get("model"),
            **dict(p.settings),
        },
    )
    import logging

    logging.getLogger("sae_specialists").info(
        "Neuronpedia export %s layer %d: %s/%s, %d batch files",
        family,
        layer,
        ids.model_id,
        ids.source,
        len(files),
    )

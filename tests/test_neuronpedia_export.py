"""Neuronpedia export: files in the layout of SAEDashboard's Neuronpedia runner.

The expected layout is written out here from the reference, independently of the module:
SAEDashboard (jbloomAus/SAEDashboard @ db4839a4) sae_dashboard/neuronpedia/
neuronpedia_dashboard.py (``NeuronpediaDashboardBatch/Feature/Activation.to_dict``),
neuronpedia_runner.py (``batch-{n}.json``, ``skipped_indexes.json``, ``run_settings.json``,
``HTML_ANOMALIES``, ``np.array_split`` batches), neuronpedia_converter.py (bins of the top and
interval groups, rounding); Neuronpedia (hijohnnylin/neuronpedia @ ebb8426f) apps/webapp/app/api/
feature/upload-batch/route.tsx (at most 128 features per batch, unique indexes, 1..1024 tokens with
as many values) and .../upload-skipped-features/route.tsx.
"""

from __future__ import annotations

import json

import polars as pl
import pytest

from sae_specialists.dashboards.neuronpedia_export import (
    NeuronpediaIds,
    neuronpedia_ids,
    slug,
    vocab_string,
    write_layer_export,
)

# The keys of NeuronpediaDashboardBatch / Feature / Activation.to_dict (neuronpedia_dashboard.py),
# written out from the format, not imported from the module under test (the optional dfa_* keys
# of an activation are left out: the runner writes them only for attention SAEs' DFA).
BATCH = {"model_id", "layer", "sae_set", "sae_id_suffix", "features"}
FEATURE = {
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
}
ACTIVATION = {"bin_min", "bin_max", "bin_contains", "tokens", "values", "qualifying_token_index"}
SKIPPED = {"model_id", "layer", "sae_set", "log_sparsity", "skipped_indexes"}

# "中" is e4 b8 ad: split over two byte-level tokens it is "ä¸" + "Ń" in GPT-2's alphabet.
BOS = ("<|endoftext|>", b"<|endoftext|>")
THE = (" the", b" the")
ZHONG_A = ("\\xe4\\xb8", b"\xe4\xb8")
ZHONG_B = ("\\xad", b"\xad")
QUOTE = ("’s", "’s".encode())
NEWLINE = ("\n", b"\n")


def example(
    feature, kind, rank, tokens, acts, counted, center, interval=None, lo=None, hi=None, share=None
):
    positions = list(range(10, 10 + len(tokens)))
    return {
        "feature": feature,
        "kind": kind,
        "interval": interval,
        "interval_lo": lo,
        "interval_hi": hi,
        "interval_share": share,
        "rank": rank,
        "source": "study",
        "text_id": f"t{feature}{kind}{rank}",
        "category": "c",
        "token_pos": positions[center],
        "activation": acts[center],
        "window_pos": positions,
        "window_tokens": [t for t, _ in tokens],
        "window_token_bytes": [b for _, b in tokens],
        "window_acts": acts,
        "window_counted": counted,
    }


@pytest.fixture
def layer_tables():
    features = pl.DataFrame(
        {
            "feature": [7, 3, 5],
            "density": [0.25, 0.0123456789, 0.5],
            "max_activation": [4.0, 2.123456789, 1.0],
        },
        schema={"feature": pl.Int32, "density": pl.Float64, "max_activation": pl.Float64},
    )
    examples = pl.DataFrame(
        [
            # feature 3: two top examples (rank order reversed in the table), one quantile
            example(3, "top", 2, [THE, ZHONG_A, ZHONG_B], [0.0, 1.5, 0.25], [True] * 3, 1),
            example(
                3, "top", 1, [BOS, QUOTE, NEWLINE], [9.0, 2.123456789, 0.0], [False, True, True], 1
            ),
            example(3, "quantile", 1, [THE, QUOTE], [0.5, 0.0], [True, True], 0, 0, 0.0, 1.0, 0.6),
            example(3, "quantile", 1, [QUOTE, THE], [0.0, 1.75], [True, True], 1, 1, 1.0, 2.1, 0.4),
            example(5, "top", 1, [THE], [1.0], [True], 0),
            example(7, "top", 1, [THE, THE], [4.0, 1.0], [True, True], 0),
        ]
    )
    histograms = pl.DataFrame(
        {
            "feature": [3, 3, 5, 7],
            "bin": [1, 0, 0, 0],
            "lo": [1.0, 0.0, 0.0, 0.0],
            "hi": [2.0, 1.0, 1.0, 4.0],
            "count": [2, 5, 1, 2],
        }
    )
    logits = pl.DataFrame(
        {
            "feature": [3, 3, 3, 3, 5, 5, 7, 7],
            "direction": ["negative", "positive", "positive", "negative"]
            + ["positive", "negative"] * 2,
            "rank": [1, 2, 1, 2, 1, 1, 1, 1],
            "token": [" the", "’s", "\\xe4\\xb8", "\n", "a", "b", "c", "d"],
            "token_bytes": [b" the", "’s".encode(), b"\xe4\xb8", b"\n", b"a", b"b", b"c", b"d"],
            "effect": [-3.0, 1.0, 2.0, -1.0, 1.0, -1.0, 1.0, -1.0],
        }
    )
    logit_hist = pl.DataFrame(
        {"feature": [3, 3], "bin": [1, 0], "lo": [0.0, -2.0], "hi": [2.0, 0.0], "count": [10, 30]}
    )
    return features, examples, histograms, logits, logit_hist


def test_vocab_strings_follow_the_runner():
    assert vocab_string(" the", b" the", True) == " the"  # Ġthe -> " the"
    assert vocab_string("\\xe4\\xb8", b"\xe4\xb8", True) == "ä¸"
    assert vocab_string("\\xad", b"\xad", True) == "Ń"
    assert vocab_string("中", "中".encode(), True) == "ä¸Ń"
    assert vocab_string("’", "’".encode(), True) == "’"  # âĢĻ is an HTML anomaly
    assert vocab_string("—", "—".encode(), True) == "—"
    assert vocab_string("\n\t", b"\n\t", True) == "\n\t"
    assert vocab_string("\r", b"\r", True) == "č"  # not one of the runner's replacements
    assert vocab_string("▁the", b" the", False) == "▁the"  # not byte-level: the token text


def test_ids_from_release_or_config():
    assert neuronpedia_ids("gpt2-small/6-res-jb", layer=6, model_name="gpt2", family="x") == (
        NeuronpediaIds("gpt2-small", 6, "res-jb", None)
    )
    ids = neuronpedia_ids(
        "gemma-2-2b/20-gemmascope-res-16k__l0-71", layer=20, model_name="g", family="x"
    )
    assert ids == NeuronpediaIds("gemma-2-2b", 20, "gemmascope-res-16k", "l0-71")
    assert ids.source == "20-gemmascope-res-16k__l0-71"
    local = neuronpedia_ids(None, layer=2, model_name="Model_X 2.0", family="My SAEs")
    assert local == NeuronpediaIds("model-x-2.0", 2, "my-saes", None)
    over = neuronpedia_ids(
        "gpt2-small/6-res-jb",
        layer=6,
        model_name="gpt2",
        family="x",
        model_id="gpt2-small",
        sae_set="mine",
    )
    assert over == NeuronpediaIds("gpt2-small", 6, "mine", None)


def test_layer_export_layout(tmp_path, layer_tables):
    features, examples, histograms, logits, logit_hist = layer_tables
    out = tmp_path / "export" / "sae=res" / "layer=6"
    ids = NeuronpediaIds("gpt2-small", 6, "res-jb", None)
    files = write_layer_export(
        out,
        ids=ids,
        features=features,
        examples=examples,
        histograms=histograms,
        logits=logits,
        logit_histograms=logit_hist,
        d_sae=10,
        byte_level=True,
        n_prompts_total=70,
        n_tokens_in_prompt=64,
        dataset="study",
        per_batch=2,
        settings={"threshold": 5.0},
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "batch-0.json",
        "batch-1.json",
        "run_settings.json",
        "skipped_indexes.json",
    ]
    assert [p.name for p in files] == ["batch-0.json", "batch-1.json"]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]

    batches = [json.loads(p.read_text(encoding="utf-8")) for p in files]
    # array_split of [3, 5, 7] into ceil(3 / 2) = 2 parts: [3, 5], [7]
    assert [[f["feature_index"] for f in b["features"]] for b in batches] == [[3, 5], [7]]
    for b in batches:
        assert set(b) == BATCH
        assert (b["model_id"], b["layer"], b["sae_set"], b["sae_id_suffix"]) == (
            "gpt2-small",
            6,
            "res-jb",
            None,
        )
        assert 1 <= len(b["features"]) <= 128
        assert len({f["feature_index"] for f in b["features"]}) == len(b["features"])
        for f in b["features"]:
            assert set(f) == FEATURE
            assert isinstance(f["feature_index"], int)
            assert f["activations"], f["feature_index"]
            for a in f["activations"]:
                assert set(a) == ACTIVATION
                assert 1 <= len(a["tokens"]) == len(a["values"]) <= 1024
                assert all(isinstance(t, str) and t for t in a["tokens"])
                assert 0 <= a["qualifying_token_index"] < len(a["tokens"])

    f3 = batches[0]["features"][0]
    assert f3["frac_nonzero"] == pytest.approx(0.0123456789)
    assert (f3["n_prompts_total"], f3["n_tokens_in_prompt"], f3["dataset"]) == (70, 64, "study")
    assert f3["pos_str"] == ["ä¸", "’s"] and f3["pos_values"] == [2.0, 1.0]
    assert f3["neg_str"] == [" the", "\n"] and f3["neg_values"] == [-3.0, -1.0]
    assert f3["freq_hist_data_bar_values"] == [0.5, 1.5]
    assert f3["freq_hist_data_bar_heights"] == [5, 2]
    assert f3["logits_hist_data_bar_values"] == [-1.0, 1.0]
    assert f3["logits_hist_data_bar_heights"] == [30, 10]
    for key in ("neuron_alignment_indices", "correlated_features_pearson", "vector"):
        assert f3[key] == []
    acts = f3["activations"]
    # top group first (by rank), then the intervals, highest first
    assert [(a["bin_min"], a["bin_max"], a["bin_contains"]) for a in acts] == [
        (-1, 2.12346, -1),
        (-1, 2.12346, -1),
        (1.0, 2.1, 0.4),
        (0.0, 1.0, 0.6),
    ]
    assert acts[0]["tokens"] == ["<|endoftext|>", "’s", "\n"]
    assert acts[0]["values"] == [0.0, 2.12346, 0.0]  # BOS is not counted: 0 as in the runner
    assert acts[0]["qualifying_token_index"] == 1
    assert acts[1]["tokens"] == [" the", "ä¸", "Ń"]
    assert acts[1]["values"] == [0.0, 1.5, 0.25]
    assert acts[2]["qualifying_token_index"] == 1 and acts[3]["qualifying_token_index"] == 0
    assert batches[0]["features"][1]["logits_hist_data_bar_values"] == []

    skipped = json.loads((out / "skipped_indexes.json").read_text())
    assert set(skipped) == SKIPPED
    assert skipped["layer"] == "6" and skipped["skipped_indexes"] == [0, 1, 2, 4, 6, 8, 9]
    settings = json.loads((out / "run_settings.json").read_text())
    assert settings["neuronpedia_source"] == "6-res-jb"
    assert settings["n_features_at_a_time"] == 2 and settings["d_sae"] == 10
    assert settings["sae_specialists"] == {"threshold": 5.0}


def test_rewrite_replaces_the_directory(tmp_path, layer_tables):
    features, examples, histograms, logits, _ = layer_tables
    out = tmp_path / "layer"
    out.mkdir()
    (out / "batch-7.json").write_text("stale")
    write_layer_export(
        out,
        ids=NeuronpediaIds("m", 1, "s"),
        features=features.head(1),
        examples=examples,
        histograms=histograms,
        logits=logits,
        logit_histograms=None,
        d_sae=8,
        byte_level=False,
        n_prompts_total=1,
        n_tokens_in_prompt=2,
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "batch-0.json",
        "run_settings.json",
        "skipped_indexes.json",
    ]
    batch = json.loads((out / "batch-0.json").read_text(encoding="utf-8"))
    assert [f["feature_index"] for f in batch["features"]] == [7]
    assert batch["features"][0]["activations"][0]["tokens"] == [" the", " the"]


def test_snakemake_export_on_the_demo_run(demo_run, tmp_path):
    """`snakemake export` on a copy of the shared demo run: one runner directory per SAE family
    and layer, every dashboard feature in it with its examples, in the runner's layout."""
    import polars as pl

    run = demo_run.copy(tmp_path / "run")
    run.snakemake("--cores", "2", "export")
    root = run.results / "export" / "neuronpedia"
    layers = sorted(root.glob("sae=*/layer=*"))
    assert layers
    for layer_dir in layers:
        family = layer_dir.parent.name.split("=", 1)[1]
        layer = int(layer_dir.name.split("=", 1)[1])
        dash = run.results / "dashboards" / f"sae={family}" / f"layer={layer}"
        wanted = sorted(pl.read_parquet(dash / "features.parquet")["feature"].to_list())
        examples = pl.read_parquet(dash / "examples.parquet")
        batches = [
            json.loads(p.read_text(encoding="utf-8"))
            for p in sorted(layer_dir.glob("batch-*.json"))
        ]
        got = sorted(f["feature_index"] for b in batches for f in b["features"])
        assert got == wanted
        for b in batches:
            assert set(b) == BATCH and b["layer"] == layer and b["sae_id_suffix"] is None
            assert b["sae_set"] == slug(family)  # a local SAE: its family's name as an id part
            for f in b["features"]:
                assert set(f) == FEATURE
                n_examples = examples.filter(pl.col("feature") == f["feature_index"]).height
                assert len(f["activations"]) == n_examples >= 1
                for a in f["activations"]:
                    assert set(a) == ACTIVATION
                    assert 1 <= len(a["tokens"]) == len(a["values"]) <= 1024
                    central = a["values"][a["qualifying_token_index"]]
                    assert central > 0
                    if a["bin_min"] == -1:  # a top example: its max token is the window's max
                        assert central == max(a["values"])
                    else:  # a quantile example: its token lies in the interval
                        assert a["bin_min"] - 1e-4 <= central <= a["bin_max"] + 1e-4
        skipped = json.loads((layer_dir / "skipped_indexes.json").read_text())
        assert set(skipped) == SKIPPED and not set(skipped["skipped_indexes"]) & set(wanted)


def test_logit_histograms_match_numpy():
    """The logits histogram of every feature (one pass with the top effects) equals numpy's
    histogram of that feature's effects over the vocabulary."""
    import numpy as np
    import torch

    from sae_specialists.dashboards.logits import effects_pass, histogram_table

    rng = np.random.default_rng(3)
    directions = torch.from_numpy(rng.normal(size=(7, 16)).astype(np.float32))
    w_u = torch.from_numpy(rng.normal(size=(16, 300)).astype(np.float32))
    pos_ids, pos_vals, neg_ids, neg_vals, lo, hi, counts = effects_pass(
        directions, w_u, top=5, chunk=3, bins=50
    )
    effects = (directions @ w_u).numpy()
    for f in range(7):
        want, edges = np.histogram(effects[f], bins=50, range=(effects[f].min(), effects[f].max()))
        assert counts[f].tolist() == want.tolist()
        assert lo[f] == pytest.approx(effects[f].min(), rel=1e-5)
        assert hi[f] == pytest.approx(effects[f].max(), rel=1e-5)
        assert pos_ids[f].tolist() == np.argsort(-effects[f])[:5].tolist()
    table = histogram_table(lo, hi, counts)
    assert table.num_rows == 7 * 50 and table["count"].to_numpy().sum() == 7 * 300

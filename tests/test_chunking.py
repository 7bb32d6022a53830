"""Extraction per (category, chunk) through the real Snakefile, on YAML / JSONL / Parquet / text
categories: the chunked shards equal a one-shot extraction, are readable by one hive glob, feed
the analysis, and rerun only what changed; shards are written atomically and stale chunks go."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import demo_config, resource_texts, run_snakemake, scheduled_jobs, write_texts

from sae_specialists.core.errors import TextsError
from sae_specialists.core.io import read_metadata
from sae_specialists.core.settings import load_settings, schema_path
from sae_specialists.extraction.corpus import CorpusOptions, load_category

CHUNK = 2
# texts per category: python.yaml and formal.parquet fit one chunk, social.jsonl and math.txt
# (blank-line separated) take two
N_TEXTS = {"python": 2, "formal": 2, "social": 3, "math": 3}
FAST = ("--set-threads", "extract_activations=1")  # 2 small jobs at a time on --cores 2


def make_corpus(directory):
    texts = {c: resource_texts((c,), n=n)[c] for c, n in N_TEXTS.items()}
    write_texts(directory, {"python": texts["python"]})  # YAML
    with open(directory / "social.jsonl", "w", encoding="utf-8") as handle:
        for t in texts["social"]:
            handle.write(json.dumps({"body": t}, ensure_ascii=False) + "\n")
    pq.write_table(pa.table({"body": texts["formal"]}), directory / "formal.parquet")
    (directory / "math.txt").write_text("\n\n".join(texts["math"]) + "\n", encoding="utf-8")
    return texts


@pytest.fixture(scope="module")
def chunked_run(demo_assets, tmp_path_factory):
    work = tmp_path_factory.mktemp("chunked")
    texts = make_corpus(work / "texts")
    config = demo_config(
        demo_assets,
        work / "texts",
        work / "results",
        extraction={
            "batch_size": 3,
            "chunk_size": CHUNK,
            "text_field": "body",
            "text_split": "blank_lines",
        },
    )
    results = work / "results"
    run_snakemake(work, "--cores", "2", *analysis_targets(results), *FAST, config=config)
    return work, config, texts


def analysis_targets(results):
    """The analysis steps that read shards (the rest reads their outputs)."""
    layers = [str(results / f"per_text/sae=res/layer={layer}.parquet") for layer in (1, 3)]
    return [str(results / "per_text/texts.parquet"), *layers]


def extract_jobs(work, config, *args):
    dry = run_snakemake(work, "-n", *args, config=config)
    jobs = [
        line.split("wildcards: ")[1]
        for line in dry.stdout.splitlines()
        if line.strip().startswith("wildcards: category=")
    ]
    return scheduled_jobs(dry).get("extract_activations", 0), jobs


def test_dry_run_lists_one_job_per_category_and_chunk(chunked_run):
    work, config, _ = chunked_run
    fresh = {**config, "results_dir": str(work / "fresh")}
    n, jobs = extract_jobs(work, fresh)
    assert n == 1 + 1 + 2 + 2
    assert "category=social, chunk=00001" in jobs and "category=math, chunk=00001" in jobs
    assert "category=python, chunk=00000" in jobs and "category=python, chunk=00001" not in jobs


def test_one_hive_glob_reads_every_chunk_in_text_order(chunked_run):
    work, config, texts = chunked_run
    results = work / "results"
    assert sorted(p.name for p in (results / "tokens/category=social").iterdir()) == [
        "chunk=00000",
        "chunk=00001",
    ]
    tokens = pl.scan_parquet(f"{results}/tokens/**/*.parquet", hive_partitioning=True).collect()
    assert set(tokens.columns) >= {"text_id", "category", "chunk", "token_pos", "bos"}
    for category in ("python", "social", "formal", "math"):
        ids = (
            tokens.filter(pl.col("category") == category)
            .unique("text_id", maintain_order=True)["text_id"]
            .to_list()
        )
        assert len(ids) == N_TEXTS[category]
        assert [t.text for t in load_texts_for(work, category, config)] == texts[category]
        assert ids == [t.text_id for t in load_texts_for(work, category, config)]
    acts = pl.scan_parquet(
        f"{results}/activations/sae=res/layer=3/**/*.parquet", hive_partitioning=True
    ).collect()
    assert {"sae", "layer", "category", "chunk", "text_id", "feature"} <= set(acts.columns)
    assert acts["chunk"].max() == 1 and acts["category"].n_unique() == 4
    meta = read_metadata(
        results / "activations/sae=res/layer=3/category=social/chunk=00001/activations.parquet"
    )
    assert (meta["chunk"], meta["n_chunks"], meta["chunk_size"], meta["n_texts"]) == (1, 2, 2, 1)
    assert not list(results.rglob("*.tmp"))


def load_texts_for(work, category, config):
    path = next((work / "texts").glob(f"{category}.*"))
    extraction = load_settings(config, schema_path()).extraction
    options = CorpusOptions(extraction.text_field, extraction.text_split)
    return load_category(path, category, options)


def test_chunked_shards_equal_a_one_shot_extraction(chunked_run, demo_assets):
    from sae_specialists.extraction.engine import extract
    from sae_specialists.extraction.models import load_local_model
    from sae_specialists.extraction.saes import load_sae
    from sae_specialists.extraction.tokenize import tokenize_texts

    work, config, _ = chunked_run
    results = work / "results"
    model = load_local_model(demo_assets / "model")
    saes = [
        load_sae("res", layer, {"path": str(demo_assets / f"saes/res/layer{layer}")})
        for layer in (1, 3)
    ]
    for category in ("social", "math"):
        texts = load_texts_for(work, category, config)
        tokens, tables = extract(model, saes, tokenize_texts(model, texts), batch_size=8)
        got_tokens = pl.read_parquet(
            sorted((results / f"tokens/category={category}").glob("chunk=*/tokens.parquet"))
        )
        assert got_tokens.equals(pl.from_arrow(tokens))
        for layer in (1, 3):
            want = pl.from_arrow(tables[("res", layer)])
            got = pl.read_parquet(
                sorted(
                    (results / f"activations/sae=res/layer={layer}/category={category}").glob(
                        "chunk=*/activations.parquet"
                    )
                )
            )
            assert got.select("text_id", "token_pos", "feature").equals(
                want.select("text_id", "token_pos", "feature")
            )
            np.testing.assert_allclose(got["activation"], want["activation"], rtol=1e-5, atol=1e-5)


def test_analysis_reads_all_chunks(chunked_run):
    work, _, _ = chunked_run
    texts = pl.read_parquet(work / "results/per_text/texts.parquet")
    total = sum(N_TEXTS.values())
    assert texts.height == total
    assert texts.group_by("category").len().sort("category").rows() == sorted(N_TEXTS.items())
    per_text = pl.read_parquet(work / "results/per_text/sae=res/layer=3.parquet")
    assert per_text["text_id"].n_unique() == total  # the planted BOS/frequent features


def test_adding_a_text_reruns_only_that_category(chunked_run, tmp_path, copy_tree):
    work = copy_tree(chunked_run[0], tmp_path / "copy")
    config = {**chunked_run[1], "texts": str(work / "texts"), "results_dir": str(work / "results")}
    targets = analysis_targets(work / "results")
    n, jobs = extract_jobs(work, config, *targets)
    assert n == 0
    with open(work / "texts/social.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"body": "one more post #new"}) + "\n")  # 4 texts: 2 chunks
    n, jobs = extract_jobs(work, config, *targets)
    assert n == 2 and all(j.startswith("category=social,") for j in jobs)
    with open(work / "texts/social.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"body": "and another"}) + "\n")  # 5 texts: 3 chunks
    n, jobs = extract_jobs(work, config, *targets)
    assert n == 3 and "category=social, chunk=00002" in jobs


def test_changing_chunk_size_reextracts(chunked_run):
    work, config, _ = chunked_run
    changed = {**config, "extraction": {**config["extraction"], "chunk_size": 3}}
    assert extract_jobs(work, changed, *analysis_targets(work / "results"))[0] == 4
    same = {**config, "extraction": {**config["extraction"], "batch_size": 1}}
    assert extract_jobs(work, same, *analysis_targets(work / "results"))[0] == 0


def test_a_job_replaces_stale_chunks_and_fails_atomically(
    chunked_run, tmp_path, copy_tree, demo_assets
):
    from sae_specialists.extraction.loading import ModelAndSAEs
    from sae_specialists.extraction.pipeline import extract_category

    work = copy_tree(chunked_run[0], tmp_path / "copy")
    results = work / "results"
    legacy = results / "tokens/category=social/tokens.parquet"  # pre-chunking layout
    legacy.write_bytes((results / "tokens/category=social/chunk=00000/tokens.parquet").read_bytes())
    config = {**chunked_run[1], "texts": str(work / "texts"), "results_dir": str(results)}
    config["extraction"] = {**config["extraction"], "chunk_size": None}
    settings = load_settings(config, schema_path())
    job, options = ModelAndSAEs.of(settings), settings.extraction
    layers = {
        ("res", layer): str(
            results / f"activations/sae=res/layer={layer}/"
            "category=social/chunk=00000/activations.parquet"
        )
        for layer in (1, 3)
    }
    tokens_out = str(results / "tokens/category=social/chunk=00000/tokens.parquet")
    summary = extract_category(
        job,
        options,
        "social",
        str(work / "texts/social.jsonl"),
        tokens_out,
        layers,
        chunk=0,
        n_chunks=1,
    )
    assert summary["n_texts"] == N_TEXTS["social"]
    assert not legacy.exists()
    assert [p.name for p in (results / "tokens/category=social").iterdir()] == ["chunk=00000"]
    for layer in (1, 3):
        kept = list((results / f"activations/sae=res/layer={layer}/category=social").iterdir())
        assert [p.name for p in kept] == ["chunk=00000"]
    assert pl.read_parquet(tokens_out)["text_id"].n_unique() == N_TEXTS["social"]

    # a corrupt line after the first window: no output is replaced, no temporary file is left
    import sae_specialists.extraction.tokenize as tokenize

    before = {Path(p): Path(p).read_bytes() for p in [tokens_out, *layers.values()]}
    with open(work / "texts/social.jsonl", "a", encoding="utf-8") as handle:
        handle.write("{not json\n")
    old = tokenize.TOKENIZE_TEXTS
    tokenize.TOKENIZE_TEXTS = 1
    try:
        with pytest.raises(TextsError, match="line 4"):
            extract_category(
                job,
                options,
                "social",
                str(work / "texts/social.jsonl"),
                tokens_out,
                layers,
                chunk=0,
                n_chunks=1,
                window_tokens=8,
            )
    finally:
        tokenize.TOKENIZE_TEXTS = old
    assert {p: p.read_bytes() for p in before} == before
    assert not list(results.rglob("*.tmp"))

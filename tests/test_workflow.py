"""The real Snakefile on the demo model: caching, rerun triggers, shard metadata, atomicity."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import polars as pl
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import (
    REPO,
    demo_config,
    resource_texts,
    run_snakemake,
    scheduled_jobs,
    write_texts,
)

from sae_specialists.core.contract import TOKENS_SCHEMA
from sae_specialists.core.io import read_metadata


@pytest.fixture(scope="module")
def workflow_run(demo_assets, tmp_path_factory):
    """A complete run on 3 categories x 3 texts, layers 1 and 3."""
    work = tmp_path_factory.mktemp("wf")
    texts = write_texts(work / "texts", resource_texts())
    config = demo_config(demo_assets, texts, work / "results")
    run_snakemake(work, "--cores", "2", config=config)
    return work, config


def extract_jobs(work, config, *args):
    return scheduled_jobs(run_snakemake(work, "-n", *args, config=config)).get(
        "extract_activations", 0
    )


def test_contract_paths_and_metadata(workflow_run):
    work, config = workflow_run
    results = work / "results"
    for category in ("python", "social", "formal"):
        tokens = pl.read_parquet(results / f"tokens/category={category}/chunk=00000/tokens.parquet")
        assert tokens.columns == TOKENS_SCHEMA.names
        assert tokens["text_id"].n_unique() == 3
        for layer in (1, 3):
            path = results / f"activations/sae=res/layer={layer}/category={category}"
            path = path / "chunk=00000" / "activations.parquet"
            schema = pq.read_schema(path)
            assert [f.name for f in schema] == ["text_id", "token_pos", "feature", "activation"]
            assert str(schema.field("activation").type) == "float"
            meta = read_metadata(path)
            assert meta["hook_name"] == f"blocks.{layer}.hook_resid_pre"
            assert meta["d_sae"] == 128 and meta["family"] == "res" and meta["layer"] == layer
            assert meta["neuronpedia_id"] is None and meta["release"] is None
            assert {"torch", "sae-lens", "transformer-lens"} <= set(meta["versions"])
    assert not list(results.rglob("*.tmp")), "no temporary files left behind"


def test_second_run_has_nothing_to_do(workflow_run):
    work, config = workflow_run
    dry = run_snakemake(work, "-n", config=config)
    assert "Nothing to be done" in dry.stdout + dry.stderr


def test_analysis_settings_never_trigger_extraction(workflow_run):
    work, config = workflow_run
    changed = {
        **config,
        "analysis": {
            **config["analysis"],
            "threshold": 1.0,
            "aggregation": "max",
            "candidates": 2,
            "include_bos": True,
        },
    }
    changed["extraction"] = {"batch_size": 1}  # batch size changes no result either
    assert extract_jobs(work, changed) == 0


def test_adding_a_text_reextracts_only_that_category(workflow_run, tmp_path, copy_tree):
    work = copy_tree(workflow_run[0], tmp_path / "copy")
    config = {**workflow_run[1], "texts": str(work / "texts"), "results_dir": str(work / "results")}
    # copytree keeps mtimes; make sure outputs stay newer than inputs, as in the original run
    texts = work / "texts" / "social.yaml"
    items = yaml.safe_load(texts.read_text("utf-8"))
    texts.write_text(yaml.safe_dump(items + ["new post 🔥🔥 #wow"], allow_unicode=True))
    dry = run_snakemake(work, "-n", config=config)
    assert scheduled_jobs(dry).get("extract_activations") == 1
    extracted = [
        line.split()[1].rstrip(",")
        for line in dry.stdout.splitlines()
        if line.strip().startswith("wildcards: category=")
    ]
    assert extracted == ["category=social"]  # its one chunk (wildcards: category=..., chunk=...)


def test_changing_layers_or_sae_reextracts(workflow_run):
    work, config = workflow_run
    assert extract_jobs(work, {**config, "layers": [1, 2, 3]}) == 3


def test_hub_unreachable_fails_fast_with_a_clear_message(tmp_path):
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": "http://127.0.0.1:9"}
    env.pop("HF_HUB_OFFLINE", None)
    env.pop("TRANSFORMERS_OFFLINE", None)
    code = (
        "from sae_specialists.extraction.models import load_model\n"
        "load_model({'name': 'gpt2-small'}, device='cpu')\n"
    )
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert time.monotonic() - start < 60
    assert proc.returncode != 0
    assert "HubUnreachableError" in proc.stderr and "'gpt2-small'" in proc.stderr
    assert "config/demo.yaml" in proc.stderr and "Local formats" in proc.stderr


def test_default_config_dry_run_lists_one_extraction_job_per_category(tmp_path):
    """The study's config (7 categories of one chunk each), with results in an empty directory
    (so no existing result can make the job count vary): exactly one extraction job per
    category."""
    fresh = ("--config", f"results_dir={tmp_path / 'results'}")
    proc = run_snakemake(REPO, "-n", "--quiet", "rules", *fresh)
    dry = run_snakemake(REPO, "-n", *fresh)
    jobs = scheduled_jobs(dry)
    assert jobs.get("extract_activations") == 7, proc.stdout
    # the workflow profile (greedy job selection, profiles/default/config.yaml) applies to
    # every run of the Snakefile, wherever it is started from
    assert "Using workflow specific profile profiles/default" in dry.stdout + dry.stderr


def test_corrupt_shard_is_reported_and_not_analysed(workflow_run, tmp_path, copy_tree):
    work = copy_tree(workflow_run[0], tmp_path / "copy")
    config = {**workflow_run[1], "texts": str(work / "texts"), "results_dir": str(work / "results")}
    shard = next((work / "results/activations/sae=res/layer=3").rglob("*.parquet"))
    shard.write_bytes(shard.read_bytes()[:200])  # truncated, e.g. by a crashed copy
    proc = run_snakemake(work, "--cores", "1", "analysis", config=config, check=False)
    assert proc.returncode != 0
    logs = "".join(p.read_text() for p in (work / "results/logs").rglob("*.log"))
    assert f"shard {shard} is unreadable or corrupt" in logs
    assert "Delete it and rerun snakemake" in logs
    assert not (work / "results/per_text/sae=res/layer=3.parquet").exists()
    assert (work / "results/per_text/sae=res/layer=1.parquet").exists()

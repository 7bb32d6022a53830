"""Bad input through the real entry points: one clear message, non-zero exit, nothing lost."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from conftest import REPO, demo_config, resource_texts, run_snakemake, write_texts

from sae_specialists.core.contract import ACTIVATIONS_SCHEMA
from sae_specialists.core.errors import ShardError, UserError
from sae_specialists.core.io import check_schema, write_table_atomic
from sae_specialists.startup import startup_checks

HUB_CONFIG = {
    "model": {"name": "gpt2-small"},
    "saes": {"res": {"release": "gpt2-small-res-jb", "id": "blocks.{layer}.hook_resid_pre"}},
    "layers": [6, 8],
    "texts": str(REPO / "resources/texts"),
}


SCHEMA = REPO / "workflow/schemas/config.schema.yaml"


def startup_fails(config: dict) -> str:
    """The checks the Snakefile runs at start (sae_specialists.startup.startup_checks)."""
    with pytest.raises(UserError) as info:
        startup_checks(config, SCHEMA)
    return f"{type(info.value).__name__}: {info.value}"


def dry_run_fails(tmp_path: Path, config: dict) -> str:
    proc = run_snakemake(tmp_path / "wf", "-n", config=config, check=False)
    assert proc.returncode != 0, proc.stdout
    return proc.stdout + proc.stderr


def with_key(config: dict, dotted: str, value) -> dict:
    config = json.loads(json.dumps(config))
    *parents, last = dotted.split(".")
    node = config
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return config


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("tresholds", 5, "'tresholds' was unexpected"),
        ("analysis.treshold", 5, "analysis: Additional properties"),
        ("layers", "six", "layers: 'six' is not of type 'array'"),
        ("layers", [], "layers: [] should be non-empty"),
        ("layers", [6, 6], "layers: [6, 6] has non-unique elements"),
        ("analysis.threshold", -1, "analysis.threshold: -1 is less than the minimum of 0"),
        ("analysis.threshold", "high", "analysis.threshold: 'high' is not of type 'number'"),
        ("analysis.candidates", 0, "analysis.candidates: 0 is less than the minimum of 1"),
        ("saes.res", {"id": "blocks.{layer}.hook_resid_pre"}, "saes.res: needs exactly one of"),
        ("saes.res.id", "blocks.6.hook_resid_pre", "has no '{layer}' but 2 layers"),
        ("saes.res.release", "gpt2-small-res-jbx", "is not a SAELens release"),
        ("saes.res.id", "blocks.{layer}.hook_resid_mid", "Valid ids: ['blocks.0.hook_resid_pre'"),
        ("device", "tpu", "device: 'tpu' is not one of"),
    ],
)
def test_bad_config_is_rejected_before_any_job(key, value, expected):
    out = startup_fails(with_key(HUB_CONFIG, key, value))
    assert expected in out
    assert "ConfigError" in out or "SAEError" in out


def test_layer_the_local_model_does_not_have(tmp_path, demo_assets):
    texts = write_texts(tmp_path / "texts", resource_texts(n=1))
    out = startup_fails(demo_config(demo_assets, texts, tmp_path / "r", layers=[1, 9]))
    assert "layers [9] do not exist" in out and "has 4 layers" in out


def bad_texts(tmp_path: Path, files: dict[str, bytes]) -> Path:
    directory = tmp_path / "texts"
    directory.mkdir()
    for name, content in files.items():
        (directory / name).write_bytes(content)
    return directory


GOOD = b"- a fine text\n- another one\n"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({}, "no category files"),
        ({"a.yaml": GOOD, "b.yaml": b""}, "b.yaml is empty"),
        ({"a.yaml": GOOD, "b.yaml": b"key: value\n"}, "must be a YAML list of strings"),
        ({"a.yaml": GOOD, "b.yaml": b"- ok\n- 42\n"}, "b.yaml, item 2: expected a string"),
        ({"a.yaml": GOOD, "b.yaml": b"- ok\n- '   '\n"}, "item 2 is empty or whitespace only"),
        ({"a.yaml": GOOD, "b.yaml": b"- caf\xe9\n"}, "b.yaml is not valid UTF-8 (byte 5, line 1)"),
        ({"a.yaml": GOOD, "b.yaml": b"- [unclosed\n"}, "b.yaml is not valid YAML"),
        ({"a.yaml": GOOD, "bad name.yaml": GOOD}, "'bad name' is not a safe path component"),
        ({"a.yaml": GOOD, "b.yaml": b"[]\n"}, "holds an empty list"),
    ],
)
def test_bad_texts_are_rejected_before_any_job(tmp_path, demo_assets, files, expected):
    texts = bad_texts(tmp_path, files)
    out = startup_fails(demo_config(demo_assets, texts, tmp_path / "r"))
    assert expected in out and "TextsError" in out


def test_snakemake_reports_startup_errors_and_exits_non_zero(tmp_path, demo_assets):
    """The same checks, through the real `snakemake` entry point."""
    out = dry_run_fails(tmp_path, with_key(HUB_CONFIG, "analysis.threshold", -1))
    assert "analysis.threshold: -1 is less than the minimum of 0" in out
    texts = bad_texts(tmp_path, {"a.yaml": GOOD, "b.yaml": b"- caf\xe9\n"})
    out = dry_run_fails(tmp_path, demo_config(demo_assets, texts, tmp_path / "r"))
    assert "b.yaml is not valid UTF-8" in out


def test_missing_texts_directory(tmp_path, demo_assets):
    out = startup_fails(demo_config(demo_assets, tmp_path / "nope", tmp_path / "r"))
    assert "does not exist" in out and "texts" in out


def test_duplicates_and_unequal_sizes_warn_and_name_the_texts(tmp_path, demo_assets):
    texts = write_texts(
        tmp_path / "texts",
        {
            "a": ["same text", "same text", "other"] + [f"a{i}" for i in range(5)],
            "b": ["same text", "b text"],
        },
    )
    proc = run_snakemake(
        tmp_path / "wf", "-n", config=demo_config(demo_assets, texts, tmp_path / "r")
    )
    out = proc.stderr + proc.stdout
    assert "the same text appears 3 times: a-" in out
    assert "a-" in out and "-2" in out and ", b-" in out
    assert "category sizes are very unequal (a=8, b=2)" in out


def corrupted_copy(demo_assets: Path, tmp_path: Path) -> Path:
    assets = tmp_path / "assets"
    shutil.copytree(demo_assets, assets)
    return assets


def test_sae_that_does_not_fit_the_model_is_rejected_and_nothing_is_lost(tmp_path, demo_assets):
    texts = write_texts(tmp_path / "texts", resource_texts(n=1))
    assets = corrupted_copy(demo_assets, tmp_path)
    # what the user has computed: shards and the analysis (the later stages add model-loading
    # jobs, ~10 s of imports each, and nothing this test checks; one extraction job for every
    # category: the job layout is not what this test checks either)
    off = {"enabled": False}
    later = {s: off for s in ("methodology", "validation", "comparison", "causal", "surface")}
    config = demo_config(
        assets, texts, tmp_path / "r", layers=[1], extraction={"jobs": "single"}, **later
    )
    run_snakemake(tmp_path / "wf", "--cores", "2", "analysis", config=config)
    shards = sorted((tmp_path / "r").rglob("*.parquet"))
    assert {"activations", "tables"} <= {part for p in shards for part in p.parts}
    before = {p: p.read_bytes() for p in shards}

    cfg_file = assets / "saes/res/layer1/cfg.json"
    cfg = json.loads(cfg_file.read_text())
    cfg["d_in"] = 32
    cfg_file.write_text(json.dumps(cfg))
    out = dry_run_fails(tmp_path, config)
    assert "has d_in=32 but the model's 'blocks.1.hook_resid_pre' has width 64" in out

    cfg["d_in"] = 64
    cfg["metadata"]["hook_name"] = "blocks.7.hook_resid_pre"
    cfg_file.write_text(json.dumps(cfg))
    out = dry_run_fails(tmp_path, config)
    assert "reads hook 'blocks.7.hook_resid_pre' but the model has only 4 layers" in out

    (assets / "model/model.safetensors").unlink()
    out = dry_run_fails(tmp_path, config)
    assert "is missing model.safetensors" in out
    assert {p: p.read_bytes() for p in shards} == before


def test_long_texts_error_policy_names_the_text(tmp_path, demo_assets):
    texts = write_texts(tmp_path / "texts", {"a": ["short", "word " * 700], "b": ["fine"]})
    config = demo_config(demo_assets, texts, tmp_path / "r", extraction={"long_texts": "error"})
    proc = run_snakemake(tmp_path / "wf", "--cores", "1", config=config, check=False)
    # whichever extraction job of category a ran first (its tokens or its activations) refused
    # the text and stopped the run
    logs = [
        tmp_path / "r/logs/extract" / name / "chunk=00000.log"
        for name in ("tokens_category=a", "sae=res/category=a")
    ]
    log = "".join(p.read_text() for p in logs if p.is_file())
    assert proc.returncode != 0
    assert "longer than the limit of 512 tokens" in log and "a-" in log
    assert not list((tmp_path / "r/tokens/category=a").rglob("*.parquet"))


def small_table(n: int = 1000) -> pa.Table:
    return pa.table(
        {
            "text_id": ["t"] * n,
            "token_pos": list(range(n)),
            "feature": [1] * n,
            "activation": [1.0] * n,
        },
        schema=ACTIVATIONS_SCHEMA,
    )


KILL_MID_WRITE = """
import os, signal, sys
import pyarrow as pa
from sae_specialists.core import io as shards
from sae_specialists.core.contract import ACTIVATIONS_SCHEMA
os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)  # die after data, before rename
n = 100000
table = pa.table({"text_id": ["t"] * n, "token_pos": list(range(n)), "feature": [2] * n,
                  "activation": [2.0] * n}, schema=ACTIVATIONS_SCHEMA)
shards.write_table_atomic(table, sys.argv[1])
"""


def test_a_job_killed_mid_write_leaves_no_complete_looking_shard(tmp_path):
    target = tmp_path / "a/activations.parquet"
    fresh = tmp_path / "b/activations.parquet"
    write_table_atomic(small_table(), target)
    before = target.read_bytes()
    for path in (target, fresh):
        proc = subprocess.run([sys.executable, "-c", KILL_MID_WRITE, str(path)])
        assert proc.returncode == -9
    assert target.read_bytes() == before  # the earlier valid shard is intact
    assert not fresh.exists()  # no shard that looks complete
    write_table_atomic(small_table(), fresh)  # a rerun finishes the work
    assert pl.read_parquet(fresh).height == 1000


def test_disk_full_gives_a_clear_error_and_keeps_the_old_shard(tmp_path, monkeypatch):
    target = tmp_path / "activations.parquet"
    write_table_atomic(small_table(), target)
    before = target.read_bytes()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("pyarrow.parquet.write_table", full)
    with pytest.raises(ShardError, match="disk full while writing .*activations.parquet"):
        write_table_atomic(small_table(10), target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["activations.parquet"]


def test_corrupt_shard_is_detected(tmp_path):
    path = tmp_path / "activations.parquet"
    write_table_atomic(small_table(), path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ShardError, match="unreadable or corrupt.*Delete it and rerun"):
        check_schema(path, ACTIVATIONS_SCHEMA)

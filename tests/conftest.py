"""Shared fixtures: the demo model/SAEs (built once per session, offline) and small workflows."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def demo_assets(tmp_path_factory) -> Path:
    """The demo's tiny model and planted SAEs (layers 0-3), in the local formats."""
    from sae_specialists.demo import build_demo

    out = tmp_path_factory.mktemp("demo_assets")
    build_demo(out, seed=0)
    return out


@pytest.fixture(scope="session")
def planted(demo_assets) -> dict:
    return json.loads((demo_assets / "planted.json").read_text())


def write_texts(directory: Path, texts: dict[str, list[str]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for category, items in texts.items():
        (directory / f"{category}.yaml").write_text(
            yaml.safe_dump(items, allow_unicode=True), encoding="utf-8"
        )
    return directory


def resource_texts(categories=("python", "social", "formal"), n=3) -> dict[str, list[str]]:
    out = {}
    for category in categories:
        items = yaml.safe_load((REPO / "resources/texts" / f"{category}.yaml").read_text("utf-8"))
        out[category] = items[:n]
    return out


def demo_config(assets: Path, texts: Path, results: Path, **overrides) -> dict:
    config = {
        "model": {"path": str(assets / "model")},
        "device": "cpu",
        "saes": {"res": {"path": str(assets / "saes/res/layer{layer}")}},
        "layers": [1, 3],
        "texts": str(texts),
        "results_dir": str(results),
        "extraction": {"batch_size": 4},
        "analysis": {
            "aggregation": "mean",
            "threshold": 5.0,
            "candidates": 5,
            "include_bos": False,
        },
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


def run_snakemake(
    workdir: Path, *args: str, config: dict | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    """Run the project's real Snakefile in `workdir` (with `config` written to config.yaml)."""
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir)]
    if config is not None:
        (workdir / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
        cmd += ["--configfile", str(workdir / "config.yaml")]
    proc = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def scheduled_jobs(dry_run: subprocess.CompletedProcess) -> dict[str, int]:
    """Job counts per rule from a `snakemake -n` run's 'Job stats' table."""
    counts: dict[str, int] = {}
    text = dry_run.stdout + dry_run.stderr
    if "Nothing to be done" in text:
        return counts
    in_table = False
    for line in text.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            in_table = True
            continue
        if in_table:
            if len(parts) == 2 and parts[1].isdigit() and parts[0] != "total":
                counts[parts[0]] = int(parts[1])
            elif parts and parts[0] == "total":
                break
    return counts


@pytest.fixture
def copy_tree():
    def _copy(src: Path, dst: Path) -> Path:
        shutil.copytree(src, dst)
        return dst

    return _copy

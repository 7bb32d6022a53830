"""The configurations that draw their categories from datasets (config/examples/datasets-*.yaml)
pass the startup checks with no network at all: a config check never contacts the hub (the
datasets are contacted by the materialisation jobs only, extraction/datasets.py)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

from sae_specialists.core.settings import DatasetSpec
from sae_specialists.extraction.datasets import dataset_specs, is_local
from sae_specialists.startup import startup_checks

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow/schemas/config.schema.yaml"
EXAMPLES = sorted((REPO / "config/examples").glob("datasets-*.yaml"))
STUDY = ("conversational", "formal", "math", "non_english", "python", "social", "urls")


@pytest.fixture
def no_network(monkeypatch):
    """Every socket connection fails (and the HF libraries are offline)."""

    def refuse(*args, **kwargs):
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def load(path: Path) -> dict:
    config = yaml.safe_load(path.read_text())
    for source in config["texts"].values():
        if source.get("dataset") in ("json", "parquet", "csv", "text"):
            source["data_files"] = str(REPO / source["data_files"])
    return config


def test_the_dataset_examples():
    assert {p.stem for p in EXAMPLES} == {
        "datasets-study",
        "datasets-safety-refusals",
        "datasets-learning-curve-demo",
    }


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_dataset_example_passes_the_startup_checks_offline(path, no_network, tmp_path):
    config = load(path)
    config["results_dir"] = str(tmp_path / "results")
    settings = startup_checks(config, SCHEMA)
    specs = dataset_specs(settings)
    assert specs and set(specs) == set(config["texts"])
    assert all(isinstance(s, DatasetSpec) and s.n >= 40 for s in specs.values())
    if path.stem == "datasets-study":
        assert tuple(specs) == STUDY and not any(is_local(s) for s in specs.values())
        assert {s.n for s in specs.values()} == {1000}


def test_a_missing_local_dataset_fails_the_offline_check(no_network, tmp_path):
    from sae_specialists.core.errors import TextsError

    config = load(REPO / "config/examples/datasets-learning-curve-demo.yaml")
    config["texts"]["weak"]["data_files"] = str(tmp_path / "missing.jsonl")
    with pytest.raises(TextsError, match="texts.weak: data_files .* matches no file"):
        startup_checks(config, SCHEMA)

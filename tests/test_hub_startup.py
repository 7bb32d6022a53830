"""The hub at startup: with the Hugging Face hub unreachable (or HF_HUB_OFFLINE set), a run
whose jobs load a model or SAE missing from the HF cache stops before its first job, naming
each, within seconds; `snakemake -n` says so in a warning; a populated cache passes
(startup.hub_items / hub_warning / check_hub_for_jobs, extraction/hub.py)."""

from __future__ import annotations

import time

import pytest
import yaml
from conftest import REPO, run_snakemake

from sae_specialists.core.errors import HubUnreachableError
from sae_specialists.core.settings import load_settings, schema_path
from sae_specialists.extraction.hub import HubItem, in_cache, model_repo, unavailable
from sae_specialists.startup import check_hub_for_jobs, hub_items, hub_warning

SAE_REPO = "jbloom/GPT2-Small-SAEs-Reformatted"  # SAELens's gpt2-small-res-jb, by hand
STUDY = yaml.safe_load((REPO / "config" / "config.yaml").read_text("utf-8"))


def study_config(tmp_path, **overrides) -> dict:
    """The study's config (GPT-2 small from the hub, SAELens releases), run from ``tmp_path``
    (the repository's resources linked there, so its relative paths hold)."""
    if not (tmp_path / "resources").exists():
        (tmp_path / "resources").symlink_to(REPO / "resources")
    return {**STUDY, "results_dir": str(tmp_path / "results"), **overrides}


def populate(cache, repo_id: str, folder: str = "", name: str = "config.json") -> None:
    """A snapshot in the HF cache layout (models--org--name/snapshots/<rev>/...) with a file."""
    snapshot = cache / ("models--" + repo_id.replace("/", "--")) / "snapshots" / "0123abc"
    (snapshot / folder).mkdir(parents=True, exist_ok=True)
    (snapshot / folder / name).write_text("{}")


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """HF_HUB_OFFLINE (never probe the network) and an empty cache of our own."""
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


def test_hub_items_of_the_study_config(tmp_path):
    settings = load_settings(study_config(tmp_path), schema_path())
    items = hub_items(settings.model.spec, settings.sae_sources())
    assert items[0] == HubItem("model 'gpt2-small'", "gpt2")  # TransformerLens's hub name
    assert items[1:] == [
        HubItem(
            f"SAE gpt2-small-res-jb/blocks.{layer}.hook_resid_pre (family 'res', layer {layer})",
            SAE_REPO,
            f"blocks.{layer}.hook_resid_pre",
        )
        for layer in sorted(STUDY["layers"])
    ]
    assert model_repo("pythia-70m-deduped") == "EleutherAI/pythia-70m-deduped"
    # local files need nothing from the hub
    assert hub_items({"path": "results/demo/assets/model"}, {("res", 0): {"path": "x"}}) == []


def test_a_populated_cache_is_enough_offline(offline, tmp_path):
    settings = load_settings(study_config(tmp_path, layers=[6]), schema_path())
    items = hub_items(settings.model.spec, settings.sae_sources())
    assert unavailable(items) == items  # empty cache, offline: nothing can be loaded
    warning = hub_warning(settings)
    assert (
        "model 'gpt2-small'" in warning and "gpt2-small-res-jb/blocks.6.hook_resid_pre" in warning
    )
    assert str(offline) in warning and "config/demo.yaml" in warning
    populate(offline, "gpt2")
    assert [i.what for i in unavailable(items)] == [items[1].what]
    populate(offline, SAE_REPO, "blocks.8.hook_resid_pre")  # another layer's SAE only
    assert not in_cache(items[1]) and unavailable(items) == [items[1]]
    populate(offline, SAE_REPO, "blocks.6.hook_resid_pre", "sae_weights.safetensors")
    assert unavailable(items) == [] and hub_warning(settings) is None


def test_only_jobs_that_load_something_need_the_hub(offline):
    """The onstart check sees each job's params: jobs without ``model`` / ``saes`` params (an
    analysis of existing shards) pass with no hub and an empty cache."""
    analysis = {"threshold": 5.0, "candidates": 5}
    check_hub_for_jobs([analysis, analysis])
    check_hub_for_jobs([{"model": {"path": "m"}, "saes": {("res", 0): {"path": "s"}}}])
    source = {"release": "gpt2-small-res-jb", "sae_id": "blocks.6.hook_resid_pre"}
    with pytest.raises(HubUnreachableError) as err:
        check_hub_for_jobs([analysis, {"saes": {("res", 6): source}}])  # e.g. comparison_related
    message = str(err.value)
    assert "gpt2-small-res-jb/blocks.6.hook_resid_pre" in message and "model '" not in message
    assert "HF_HUB_OFFLINE is set" in message and "Local formats" in message


def test_the_study_without_hub_stops_before_its_first_job(offline, tmp_path):
    """`snakemake -n` warns; the real run stops within seconds, before any job, with one message
    naming the model and the SAEs; nothing is written under results_dir."""
    config = study_config(tmp_path, layers=[6, 8])
    start = time.monotonic()
    dry = run_snakemake(tmp_path, "-n", config=config)
    warnings = [line for line in dry.stderr.splitlines() if line.startswith("WARNING a job")]
    assert len(warnings) == 1 and "model 'gpt2-small'" in warnings[0], dry.stderr[-2000:]
    real = run_snakemake(tmp_path, "--cores", "1", config=config, check=False)
    assert time.monotonic() - start < 90  # both runs (the DAG of the study: seconds)
    assert real.returncode == 1
    tail = real.stderr.rstrip().splitlines()
    assert tail[-2].startswith("sae-specialists: cannot start (configuration:")
    for name in ("model 'gpt2-small'", "blocks.6.hook_resid_pre", "blocks.8.hook_resid_pre"):
        assert name in tail[-1]
    assert "Traceback" not in real.stderr
    assert not (tmp_path / "results").exists()


def test_the_hub_is_probed_only_when_something_is_not_cached(monkeypatch, tmp_path):
    """Without HF_HUB_OFFLINE: a cached item needs no probe; a missing one is loadable when the
    hub endpoint answers (here a local listening socket) and missing when it does not (a closed
    local port: refused at once)."""
    import socket

    import sae_specialists.extraction.hub as hub

    cache = tmp_path / "hf-cache"
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    cached, missing = HubItem("model 'a'", "org/a"), HubItem("model 'b'", "org/b")
    populate(cache, "org/a")
    probes = []
    real_probe = hub.hub_reachable
    monkeypatch.setattr(hub, "hub_reachable", lambda: probes.append(1) or real_probe(timeout=2))
    assert unavailable([cached]) == [] and probes == []  # all cached: no network at all
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
        assert unavailable([cached, missing]) == [] and probes == [1]
    # the same port, closed now: refused
    assert unavailable([cached, missing]) == [missing] and probes == [1, 1]

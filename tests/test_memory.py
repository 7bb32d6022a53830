"""Extraction memory: windows sized by the activation rows they produce (so a denser SAE gets
shorter windows, not a bigger peak), and a peak RSS that is the job's own."""

from __future__ import annotations

import subprocess
import sys

import polars as pl
import pytest
import torch
import yaml
from conftest import demo_config, resource_texts

import sae_specialists.extraction.memory as memory
from sae_specialists.core.settings import load_settings, schema_path
from sae_specialists.extraction.loading import ModelAndSAEs
from sae_specialists.extraction.memory import MIN_WINDOW_TOKENS, PROBE_TOKENS, WindowBudget
from sae_specialists.extraction.pipeline import extract_category
from sae_specialists.extraction.saes import load_sae

pytestmark = pytest.mark.xdist_group("memory")


def test_peak_rss_is_the_process_own_not_its_parents():
    """ru_maxrss of a process started by a big one reports the parent's peak (the kernel keeps
    the high-water mark across fork and exec): a job started by Snakemake, or a benchmark child
    started right after building 3 GB of assets, would report that as its own."""
    ballast = bytearray(600 * 2**20)
    ballast[::4096] = b"\1" * len(ballast[::4096])  # touch every page: resident
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "from sae_specialists.core.jobs import peak_rss_mb; print(peak_rss_mb())",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    del ballast
    assert int(child.stdout) < 300, child.stdout


def test_window_budget_gives_each_window_the_tokens_of_its_rows():
    budget = WindowBudget(rows=100_000, max_tokens=32_768)
    assert budget.tokens() == PROBE_TOKENS  # density unknown: a short probe first
    budget.observe(2_000, 100_000)  # 50 rows a token
    assert budget.tokens() == 2_000
    budget.observe(2_000, 400_000)  # a denser stretch: the next window follows it at once
    assert budget.tokens() == 500
    budget.observe(500, 5_000)  # sparse again: the run's density so far (~84) still holds
    assert budget.tokens() == int(100_000 / (505_000 / 4_500))
    sparse = WindowBudget(rows=100_000, max_tokens=32_768)
    sparse.observe(2_000, 200)
    assert sparse.tokens() == 32_768  # never more than the engine's window
    dense = WindowBudget(rows=10, max_tokens=32_768)
    dense.observe(2_000, 2_000_000)
    assert dense.tokens() == MIN_WINDOW_TOKENS  # never a window of a text or two
    assert WindowBudget(None, 4_096).tokens() == 4_096  # no budget: fixed windows


def test_for_memory_leaves_the_loaded_model_out_of_the_rows():
    from sae_specialists.extraction.memory import BYTES_PER_ROW, HEADROOM_BYTES, resident_bytes

    held = resident_bytes()
    budget = WindowBudget.for_memory(held / 1e9 + 1.0)
    expected = (1e9 - HEADROOM_BYTES) / BYTES_PER_ROW
    assert abs(budget.rows - expected) / expected < 0.05
    assert WindowBudget.for_memory(None).rows is None
    assert WindowBudget.for_memory(held / 2e9).rows == 0  # less than held: minimum windows


def _denser_copy(demo_assets, out):
    """The demo's layer-3 SAE with every encoder bias raised by 1.5: ~6x more features fire per
    token (5.7 -> 32.6 on the python texts), the same model and texts."""
    dense = load_sae("res", 3, {"path": str(demo_assets / "saes/res/layer3")})
    with torch.no_grad():
        dense.sae.b_enc.add_(1.5)
    dense.sae.save_model(str(out))
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    texts = tmp_path_factory.mktemp("texts")
    items = resource_texts(("python",), n=10)["python"]  # 2,164 tokens
    (texts / "python.yaml").write_text(yaml.safe_dump(items * 4, allow_unicode=True), "utf-8")
    return texts


def _windows(demo_assets, corpus, sae_dir, out, window_rows=None, window_tokens=None):
    """[(tokens, rows)] of each window of one extraction job, and the most rows of one text."""
    config = demo_config(demo_assets, corpus, out)
    config["saes"] = {"res": {"path": str(sae_dir)}}
    config["layers"] = [3]
    settings = load_settings(config, schema_path())
    seen = []
    shard = out / "activations.parquet"
    extract_category(
        ModelAndSAEs.of(settings),
        settings.extraction,
        "python",
        str(corpus / "python.yaml"),
        None,
        {("res", 3): str(shard)},
        window_rows=window_rows,
        window_tokens=window_tokens,
        on_window=lambda r: seen.append((r.n_tokens, r.rows)),
    )
    per_text = pl.read_parquet(shard).group_by("text_id").len()["len"].max()
    return seen, per_text


def test_a_denser_sae_gets_shorter_windows_not_more_rows(
    demo_assets, corpus, tmp_path, monkeypatch
):
    """With fixed windows a window's rows grow with the SAE's density (so did the job's memory:
    2.2 GB at 64 active features per token, 3.9 GB at ~93, bench/RESULTS.md); with the row
    budget the denser SAE gets shorter windows and every window stays near the budget."""
    monkeypatch.setattr(memory, "PROBE_TOKENS", 256)  # a short probe: more windows to check
    saes = {"sparse": demo_assets / "saes/res/layer3"}
    saes["dense"] = _denser_copy(demo_assets, tmp_path / "dense")
    fixed = {
        name: _windows(demo_assets, corpus, d, tmp_path / f"fixed-{name}", window_tokens=2000)
        for name, d in saes.items()
    }
    density = {k: sum(r for _, r in w) / sum(t for t, _ in w) for k, (w, _) in fixed.items()}
    assert density["dense"] > 4 * density["sparse"], density
    rows = int(2000 * density["sparse"])  # the rows of a 2,000-token window of the sparse SAE
    assert max(r for _, r in fixed["dense"][0]) > 3 * rows  # what fixed windows do

    for name, sae_dir in saes.items():
        windows, text_rows = _windows(
            demo_assets, corpus, sae_dir, tmp_path / f"budget-{name}", window_rows=rows
        )
        after_probe = windows[1:-1]  # the probe, and the file's last (partial) window apart
        assert len(after_probe) >= 2, (name, windows)
        # a window ends with the text that reaches its token count: up to one text's rows over
        assert all(r <= 1.25 * rows + text_rows for _, r in after_probe), (name, windows, rows)
        if name == "dense":
            assert max(r for _, r in windows) < max(r for _, r in fixed["dense"][0]) / 2
            mean_tokens = sum(t for t, _ in after_probe) / len(after_probe)
            assert mean_tokens < 2000 / 2.5, windows

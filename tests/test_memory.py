"""Extraction memory: the window budget's arithmetic and a peak RSS that is the job's own (the
windows of real extraction jobs: tests/test_integrity.py, item 10)."""

from __future__ import annotations

import subprocess
import sys

from sae_specialists.extraction.memory import MIN_WINDOW_TOKENS, PROBE_TOKENS, WindowBudget


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

"""Run-time settings the Snakefile applies (sae_specialists.startup)."""

from __future__ import annotations

import os
from types import SimpleNamespace

from sae_specialists.startup import single_threaded_polars


def test_single_threaded_polars_is_a_default_the_user_can_override(monkeypatch):
    monkeypatch.setenv("POLARS_MAX_THREADS", "restored after the test")
    monkeypatch.delenv("POLARS_MAX_THREADS")
    assert single_threaded_polars() == "1"
    monkeypatch.setenv("POLARS_MAX_THREADS", "8")
    assert single_threaded_polars() == "8"


def test_jobs_let_openmp_threads_sleep_unless_the_user_chose(monkeypatch, tmp_path):
    """Every job (core.jobs.run) sets OMP_WAIT_POLICY=PASSIVE before its entry runs (the entry
    imports torch, whose OpenMP reads it then); a value the user set is kept."""
    from sae_specialists.core.jobs import run

    seen = []
    smk = SimpleNamespace(rule="probe", wildcards={}, log=[str(tmp_path / "probe.log")], threads=1)
    monkeypatch.setenv("OMP_WAIT_POLICY", "restored after the test")
    monkeypatch.delenv("OMP_WAIT_POLICY")
    run(lambda _: seen.append(os.environ.get("OMP_WAIT_POLICY")), smk)
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    run(lambda _: seen.append(os.environ.get("OMP_WAIT_POLICY")), smk)
    assert seen == ["PASSIVE", "ACTIVE"]

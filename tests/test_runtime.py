"""Run-time settings the Snakefile applies (sae_specialists.startup)."""

from __future__ import annotations

from sae_specialists.startup import single_threaded_polars


def test_single_threaded_polars_is_a_default_the_user_can_override(monkeypatch):
    monkeypatch.setenv("POLARS_MAX_THREADS", "restored after the test")
    monkeypatch.delenv("POLARS_MAX_THREADS")
    assert single_threaded_polars() == "1"
    monkeypatch.setenv("POLARS_MAX_THREADS", "8")
    assert single_threaded_polars() == "8"

"""Run-time settings the Snakefile applies (sae_specialists.runtime)."""

from __future__ import annotations

import threading

from sae_specialists.runtime import cancel_rate_limit_timers, single_threaded_polars


class _Scheduler:
    """Stands in for Snakemake's JobScheduler: same method name, same kind of timer."""

    def _schedule_reevalutation(self, delay: float) -> threading.Timer:
        timer = threading.Timer(delay, lambda: None)
        timer.start()
        return timer


def test_only_the_rate_limit_timers_are_cancelled():
    rate_limit = _Scheduler()._schedule_reevalutation(60)
    other = threading.Timer(60, lambda: None)
    other.start()
    try:
        assert cancel_rate_limit_timers() == 1
        rate_limit.join(timeout=5)
        assert not rate_limit.is_alive()  # would otherwise keep the process alive for 60 s
        assert other.is_alive()
    finally:
        other.cancel()
        rate_limit.cancel()
    assert cancel_rate_limit_timers() == 0


def test_single_threaded_polars_is_a_default_the_user_can_override(monkeypatch):
    monkeypatch.setenv("POLARS_MAX_THREADS", "restored after the test")
    monkeypatch.delenv("POLARS_MAX_THREADS")
    assert single_threaded_polars() == "1"
    monkeypatch.setenv("POLARS_MAX_THREADS", "8")
    assert single_threaded_polars() == "8"

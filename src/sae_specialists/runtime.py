"""Run-time support for the Snakefile itself (no torch, no polars: imported at parse time)."""

from __future__ import annotations

import threading

# Snakemake's job-rate limiter (default 100 jobs / 1 s) re-checks its budget with a non-daemon
# threading.Timer of one timespan after every scheduling round. When the run is over, the last
# such timers keep the process alive for up to a second: on a threshold-only rerun (4 jobs of
# ~0.5 s) that is a fifth of the wall time, and every `snakemake` call pays it. Sub-second
# timespans cannot be configured (`--max-jobs-per-timespan 10/100ms` parses as 100 minutes).
_RATE_LIMIT_TIMER = "_schedule_reevalutation"  # sic: Snakemake's method name


def cancel_rate_limit_timers() -> int:
    """Cancel Snakemake's pending rate-limit re-evaluation timers; returns how many.

    Only for the Snakefile's ``onsuccess``/``onerror`` handlers, which run after the scheduler
    has finished: nothing waits on these timers any more. Other timers are left alone.
    """
    cancelled = 0
    for thread in threading.enumerate():
        function = getattr(thread, "function", None)
        if (
            isinstance(thread, threading.Timer)
            and thread.is_alive()
            and _RATE_LIMIT_TIMER in getattr(function, "__qualname__", "")
        ):
            thread.cancel()
            cancelled += 1
    return cancelled

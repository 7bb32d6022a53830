"""Run-time support for the Snakefile itself (no torch, no polars: imported at parse time)."""

from __future__ import annotations

import os
import threading

# Snakemake's job-rate limiter (default 100 jobs / 1 s) re-checks its budget with a non-daemon
# threading.Timer of one timespan after every scheduling round. When the run is over, the last
# such timers keep the process alive for up to a second: on a threshold-only rerun (3 jobs of
# ~1 s) that is a fifth of the wall time, and every `snakemake` call pays it. Sub-second
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


def single_threaded_polars() -> str:
    """Make every job of this run use one polars thread (unless POLARS_MAX_THREADS is set).

    Jobs inherit the Snakemake process's environment (local subprocesses, and SLURM jobs through
    sbatch's default --export=ALL), so setting it here, before any job starts, reaches them all.
    Why: polars' multi-threaded streaming group-by keeps per-thread partial tables whose memory
    grows with the input (measured: 0.8 GB -> 2.1 GB from 21 M to 210 M per-text rows with 2
    threads, flat at 0.8 GB with one), which would make an analysis job's memory depend on the
    corpus size. Parallelism comes from Snakemake running jobs side by side instead.
    """
    return os.environ.setdefault("POLARS_MAX_THREADS", "1")

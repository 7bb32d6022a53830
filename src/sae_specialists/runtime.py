"""Run-time support for the Snakefile itself (no torch, no polars: imported at parse time)."""

from __future__ import annotations

import atexit
import os
import sys
import threading
from pathlib import Path

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


# After a successful run, Snakemake's process (~1,700 modules loaded: pandas, sqlalchemy,
# pydantic, ...) spends ~0.45 s tearing its interpreter down (module dictionaries, garbage
# collection) once everything is written, logged, flushed and unlocked: a tenth of a
# threshold-only rerun. Runs that execute jobs and succeed skip it (``onsuccess``); dry runs
# and failures still pay it.
_THREAD_JOIN_S = 2.0


def exit_without_interpreter_teardown() -> bool:
    """From the Snakefile's ``onsuccess`` handler: let Snakemake's final ``sys.exit(0)`` end
    the process without the interpreter's teardown. Returns whether it was armed.

    The exit does what a normal exit does before the teardown: it waits for the threads a
    normal exit waits for (non-daemon ones; the cancelled rate-limit timers end at once), runs
    every registered exit handler (``logging.shutdown``, which flushes and closes the log
    files; temporary-directory cleanup; ...) and flushes stdout/stderr; then ``os._exit(0)``.
    A non-zero status, a thread still running after a short wait, or any process other than
    the ``snakemake`` command (e.g. a test calling the API in-process) exits the normal way.
    """
    if not _is_snakemake_command():
        return False
    normal_exit = sys.exit

    def exit_(status=None):
        if status not in (None, 0) or not _other_threads_finished():
            normal_exit(status)
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # closed or broken pipe: nothing left to flush
                pass
        os._exit(0)

    sys.exit = exit_
    return True


def _is_snakemake_command() -> bool:
    program = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path()
    # `snakemake ...` (console script) or `python -m snakemake ...` (snakemake/__main__.py)
    return program.name == "snakemake" or (
        program.name == "__main__.py" and program.parent.name == "snakemake"
    )


def _other_threads_finished() -> bool:
    current = threading.current_thread()
    for thread in threading.enumerate():
        if thread is not current and not thread.daemon:
            thread.join(_THREAD_JOIN_S)
            if thread.is_alive():
                return False
    return True

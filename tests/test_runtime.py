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


_EXIT_SCRIPT = """
import atexit, os, sys, threading, time
sys.argv = [sys.argv[1]]
from sae_specialists.runtime import exit_without_interpreter_teardown
marker = os.environ["MARKER"]

def note(what):
    with open(marker, "a") as f:
        f.write(what + "\\n")

atexit.register(note, "exit handler")
if os.environ.get("THREAD"):
    threading.Thread(target=lambda: (time.sleep(0.3), note("thread"))).start()
print("armed" if exit_without_interpreter_teardown() else "not armed")

fd = os.open(marker, os.O_WRONLY | os.O_APPEND | os.O_CREAT)

class Teardown:
    # a module global: finalised only by the interpreter's teardown (when builtins may be
    # gone already, hence the bound defaults)
    def __del__(self, write=os.write, fd=fd):
        write(fd, b"teardown\\n")

kept = Teardown()
sys.stdout.write("unflushed output")
sys.exit(int(os.environ.get("STATUS", "0")))
"""


def _exit(tmp_path, program="/venv/lib/python3.11/site-packages/snakemake/__main__.py", **env):
    import os
    import subprocess
    import sys

    marker = tmp_path / "marker"
    proc = subprocess.run(
        [sys.executable, "-c", _EXIT_SCRIPT, program],
        capture_output=True, text=True, env={**os.environ, "MARKER": str(marker), **env},
    )
    return proc, (marker.read_text().splitlines() if marker.exists() else [])


def test_successful_snakemake_exit_skips_only_the_interpreter_teardown(tmp_path):
    proc, notes = _exit(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "armed\nunflushed output"  # flushed before os._exit
    assert notes == ["exit handler"]  # exit handlers ran; the teardown did not


def test_exit_waits_for_running_threads_first(tmp_path):
    proc, notes = _exit(tmp_path, THREAD="1")
    assert proc.returncode == 0, proc.stderr
    assert notes == ["thread", "exit handler"]


def test_failed_run_and_other_programs_exit_the_normal_way(tmp_path):
    proc, notes = _exit(tmp_path, STATUS="3")
    assert proc.returncode == 3
    assert notes == ["exit handler", "teardown"]
    (tmp_path / "marker").unlink()
    proc, notes = _exit(tmp_path, program="/venv/bin/pytest")
    assert proc.returncode == 0 and proc.stdout.startswith("not armed")
    assert notes == ["exit handler", "teardown"]
    (tmp_path / "marker").unlink()
    proc, notes = _exit(tmp_path, program="/venv/bin/snakemake")  # the console script
    assert proc.stdout.startswith("armed") and notes == ["exit handler"]

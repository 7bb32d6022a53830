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


_CHART_SCRIPT = """
import sys
from pathlib import Path
if sys.argv[1] == "warm":
    from sae_specialists.analysis.renderer import warm_up_in_background
    warm_up_in_background()
import polars as pl
from sae_specialists.analysis import charts
out = Path(sys.argv[2])
df = pl.DataFrame({"sae": ["res", "res"], "layer": [6, 8], "rank": [1, 1], "feature": [3, 4],
                   "peak": [1.0, 3.0], "text_id": ["a", "b"], "category": ["x", "y"]})
charts.save_chart(charts.peak_by_layer(df), out / "c.html", out / "c.png")
"""


def _chart_bytes(mode: str, out) -> tuple[bytes, bytes]:
    import subprocess
    import sys

    out.mkdir()
    proc = subprocess.run([sys.executable, "-c", _CHART_SCRIPT, mode, str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return (out / "c.html").read_bytes(), (out / "c.png").read_bytes()


def test_renderer_warm_up_leaves_the_charts_byte_identical(tmp_path):
    """A chart job that starts vl-convert in the background writes exactly the bytes a job
    without the warm-up writes (same process layout as the chart scripts)."""
    cold = _chart_bytes("cold", tmp_path / "cold")
    warm = _chart_bytes("warm", tmp_path / "warm")
    assert warm == cold
    assert cold[1][:8] == b"\x89PNG\r\n\x1a\n"


def test_renderer_warm_up_starts_vl_convert_once(monkeypatch):
    import vl_convert

    from sae_specialists.analysis import renderer

    calls = []
    monkeypatch.setattr(vl_convert, "vegalite_to_vega", lambda spec: calls.append(spec))
    monkeypatch.setattr(renderer, "_thread", None)
    first = renderer.warm_up_in_background()
    assert renderer.warm_up_in_background() is first  # one thread per process
    first.join(timeout=30)
    assert calls == [renderer._WARM_UP_SPEC]


def test_renderer_warm_up_ignores_errors_and_lets_the_process_exit_cleanly():
    """A job that fails (or finishes) while the runtime is still starting exits normally: the
    thread is joined at exit, and an error inside it never reaches the job."""
    import subprocess
    import sys

    script = ("from sae_specialists.analysis.renderer import warm_up_in_background\n"
              "warm_up_in_background()\n"
              "raise SystemExit(3)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 3
    assert proc.stderr == ""
    broken = ("import sys, vl_convert\n"
              "def fail(spec): raise RuntimeError('no runtime')\n"
              "vl_convert.vegalite_to_vega = fail\n"
              "from sae_specialists.analysis.renderer import warm_up_in_background\n"
              "warm_up_in_background().join()\n")
    proc = subprocess.run([sys.executable, "-c", broken], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == ""

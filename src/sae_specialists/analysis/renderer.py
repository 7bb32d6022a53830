"""Start vl-convert's JavaScript runtime in the background at the very start of a chart job.

vl-convert's first conversion in a process starts a V8 runtime and loads Vega and Vega-Lite into
it: ~0.6 s on a 2-core machine; every later conversion takes tens of milliseconds. The conversion
runs in Rust and releases the GIL, so a thread started before the job imports polars and Altair
does that start-up while the main thread imports, reads its tables and builds the charts: each
chart job of a threshold-only rerun gets ~0.5 s shorter (bench/RESULTS.md).

The thread converts a constant one-point spec and keeps nothing: the job's own conversions give
the same bytes with or without it (vl-convert serialises concurrent calls; tested). An error in
the thread is ignored, because the job's first real conversion meets (and reports) the same
problem. The thread is joined at exit, so a job never exits with it inside the runtime.
"""

from __future__ import annotations

import atexit
import threading

_WARM_UP_SPEC = {
    "data": {"values": [{"x": 0}]},
    "mark": "point",
    "encoding": {"x": {"field": "x", "type": "quantitative"}},
}
_EXIT_WAIT_S = 30.0

_thread: threading.Thread | None = None


def _warm_up() -> None:
    try:
        import vl_convert

        vl_convert.vegalite_to_vega(_WARM_UP_SPEC)
    except Exception:  # noqa: BLE001  (the job's own conversion reports the real problem)
        pass


def warm_up_in_background() -> threading.Thread:
    """Start the warm-up thread (once per process) and return it."""
    global _thread
    if _thread is None:
        _thread = threading.Thread(target=_warm_up, name="vl-convert-warm-up", daemon=True)
        _thread.start()
        atexit.register(_thread.join, _EXIT_WAIT_S)
    return _thread

"""Process census for the test suite's time budget (bench/RESULTS.md, "Where the suite's time
goes"): with this directory first on PYTHONPATH and SAE_CENSUS=<file>, every Python process
appends one JSON line at exit: its command line, wall and CPU seconds, and which model
libraries it imported. Nothing of the project imports this; only a census run puts it on the path:

    SAE_CENSUS=/tmp/census.jsonl PYTHONPATH=bench/process_census pytest
    python bench/process_census/summarise.py /tmp/census.jsonl
"""

import atexit
import json
import os
import sys
import time

_CENSUS = os.environ.get("SAE_CENSUS")
_START = time.time()


def _record() -> None:
    heavy = [m for m in ("torch", "transformer_lens", "sae_lens") if m in sys.modules]
    line = {
        "argv": sys.argv[:3],
        "pid": os.getpid(),
        "start": _START,
        "wall_s": round(time.time() - _START, 3),
        # the process's own CPU (user + system), not its children's: stable under load
        "cpu_s": round(sum(os.times()[:2]), 3),
        "imports": heavy,
        "cwd": os.getcwd(),
    }
    try:
        with open(_CENSUS, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
    except OSError:
        pass


if _CENSUS:
    atexit.register(_record)

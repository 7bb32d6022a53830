"""Job plumbing shared by every rule script: logging to the rule's log file, timing, and one
clear line (exit status 1) for a user error.

Every ``scripts/<stage>_<job>.py`` has the same shape::

    from sae_specialists.core.jobs import run
    from sae_specialists.<stage>.entry import <job>

    run(<job>, snakemake)
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import UserError

log = logging.getLogger("sae_specialists")


def peak_rss_mb() -> int:
    """Peak resident memory of this job's process so far (Linux: ru_maxrss is in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def _polars_threads() -> str:
    polars = sys.modules.get("polars")  # reported when the job uses polars; never imported here
    return f", polars threads {polars.thread_pool_size()}" if polars is not None else ""


@contextmanager
def logged(smk: Any, what: str) -> Iterator[logging.Logger]:
    """Log to stderr and the rule's log file; report the time and peak memory at the end. A
    ``UserError`` becomes one clear error line and exit status 1; any other error is logged with
    its traceback and raised."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if getattr(smk, "log", None) and len(smk.log):
        Path(smk.log[0]).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(str(smk.log[0]), mode="w", encoding="utf-8"))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        handlers=handlers,
        force=True,
    )
    start = time.perf_counter()
    log.info("%s: start", what)
    try:
        yield log
    except UserError as err:
        log.error("%s", err)
        sys.exit(1)
    except Exception:
        log.exception("%s: failed", what)
        raise
    log.info(
        "%s: done in %.2f s, peak RSS %d MB%s",
        what,
        time.perf_counter() - start,
        peak_rss_mb(),
        _polars_threads(),
    )


def job_name(smk: Any) -> str:
    """The rule and its wildcards, e.g. ``analysis_per_text family=res layer=6``."""
    wildcards = getattr(smk, "wildcards", None)
    items = wildcards.items() if hasattr(wildcards, "items") else []
    keys = " ".join(f"{k}={v}" for k, v in items)
    return f"{getattr(smk, 'rule', 'job')} {keys}".strip()


def run(entry: Callable[[Any], Any], smk: Any) -> None:
    """The body of every rule script: ``entry(snakemake)``, logged."""
    with logged(smk, job_name(smk)):
        entry(smk)


@contextmanager
def rule_logging(smk: Any) -> Iterator[logging.Logger]:
    """``logged`` under the job's name, for a script body not written as ``run(entry, smk)``."""
    with logged(smk, job_name(smk)) as logger:
        yield logger

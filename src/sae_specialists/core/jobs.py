"""Job plumbing shared by every rule script: logging to the rule's log file, timing, one clear
message (exit status 1) for a user error, and progress lines for long loops.

A user error (``UserError``: bad config, texts, model or SAE files, unreachable hub) goes to the
job's log file and, when the workflow runs the job, to the run's failure directory
(``$SAE_SPECIALISTS_FAILURES``): the Snakefile's ``onerror`` handler prints each distinct message
once, as the last lines of the run (``failure_report``), instead of every parallel job printing
it in the middle of Snakemake's output. Outside a workflow run it goes to stderr.

Every ``scripts/<stage>_<job>.py`` has the same shape::

    from sae_specialists.core.jobs import run
    from sae_specialists.<stage>.entry import <job>

    run(<job>, snakemake)
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import UserError
from .io import explain_failure

log = logging.getLogger("sae_specialists")


def peak_rss_mb() -> int:
    """Peak resident memory of this process so far, in MiB.

    Linux: ``VmHWM`` of /proc/self/status, the high-water mark of this process's own memory
    since it started its program. Not ``ru_maxrss``: the kernel carries the parent's high-water
    mark across fork and exec into it, so a job started by a big process (Snakemake, a benchmark
    that has just built its assets) would report the parent's peak as its own. Elsewhere:
    ``ru_maxrss`` (KiB on Linux, bytes on macOS).
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 2**20 if sys.platform == "darwin" else peak // 1024


def _polars_threads() -> str:
    polars = sys.modules.get("polars")  # reported when the job uses polars; never imported here
    return f", polars threads {polars.thread_pool_size()}" if polars is not None else ""


FAILURES_ENV = "SAE_SPECIALISTS_FAILURES"
_JOB = {"name": "job"}


@contextmanager
def logged(smk: Any, what: str) -> Iterator[logging.Logger]:
    """Log to stderr and the rule's log file; report the time and peak memory at the end. A
    ``UserError`` becomes one clear message (see the module doc) and exit status 1; so does any
    other error (``internal_failure``: its type and message, where the traceback is), its
    traceback written to the job's log only (to stderr when the job has no log)."""
    console = logging.StreamHandler(sys.stderr)
    handlers: list[logging.Handler] = [console]
    log_file = None
    if getattr(smk, "log", None) and len(smk.log):
        log_file = str(smk.log[0])
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w", encoding="utf-8"))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        handlers=handlers,
        force=True,
    )
    _JOB["name"] = what
    start = time.perf_counter()
    log.info("%s: start", what)
    try:
        try:
            yield log
        except Exception as err:
            # a full disk, or a read failure caused by a corrupt input: a user error too
            user = (
                None
                if isinstance(err, UserError)
                else explain_failure(err, _paths(smk, "input"), _paths(smk, "output"))
            )
            if user is None:
                raise
            raise user from None
    except UserError as err:
        if record_failure(str(err), what, log_file):
            logging.getLogger().removeHandler(console)  # the run prints it once, at the end
        log.error("%s", err)
        sys.exit(1)
    except Exception as err:
        message = internal_failure(err, what, log_file)
        if log_file is not None:
            logging.getLogger().removeHandler(console)  # the traceback goes to the log only
        log.exception("%s: failed", what)
        log.error("%s", message)
        if not record_failure(message, what, log_file) and log_file is not None:
            print(message, file=sys.stderr)
        sys.exit(1)
    log.info(
        "%s: done in %.2f s, peak RSS %d MB%s",
        what,
        time.perf_counter() - start,
        peak_rss_mb(),
        _polars_threads(),
    )


def internal_failure(err: BaseException, what: str, log_file: str | None) -> str:
    """The closing message of a job that failed with an error the project did not foresee
    (not a ``UserError``): what happened, where the traceback is, what to do. The traceback
    itself goes to the job's log only."""
    first = (str(err).strip().splitlines() or [""])[0]
    first = first if len(first) <= 300 else first[:297] + "..."
    where = f"the traceback is in {log_file}" if log_file else "the traceback is above"
    return (
        f"{what}: unexpected error {type(err).__name__}: {first or '(no message)'}. The checks "
        f"at start did not foresee this input or state; {where}. Fix the input it names if it "
        "is one; otherwise report it with that log (docs/troubleshooting.md: 'unexpected "
        "error')."
    )


def _paths(smk: Any, kind: str) -> list[str]:
    """The job's input or output files as plain strings ([] outside a Snakemake job)."""
    files = getattr(smk, kind, None)
    return [str(f) for f in files] if files is not None else []


def record_failure(message: str, job: str, log_file: str | None) -> bool:
    """Leave ``message`` for the run's failure report; False outside a workflow run."""
    directory = os.environ.get(FAILURES_ENV)
    if not directory:
        return False
    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
        path = Path(directory) / f"{os.getpid()}-{time.time_ns()}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"message": message, "job": job, "log": log_file}))
        os.replace(tmp, path)
    except OSError:
        return False
    return True


# -- the run's failure report (used by the Snakefile) -------------------------------------------


def start_failure_reports(base: str | os.PathLike = ".snakemake/sae_specialists/failures") -> str:
    """The directory where this run's jobs leave user errors (``base`` is relative to the
    workflow's working directory). Set once per run: a cluster job that parses the Snakefile
    again inherits the variable and writes to the same place."""
    if not os.environ.get(FAILURES_ENV):
        run_id = f"{os.getpid()}-{time.time_ns()}"
        os.environ[FAILURES_ENV] = str(Path(base).absolute() / run_id)
    return os.environ[FAILURES_ENV]


def failure_report(directory: str | os.PathLike) -> str | None:
    """Each distinct message the failed jobs left, once, after the jobs and log files it came
    from; None when no job left one (a crash: Snakemake's own report stands)."""
    records = []
    for path in sorted(Path(directory).glob("*.json")):
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    if not records:
        return None
    by_message: dict[str, list[dict]] = {}
    for r in records:
        by_message.setdefault(r["message"], []).append(r)
    blocks = []
    for message, rs in by_message.items():
        jobs = sorted({r["job"] for r in rs})
        logs = sorted({r["log"] for r in rs if r.get("log")})
        where = f"{len(jobs)} job{'s' if len(jobs) != 1 else ''} failed ({'; '.join(jobs)})"
        if logs:
            where += f"; log{'s' if len(logs) != 1 else ''}: {', '.join(logs)}"
        blocks.append(f"{where}:\n{message}")
    return "\n".join(["", "sae-specialists: the run stopped.", *blocks])


def print_failure_report_at_exit(directory: str | os.PathLike) -> None:
    """From the Snakefile's ``onerror``: print the failure report after everything Snakemake
    prints (at interpreter exit), then remove the directory."""

    def report() -> None:
        text = failure_report(directory)
        shutil.rmtree(directory, ignore_errors=True)
        if text:
            sys.stderr.flush()
            print(text, file=sys.stderr, flush=True)

    atexit.register(report)


def discard_failure_reports(directory: str | os.PathLike) -> None:
    """From the Snakefile's ``onsuccess``: nothing to report."""
    shutil.rmtree(directory, ignore_errors=True)


# -- progress ------------------------------------------------------------------------------------

PROGRESS_ENV = "SAE_SPECIALISTS_PROGRESS_S"
PROGRESS_EVERY_S = 10.0


class _LogLines:
    """A file for tqdm: each refresh becomes one log line (console and log file), so parallel
    jobs' progress reads as whole lines instead of overwriting each other's bars."""

    def write(self, text: str) -> None:
        line = text.replace("\r", "").strip()
        if line:
            log.info("%s %s", _JOB["name"], line)

    def flush(self) -> None:
        pass


def progress(
    iterable: Iterable | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    every_s: float | None = None,
):
    """A tqdm progress bar for a long loop of a job: every ``every_s`` seconds (default 10, or
    ``$SAE_SPECIALISTS_PROGRESS_S``) and at the end, one line with done/total, percent, rate,
    elapsed time and ETA goes to the console (Snakemake shows a job's stderr) and the job's log;
    a loop done within one interval prints nothing.
    Use it as tqdm: ``for x in progress(xs, total=n, desc="resamples", unit="resample")``."""
    from tqdm import tqdm

    interval = every_s if every_s is not None else float(os.environ.get(PROGRESS_ENV, 0) or 0)
    interval = interval or PROGRESS_EVERY_S
    fmt = (
        "{desc}: {n_fmt}/{total_fmt} {unit} ({percentage:.0f}%), {rate_fmt}, "
        "elapsed {elapsed}, ETA {remaining}"
        if total is not None or (iterable is not None and hasattr(iterable, "__len__"))
        else "{desc}: {n_fmt} {unit}, {rate_fmt}, elapsed {elapsed}"
    )
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        file=_LogLines(),
        mininterval=interval,
        maxinterval=interval,
        miniters=1,
        bar_format=fmt,
        delay=interval,  # a loop shorter than one interval prints nothing
        disable=False,
    )


def job_name(smk: Any) -> str:
    """The rule and its wildcards, e.g. ``analysis_per_text family=res layer=6``."""
    wildcards = getattr(smk, "wildcards", None)
    items = wildcards.items() if hasattr(wildcards, "items") else []
    keys = " ".join(f"{k}={v}" for k, v in items)
    return f"{getattr(smk, 'rule', 'job')} {keys}".strip()


def passive_openmp() -> None:
    """Let torch's OpenMP threads sleep while they wait for work instead of spinning
    (``OMP_WAIT_POLICY=PASSIVE``; a value already in the environment is kept). A workflow runs
    several processes at once: spinning threads burn the cores the other jobs need, and on a
    machine with more runnable processes than cores the spinning job itself crawls (a tiny
    model's forward passes, 2 threads beside a busy process: 22 s of CPU instead of 0.5,
    bench/RESULTS.md). OpenMP reads the variable when torch loads it, so this runs before any
    job imports torch (every entry imports it inside the function)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def run(entry: Callable[[Any], Any], smk: Any) -> None:
    """The body of every rule script: ``entry(snakemake)``, logged."""
    passive_openmp()
    with logged(smk, job_name(smk)):
        entry(smk)


@contextmanager
def rule_logging(smk: Any) -> Iterator[logging.Logger]:
    """``logged`` under the job's name, for a script body not written as ``run(entry, smk)``."""
    passive_openmp()
    with logged(smk, job_name(smk)) as logger:
        yield logger

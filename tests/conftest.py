"""Shared fixtures: the demo model/SAEs (built once per session, offline) and small workflows."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# torch's OpenMP threads sleep while waiting (as in every job: core.jobs.passive_openmp): the two
# workers and their workflow runs share two cores, and spinning threads would burn them
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(scope="session")
def demo_assets(tmp_path_factory) -> Path:
    """The demo's tiny model and planted SAEs (layers 0-3), in the local formats."""
    from sae_specialists.demo import build_demo

    out = tmp_path_factory.mktemp("demo_assets")
    build_demo(out, seed=0)
    return out


@pytest.fixture(scope="session")
def planted(demo_assets) -> dict:
    return json.loads((demo_assets / "planted.json").read_text())


def write_texts(directory: Path, texts: dict[str, list[str]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for category, items in texts.items():
        (directory / f"{category}.yaml").write_text(
            yaml.safe_dump(items, allow_unicode=True), encoding="utf-8"
        )
    return directory


def resource_texts(categories=("python", "social", "formal"), n=3) -> dict[str, list[str]]:
    out = {}
    for category in categories:
        items = yaml.safe_load((REPO / "resources/texts" / f"{category}.yaml").read_text("utf-8"))
        out[category] = items[:n]
    return out


def demo_config(assets: Path, texts: Path, results: Path, **overrides) -> dict:
    config = {
        "model": {"path": str(assets / "model")},
        "device": "cpu",
        "saes": {"res": {"path": str(assets / "saes/res/layer{layer}")}},
        "layers": [1, 3],
        "texts": str(texts),
        "results_dir": str(results),
        "extraction": {"batch_size": 4},
        "analysis": {
            "aggregation": "mean",
            "threshold": 5.0,
            "candidates": 5,
            "include_bos": False,
        },
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


def run_snakemake(
    workdir: Path,
    *args: str,
    config: dict | None = None,
    check: bool = True,
    timeout: float = 900,
) -> subprocess.CompletedProcess:
    """Run the project's real Snakefile in `workdir` (with `config` written to config.yaml)."""
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir)]
    if config is not None:
        (workdir / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
        cmd += ["--configfile", str(workdir / "config.yaml")]
    proc = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def scheduled_jobs(dry_run: subprocess.CompletedProcess) -> dict[str, int]:
    """Job counts per rule from a `snakemake -n` run's 'Job stats' table."""
    counts: dict[str, int] = {}
    text = dry_run.stdout + dry_run.stderr
    if "Nothing to be done" in text:
        return counts
    in_table = False
    for line in text.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            in_table = True
            continue
        if in_table:
            if len(parts) == 2 and parts[1].isdigit() and parts[0] != "total":
                counts[parts[0]] = int(parts[1])
            elif parts and parts[0] == "total":
                break
    return counts


@pytest.fixture
def copy_tree():
    def _copy(src: Path, dst: Path) -> Path:
        shutil.copytree(src, dst)
        return dst

    return _copy


def _repo_paths(value):
    """Config values naming files of this repository (resources/..., config/...) made absolute,
    so that a run in a temporary directory finds them; other paths stay relative to the run."""
    if isinstance(value, dict):
        return {k: _repo_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_repo_paths(v) for v in value]
    if isinstance(value, str) and value.startswith(("resources/", "config/")):
        return str(REPO / value)
    return value


class DemoRun:
    """THE shared demo run of the session: config/demo.yaml (every stage of `rule all`) in a
    temporary directory ``work``. Tests only read it; a test that changes a setting or a file
    works on a copy (``copy(tmp_path)``) so it never disturbs the others."""

    def __init__(self, work: Path, config: dict):
        self.work = work
        self.config = config  # as run: results_dir and the demo assets relative to ``work``

    @property
    def results(self) -> Path:
        return self.work / self.config["results_dir"]

    @property
    def assets(self) -> Path:
        return self.work / self.config["demo"]["dir"]

    @property
    def planted(self) -> dict:
        return json.loads((self.assets / "planted.json").read_text())

    def absolute_config(self) -> dict:
        """The config with results_dir absolute (for code that reads outputs from elsewhere)."""
        return {**self.config, "results_dir": str(self.results)}

    def copy(self, destination: Path) -> DemoRun:
        shutil.copytree(self.work, destination, symlinks=True)
        return DemoRun(destination, self.config)

    def snakemake(self, *args: str, config: dict | None = None, check: bool = True, **kw):
        return run_snakemake(self.work, *args, config=config or self.config, check=check, **kw)


def _build_demo_run(work: Path) -> DemoRun:
    config = _repo_paths(yaml.safe_load((REPO / "config" / "demo.yaml").read_text("utf-8")))
    run = DemoRun(work, config)
    # every stage of the demo: allow for a busy machine (the whole run is one subprocess). One
    # thread per job (the rules ask for 2): the tiny model's jobs are bound by their imports,
    # so two of them side by side finish sooner than one with two threads
    run.snakemake("--cores", "2", "--max-threads", "1", timeout=3600)
    return run


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory, worker_id) -> DemoRun:
    """Built once per test session: `snakemake --cores 2` with config/demo.yaml.

    Under pytest-xdist the first worker that needs it builds it in the directory shared by
    the workers (a file lock; the others wait for it, then read the same run), so the modules
    that read it are spread over both workers instead of queuing behind one. A failed build is
    recorded and fails every reader at once. DEMO_RUN=DIR (development only) keeps it in DIR
    and brings it up to date instead."""
    keep = os.environ.get("DEMO_RUN")
    if keep:
        return _build_demo_run(Path(keep))
    if worker_id == "master":
        return _build_demo_run(tmp_path_factory.mktemp("demo_run"))
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp().parent
    work, failed = shared / "demo_run", shared / "demo_run.failed"
    with FileLock(str(shared / "demo_run.lock")):
        if failed.exists():
            pytest.fail(f"the shared demo run failed on another worker:\n{failed.read_text()}")
        if not (work / "results").is_dir():
            try:
                return _build_demo_run(work)
            except BaseException as err:
                failed.write_text(str(err)[-20000:], encoding="utf-8")
                raise
    config = _repo_paths(yaml.safe_load((REPO / "config" / "demo.yaml").read_text("utf-8")))
    return DemoRun(work, config)


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium (tests/browser.py finds it: PATH names or playwright's), shared by every
    browser test; a missing browser fails the test with how to install one."""
    from browser import HOW_TO_INSTALL, find_browser, launch
    from playwright.sync_api import sync_playwright

    executable = find_browser()
    if executable is None:
        pytest.fail(HOW_TO_INSTALL)
    with sync_playwright() as p:
        b = launch(p, executable)
        yield b
        b.close()


# The groups (one per module) that take longest, started first: workers take groups in this
# order, so no long group starts when the other worker is nearly done. The first group reads
# the shared demo run, so one worker builds it at once while the other takes the SLURM-vs-local
# comparison and the modules that build their own workflow runs; the modules that only read
# the demo run come after those, when it is built, and spread over both workers.
LONGEST_FIRST = (
    "tests/test_analysis_demo.py",
    "tests/cluster/test_slurm.py",
    "tests/test_determinism.py",
    "tests/test_chunking.py",
    "tests/test_integrity.py",
    "tests/test_comparison_workflow.py",
    "tests/test_bad_input.py",
    "tests/test_dashboards.py",
    "tests/test_workflow.py",
    "tests/test_methodology_workflow.py",
    "tests/test_causal_workflow.py",
    "tests/test_validation_workflow.py",
    "tests/test_index_links.py",
    "tests/test_validation_demo.py",
    "tests/test_comparison_demo.py",
    "tests/test_causal_demo.py",
)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the marks
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (`--dist loadgroup --no-loadscope-reorder`, pyproject.toml): every
    module stays whole on one worker, so its module fixtures (small workflows) are built once;
    the shared demo run is built once for both workers (``demo_run``). Groups are ordered
    longest first (``LONGEST_FIRST``), each group's tests in file order."""
    groups = {}
    for item in items:
        group = item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))
        groups[item.nodeid] = group
    rank = {group: i for i, group in enumerate(LONGEST_FIRST)}
    position = {item.nodeid: i for i, item in enumerate(items)}
    items.sort(key=lambda item: (rank.get(groups[item.nodeid], len(rank)), position[item.nodeid]))


def md_escaped(text: str) -> str:
    """``text`` as summary.md writes it (Markdown's special characters backslash-escaped)."""
    return "".join("\\" + ch if ch in "\\`*_[]|<>" else ch for ch in text)

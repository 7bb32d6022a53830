"""A watcher on ``import torch`` for workflow tests: every Python process started with
:func:`watch_env`'s environment (Snakemake and each of its script jobs) appends its command
line to a log file when torch's module is really executed. A bare
``importlib.util.find_spec("torch")`` (a library probing whether torch is installed) is not
logged. Used to check that model-free targets (``snakemake analysis``) never import torch."""

from __future__ import annotations

from pathlib import Path

SITECUSTOMIZE = """
import os, sys


class _TorchWatcher:
    def find_spec(self, name, path=None, target=None):
        if name != "torch":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                run = spec.loader.exec_module

                def exec_module(module, run=run):
                    with open(os.environ["TORCH_IMPORT_LOG"], "a") as fh:
                        fh.write(" ".join(sys.argv) + "\\n")
                    return run(module)

                spec.loader.exec_module = exec_module
                return spec
        return None


sys.meta_path.insert(0, _TorchWatcher())
"""


def watch_env(directory: Path) -> tuple[dict[str, str], Path]:
    """(environment variables to set, the log) for watched processes."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    log = directory / "torch_imports.log"
    return {"PYTHONPATH": str(directory), "TORCH_IMPORT_LOG": str(log)}, log


def job_imports(log: Path) -> list[str]:
    """The command lines of Snakemake script jobs that imported torch."""
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    return [line for line in lines if ".snakemake/scripts/" in line]

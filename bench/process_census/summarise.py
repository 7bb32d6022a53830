"""Summarise a process census (sitecustomize.py in this directory): processes per kind, how
many imported torch / TransformerLens / SAELens, and their summed wall time.

    python bench/process_census/summarise.py /tmp/census.jsonl
    python bench/process_census/summarise.py /tmp/census.jsonl --by-dir /tmp/suite-basetemp

``--by-dir BASETEMP`` groups the processes by the directory under the pytest base temporary
directory that they ran in (a test's or a module fixture's workflow run) instead of by kind.
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict


def kind(argv: list[str]) -> str:
    """A job's rule (Snakemake's `script:` copies are named tmpXXXX.<script>.py), else the
    program."""
    first = argv[0] if argv else ""
    match = re.search(r"\.snakemake/scripts/tmp[^.]+\.(\w+)\.py$", first)
    if match:
        return f"job {match.group(1)}"
    if first.endswith("snakemake") or "snakemake" in argv[1:2]:
        return "snakemake (main process)"
    return first.rsplit("/", 1)[-1] or "python -c"


def run_dir(cwd: str, basetemp: str) -> str:
    """The first directory below the worker's base temporary directory (popen-gwN/<name>)."""
    if not cwd.startswith(basetemp):
        return "(outside the base temporary directory)"
    parts = [p for p in cwd[len(basetemp) :].split("/") if p]
    if parts and parts[0].startswith("popen-"):
        parts = parts[1:]
    return re.sub(r"\d+$", "", parts[0]) if parts else "(base)"


def main(path: str, basetemp: str | None = None) -> None:
    rows = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    by_kind: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        key = run_dir(row["cwd"], basetemp) if basetemp else kind(row["argv"])
        by_kind[key].append(row)
    model = [r for r in rows if r["imports"]]
    print(f"{len(rows)} Python processes, {len(model)} imported torch/transformer_lens/sae_lens")
    cpu_all = sum(r.get("cpu_s", 0.0) for r in rows)
    cpu_model = sum(r.get("cpu_s", 0.0) for r in model)
    print(f"CPU: {cpu_all:.0f} s in all, {cpu_model:.0f} s in the model-importing processes")
    print(f"{'kind':40} {'n':>5} {'model libs':>10} {'wall s':>9} {'CPU s':>8}")
    for name, group in sorted(by_kind.items(), key=lambda kv: -sum(r["wall_s"] for r in kv[1])):
        n_model = sum(1 for r in group if r["imports"])
        wall = sum(r["wall_s"] for r in group)
        cpu = sum(r.get("cpu_s", 0.0) for r in group)
        print(f"{name:40} {len(group):5d} {n_model:10d} {wall:9.1f} {cpu:8.1f}")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0], args[2] if len(args) > 2 and args[1] == "--by-dir" else None)

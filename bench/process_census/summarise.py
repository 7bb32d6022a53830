"""Summarise a process census (sitecustomize.py in this directory): processes per kind, how
many imported torch / TransformerLens / SAELens, and their summed wall time.

    python bench/process_census/summarise.py /tmp/census.jsonl
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


def main(path: str) -> None:
    rows = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    by_kind: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_kind[kind(row["argv"])].append(row)
    model = [r for r in rows if r["imports"]]
    print(f"{len(rows)} Python processes, {len(model)} imported torch/transformer_lens/sae_lens")
    print(f"{'kind':40} {'n':>5} {'model libs':>10} {'wall s':>9}")
    for name, group in sorted(by_kind.items(), key=lambda kv: -sum(r["wall_s"] for r in kv[1])):
        n_model = sum(1 for r in group if r["imports"])
        wall = sum(r["wall_s"] for r in group)
        print(f"{name:40} {len(group):5d} {n_model:10d} {wall:9.1f}")


if __name__ == "__main__":
    main(sys.argv[1])

"""A threshold change on the offline demo: jobs and seconds of `snakemake analysis` and of the
default target (issue 26 item 2; run by hand).

From an up-to-date demo run (a directory holding config.yaml and results/demo, e.g. the test
suite's DEMO_RUN directory), each target runs on its own fresh copy, after changing
``analysis.threshold``: the job count per rule, the wall time, whether any job loaded the model
(a rule declaring the ``gpu`` resource), and for the default target when the last model-free job
ended and the first model job started (from Snakemake's log).

Usage:
    python bench/demo_threshold_bench.py DEMO_DIR [--threshold 4.0] [--cores 2]
Appends a JSON record to bench/results.jsonl.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
# the rules that load the model (they declare the gpu resource: docs/architecture.md)
MODEL_RULE = re.compile(
    r"^(extract\w*|logit_effects\w*|dashboard_corpus|methodology_variants|causal_layer|"
    r"circuits_layer|surface_probe_extract|validation_test_extract|build_demo_assets)$"
)


def jobs_of(log: str) -> list[tuple[datetime, str, str]]:
    """(time, 'start' | 'end', rule) of every job in Snakemake's log."""
    events, stamp, by_id = [], None, {}
    lines = log.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^\[(\w{3} \w{3}\s+\d+ \d\d:\d\d:\d\d \d{4})\]", line)
        if m:
            stamp = datetime.strptime(re.sub(r"\s+", " ", m.group(1)), "%a %b %d %H:%M:%S %Y")
            continue
        m = re.match(r"^(?:local)?(?:rule|checkpoint) (\w+):", line)
        if m and stamp:
            rule = m.group(1)
            for follow in lines[i + 1 : i + 12]:
                j = re.match(r"^\s+jobid: (\d+)", follow)
                if j:
                    by_id[j.group(1)] = rule
                    break
            events.append((stamp, "start", rule))
            continue
        m = re.match(r"^Finished jobid: (\d+)", line) or re.match(r"^Finished job (\d+)\.", line)
        if m and stamp and m.group(1) in by_id:
            events.append((stamp, "end", by_id[m.group(1)]))
    return events


def run_target(demo: Path, threshold: float, target: list[str], cores: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="demo-threshold-") as tmp:
        work = Path(tmp) / "demo"
        shutil.copytree(demo, work, symlinks=True)
        config = yaml.safe_load((work / "config.yaml").read_text(encoding="utf-8"))
        config["analysis"]["threshold"] = threshold
        cfg = work / "threshold.yaml"
        cfg.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        cmd = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(work)]
        cmd += ["--configfile", str(cfg), "--cores", str(cores), *target]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode:
            raise SystemExit(proc.stdout[-3000:] + proc.stderr[-3000:])
        events = jobs_of(proc.stdout + proc.stderr)
    starts = [(t, r) for t, kind, r in events if kind == "start" and r not in ("all", "analysis")]
    counts: dict[str, int] = {}
    for _, rule in starts:
        counts[rule] = counts.get(rule, 0) + 1
    model = [(t, r) for t, r in starts if MODEL_RULE.match(r)]
    free_ends = [t for t, kind, r in events if kind == "end" and not MODEL_RULE.match(r)]
    out = {
        "target": " ".join(target) or "(default)",
        "wall_s": round(wall, 1),
        "jobs": len(starts),
        "per_rule": dict(sorted(counts.items())),
        "model_jobs": len(model),
    }
    if model:
        first_model = min(t for t, _ in model)
        # model-free jobs that need no model output: every end before the first model start
        out["first_model_job_after_start_s"] = (first_model - starts[0][0]).total_seconds()
        out["model_free_ends_after_first_model_job"] = sorted(
            {r for t, kind, r in events if kind == "end" and t > first_model}
            - {r for _, r in model}
        )
        out["last_model_free_end_s"] = (max(free_ends) - starts[0][0]).total_seconds()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("demo", type=Path)
    parser.add_argument("--threshold", type=float, default=4.0)
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    records = []
    for target in (["analysis"], []):
        record = run_target(args.demo, args.threshold, target, args.cores)
        print(json.dumps(record, indent=1))
        records.append(record)
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    with open(REPO / "bench" / "results.jsonl", "a", encoding="utf-8") as fh:
        fh.write(
            json.dumps(
                {
                    "bench": "demo_threshold",
                    "when": datetime.now().isoformat(timespec="seconds"),
                    "threshold": args.threshold,
                    "cores": args.cores,
                    "loadavg_after": load,
                    "runs": records,
                }
            )
            + "\n"
        )


if __name__ == "__main__":
    main()

"""Cost of the start checks (issue 28: every input checked once, at start): run by hand.

Two configurations over local weights (no hub):

- ``demo``: config/demo.yaml with the demo's model and SAEs built beforehand (``--demo-assets``,
  ``sae_specialists.demo.build_demo``) and given as user inputs (nothing for the demo rule to
  build): 5 SAE families, 4 layers, 9 categories;
- ``study``: config/config.yaml as bench/rerun_bench.py runs it, with the GPT-2-small-shaped
  model and four 24,576-wide SAEs of bench/run_bench.py (``--study-assets``): 604 MB of SAE
  weights to scan for NaN/Inf.

For each: ``startup_checks`` in-process (``cold``: no record of checked files, every SAE and
text file read; ``warm``: with the record, as every later ``snakemake`` call), then the wall time
of ``snakemake -n`` (parse, start checks, DAG; nothing runs) ``--repeat`` times. ``--old DIR``:
another checkout (the code before the checks, e.g. ``git archive``), whose ``startup_checks``
and ``snakemake -n`` are timed alternately with this one's, on the same machine at the same time.

Usage:
    python bench/start_checks_bench.py --old /tmp/old --repeat 5
Appends a JSON record to bench/results.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from run_bench import append_record, machine_info  # noqa: E402


def demo_config(assets: Path, results: Path) -> dict:
    cfg = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    cfg["model"] = {"path": str(assets / "model")}
    for name, family in cfg["saes"].items():
        family["path"] = str(assets / "saes" / name / "layer{layer}")
    cfg["texts"] = str(REPO / "resources" / "demo_texts")
    cfg["results_dir"] = str(results)
    cfg.pop("demo", None)
    if "surface" in cfg:  # its probe texts are a resources/ directory outside a checkout's src
        cfg["surface"]["probe_texts"] = None
    return cfg


def study_config(assets: Path, results: Path) -> dict:
    from rerun_bench import study_config as rerun_study_config

    cfg = rerun_study_config(assets, results, 5.0)
    if "surface" in cfg:  # as in demo_config
        cfg["surface"]["probe_texts"] = None
    return cfg


def in_process(cfg: dict, record: Path | None) -> float:
    from sae_specialists.startup import startup_checks

    schema = REPO / "workflow" / "schemas" / "config.schema.yaml"
    start = time.perf_counter()
    startup_checks(json.loads(json.dumps(cfg)), schema, checked_files=record)
    return time.perf_counter() - start


OLD_TIMER = """
import json, sys, time
from sae_specialists.startup import startup_checks
cfg = json.load(open(sys.argv[1]))
times = []
for _ in range(3):
    start = time.perf_counter()
    startup_checks(json.loads(json.dumps(cfg)), sys.argv[2])
    times.append(time.perf_counter() - start)
print(json.dumps(times))
"""


def in_process_old(cfg: dict, old: Path, work: Path) -> list[float]:
    """``startup_checks`` of the checkout ``old`` (3 calls in one process)."""
    path = work / "old-config.json"
    path.write_text(json.dumps(cfg))
    schema = old / "workflow" / "schemas" / "config.schema.yaml"
    env = {**os.environ, "PYTHONPATH": str(old / "src")}
    cmd = [sys.executable, "-c", OLD_TIMER, str(path), str(schema)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def dry_run(cfg_path: Path, workdir: Path, repo: Path = REPO) -> float:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env["PYTHONPATH"] = str(repo / "src")
    cmd = [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", str(cfg_path)]
    cmd += ["--snakefile", str(repo / "Snakefile"), "--directory", str(workdir)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(proc.stdout[-2000:] + proc.stderr[-2000:])
    return wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--demo-assets", default="/tmp/h28/assets")
    p.add_argument("--study-assets", default="/tmp/sae-bench/gpt2-24576-l064")
    p.add_argument("--workdir", default="/tmp/start-checks-bench")
    p.add_argument("--old", default=None, help="another checkout to compare with")
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    record: dict = {"bench": "start_checks", "machine": machine_info(), "configs": {}}
    builders = {"demo": (demo_config, args.demo_assets), "study": (study_config, args.study_assets)}
    for name, (build, assets) in builders.items():
        if not Path(assets).exists():
            print(f"{name}: no assets at {assets}, skipped")
            continue
        cfg = build(Path(assets), work / name / "results")
        cfg_path = work / f"{name}.yaml"
        cfg_path.write_text(yaml.safe_dump(cfg))
        checked = work / name / ".snakemake/sae_specialists/checked_inputs.json"
        checked.unlink(missing_ok=True)
        cold = in_process(cfg, checked)
        warm = [in_process(cfg, checked) for _ in range(3)]
        new, old = [], []
        for _ in range(args.repeat):
            new.append(dry_run(cfg_path, work / name))
            if args.old:
                old.append(dry_run(cfg_path, work / name, Path(args.old)))
        row = {
            "start_checks_cold_s": round(cold, 3),
            "start_checks_warm_s": round(statistics.median(warm), 4),
            "dry_run_s": [round(x, 2) for x in new],
            "dry_run_median_s": round(statistics.median(new), 2),
        }
        if old:
            before = in_process_old(cfg, Path(args.old), work)
            row["start_checks_before_s"] = round(statistics.median(before), 4)
            row["dry_run_before_s"] = [round(x, 2) for x in old]
            row["dry_run_before_median_s"] = round(statistics.median(old), 2)
        record["configs"][name] = row
        print(name, json.dumps(row))
    append_record(record, str(HERE / "results.jsonl"))


if __name__ == "__main__":
    main()

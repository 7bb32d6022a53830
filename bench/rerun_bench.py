"""Wall time of the default study end to end and of threshold-only reruns (run by hand).

The default study (config/config.yaml: layers 6/8/10/11, the 70 texts of resources/texts,
methodology and dashboards on) with *local* weights: the GPT-2-small-shaped model and the four
24,576-wide SAEs that bench/run_bench.py builds with random weights (no download), so every
shape and every job is the real one. Steps:

- ``--e2e``: ``snakemake --cores N`` from an empty results directory, timed;
- ``--noop N``: time ``snakemake`` N times with nothing to do (the default target, up to date):
  what every call costs before any job (parsing, the startup checks, the local inputs' content
  digests from their cache, the DAG);
- then ``--reruns`` times: change ``analysis.threshold`` (to a value no earlier run used),
  check with a dry run that only threshold-dependent rules are scheduled (never extraction,
  logit effects, the model-variant rules or anything else that loads the model), then time
  ``snakemake analysis`` and, separately, the whole default target (``snakemake``).

Bytecode: a job process imports ~40 of the package's modules. Python caches their bytecode on
first import unless ``PYTHONDONTWRITEBYTECODE`` is set (many container images and this
project's development sandbox set it), and then every job compiles them again (~0.25 s per job).
The benchmark therefore compiles ``src/`` once first (``--no-compile``: measure as is) and
records whether the variable was set and whether the SLURM executor plugin (which makes
Snakemake import pandas at start) is installed.

Usage:
    python bench/rerun_bench.py --e2e --reruns 5
    python bench/rerun_bench.py --reruns 10          # reuse an existing results directory
    python bench/rerun_bench.py --e2e --prepare analysis --targets analysis   # analysis only
    python bench/rerun_bench.py --noop 10 --reruns 0   # no-op runs of an up-to-date study
Appends a JSON record to bench/results.jsonl.
"""

from __future__ import annotations

import argparse
import compileall
import importlib.util
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from run_bench import GPT2, append_record, build_assets, machine_info  # noqa: E402

MODEL_RULES = {
    "extract_activations",
    "logit_effects",
    "methodology_variants",
    "build_demo_assets",
    "dashboard_corpus",
}


def study_config(
    assets: Path, results: Path, threshold: float, disabled: tuple[str, ...] = ()
) -> dict:
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for stage in disabled:  # e.g. causal: its layer jobs rerun when the specialist set changes
        cfg.setdefault(stage, {})["enabled"] = False
    cfg["model"] = {"path": str(assets / "model")}
    cfg["saes"] = {"res": {"path": str(assets / "saes" / "layer{layer}")}}
    cfg["device"] = "cpu"
    cfg["texts"] = str(REPO / "resources" / "texts")
    cfg["results_dir"] = str(results)
    cfg["analysis"]["threshold"] = float(threshold)
    return cfg


def snakemake(args: list[str], cfg_path: Path, cores: int) -> tuple[float, str]:
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        *args,
        "--cores",
        str(cores),
        "--configfile",
        str(cfg_path),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return wall, proc.stdout + proc.stderr


JOB_DONE = re.compile(r"INFO (.+?): done in ([0-9.]+) s")


def job_seconds(output: str) -> dict[str, float]:
    """The in-process time each analysis job logs ("<what>: done in X s")."""
    return {m[0]: float(m[1]) for m in JOB_DONE.findall(output)}


def scheduled(output: str) -> dict[str, int]:
    if "Nothing to be done" in output:
        return {}
    table = output.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    return {
        m[0]: int(m[1])
        for m in re.findall(r"^(\w+)\s+(\d+)\s*$", table, flags=re.M)
        if m[0] not in ("job", "total")
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--e2e", action="store_true", help="first run the whole study from scratch")
    p.add_argument("--reruns", type=int, default=5)
    p.add_argument(
        "--targets",
        nargs="+",
        default=["analysis", "all"],
        choices=["analysis", "all"],
        help="targets timed after each threshold change (default: both)",
    )
    p.add_argument(
        "--prepare",
        choices=["analysis", "all"],
        default="all",
        help="target brought up to date before the reruns (default: all)",
    )
    p.add_argument("--noop", type=int, default=0, help="no-op runs to time (nothing to do)")
    p.add_argument(
        "--disable",
        nargs="*",
        default=[],
        choices=["methodology", "validation", "causal", "comparison"],
        help="stages switched off (<stage>.enabled: false) in the study's config",
    )
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--workdir", default="/tmp/sae-default-study")
    p.add_argument("--assets", default="/tmp/sae-bench/gpt2-24576-l064")
    p.add_argument("--log", default=str(HERE / "results.jsonl"))
    p.add_argument(
        "--no-compile",
        action="store_true",
        help="do not compile src/ to bytecode first (see the module docstring)",
    )
    args = p.parse_args()
    if not args.no_compile:
        compileall.compile_dir(str(REPO / "src"), quiet=1)

    work, assets = Path(args.workdir), Path(args.assets)
    work.mkdir(parents=True, exist_ok=True)
    build_assets(assets, GPT2, 24576, 64)
    results = work / "results"

    def config_for(t: float) -> Path:
        path = work / f"config-threshold{t:g}.yaml"
        path.write_text(yaml.safe_dump(study_config(assets, results, t, tuple(args.disable))))
        return path

    base = config_for(5.0)
    prepare = [] if args.prepare == "all" else [args.prepare]
    record = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "tag": "default-study-local-weights",
        "machine": machine_info(),
        "cores": args.cores,
        "disabled_stages": list(args.disable),
        "assets": str(assets),
        "bytecode_compiled": not args.no_compile,
        "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE", ""),
        "slurm_plugin": importlib.util.find_spec("snakemake_executor_plugin_slurm") is not None,
    }

    if args.e2e:
        if results.exists():
            subprocess.run(["rm", "-rf", str(results)], check=True)
        wall, out = snakemake(prepare, base, args.cores)
        record["e2e"] = {"wall_s": wall, "jobs": scheduled(out), "target": args.prepare}
        print(f"end to end: {wall:.0f} s, {sum(record['e2e']['jobs'].values())} jobs", flush=True)
    else:
        snakemake(prepare, base, args.cores)  # bring the results up to date first

    if args.noop:
        walls = []
        for _ in range(args.noop):
            wall, out = snakemake([], base, args.cores)
            if "Nothing to be done" not in out:
                raise RuntimeError(f"a no-op run had jobs to do: {scheduled(out)}")
            walls.append(wall)
            print(f"no-op: {wall:.2f} s", flush=True)
        record["noop"] = {
            "median_s": statistics.median(walls),
            "min_s": min(walls),
            "max_s": max(walls),
            "n": len(walls),
            "walls": walls,
        }
        print(f"no-op: median {statistics.median(walls):.2f} s (min {min(walls):.2f})")

    runs = []
    step = 0
    for i in range(args.reruns):
        for target in args.targets:
            # a threshold no earlier run used: every threshold-dependent rule of the target
            # (for `all`: methodology and dashboards too) really reruns
            step += 1
            current = 5.0 + 0.125 * step
            cfg = config_for(current)
            _, dry = snakemake(["-n", target], cfg, args.cores)
            jobs = scheduled(dry)
            if set(jobs) & MODEL_RULES:
                raise RuntimeError(f"a threshold change scheduled model rules: {jobs}")
            wall, out = snakemake([target], cfg, args.cores)
            runs.append(
                {
                    "target": target,
                    "threshold": current,
                    "wall_s": wall,
                    "jobs": jobs,
                    "job_s": job_seconds(out),
                }
            )
            print(
                f"rerun {i + 1} {target} (threshold {current:g}): {wall:.2f} s, "
                f"{sum(jobs.values())} jobs",
                flush=True,
            )
    record["reruns"] = runs
    for target in ("analysis", "all"):
        walls = [r["wall_s"] for r in runs if r["target"] == target]
        if walls:
            record[f"rerun_{target}"] = {
                "median_s": statistics.median(walls),
                "min_s": min(walls),
                "max_s": max(walls),
                "n": len(walls),
            }
            print(
                f"threshold-only rerun, snakemake {'' if target == 'all' else target}: "
                f"median {statistics.median(walls):.2f} s (min {min(walls):.2f}, "
                f"max {max(walls):.2f}, n={len(walls)})"
            )
    append_record(record, args.log)


if __name__ == "__main__":
    main()

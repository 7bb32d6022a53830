"""Validation stage benchmarks (run by hand; numbers go to bench/RESULTS.md).

``--null``: the shuffled-label null at the study's size: 70 texts in 7 categories x 24,576 SAE
features x 4 layers x 1,000 permutations (target: <= 60 s on 2 cores, <= 2 GB). Synthetic
per-text matrices with the sparsity of mean-aggregated residual SAE features (each text active
on ``--active`` features, exponential values; a few planted specialists), timed in a fresh
process from the dense matrices (what ``validation_null`` holds), with its peak RSS. The same
process then times the held-out selection + random floor and, separately, the probe baselines
(768-dim pooled residuals) on those layers.

``--e2e``: the default study end to end (config/config.yaml with the local GPT-2-shaped random
weights of bench/run_bench.py, as bench/rerun_bench.py) from an empty results directory without
the stage, then the stage alone on its results; wall and CPU time (every process) of both, and
the validation jobs' own times from their logs (target: the stage adds <= 25 %).

Usage:
    python bench/validation_bench.py --null
    python bench/validation_bench.py --e2e --cores 2
Appends a JSON record to bench/results.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from run_bench import GPT2, append_record, build_assets, machine_info, peak_rss_mb  # noqa: E402

N_TEXTS, N_CATEGORIES, D_SAE, N_LAYERS, D_MODEL = 70, 7, 24576, 4, 768


def synthetic_layers(active: int, seed: int = 0):
    import numpy as np

    from sae_specialists.analysis.dense import LayerData

    rng = np.random.default_rng(seed)
    cat = np.repeat(np.arange(N_CATEGORIES), N_TEXTS // N_CATEGORIES)
    layers = []
    for layer in range(N_LAYERS):
        values = np.zeros((N_TEXTS, D_SAE))
        for i in range(N_TEXTS):
            cols = rng.choice(D_SAE, active, replace=False)
            values[i, cols] = rng.exponential(1.0, active)
        for c in range(N_CATEGORIES):  # one planted specialist per category
            values[cat == c, c] = rng.uniform(6, 20, (cat == c).sum())
        layers.append(
            LayerData(
                "res",
                layer,
                values,
                np.arange(D_SAE),
                [f"t{i}" for i in range(N_TEXTS)],
                [f"c{c}" for c in range(N_CATEGORIES)],
                cat,
            )
        )
    return layers


def null_child(active: int, permutations: int, baselines: bool) -> dict:
    """Runs in a fresh process: returns times (s) and peak RSS (MB)."""
    import numpy as np

    from sae_specialists.validation.baselines import baseline_rows
    from sae_specialists.validation.cells import heldout_layer, null_layer_rows
    from sae_specialists.validation.folds import category_folds
    from sae_specialists.validation.null import permutations as perms_of

    layers = synthetic_layers(active)
    rss_data = peak_rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    perms = perms_of(N_TEXTS, permutations, 0)
    union = []
    for data in layers:
        _, rows = null_layer_rows(data, data.cat_index[perms], threshold=5.0, candidates=5, seed=0)
        union.append(rows)
    null_s, null_cpu = time.perf_counter() - t0, time.process_time() - c0
    rss_null = peak_rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    for data in layers:
        heldout_layer(data, threshold=5.0, candidates=5, n_folds=5, seed=0, draws=100)
    heldout_s, heldout_cpu = time.perf_counter() - t0, time.process_time() - c0
    out = {
        "null_s": null_s,
        "null_cpu_s": null_cpu,
        "heldout_floor_cpu_s": heldout_cpu,
        "heldout_floor_s": heldout_s,
        "rss_after_data_mb": rss_data,
        "peak_rss_null_mb": rss_null,
        "p_values_planted": [r["p_value"] for r in union[0]],
    }
    if baselines:
        rng = np.random.default_rng(1)
        t0, c0 = time.perf_counter(), time.process_time()
        for data in layers:
            x = rng.normal(size=(N_TEXTS, D_MODEL)) + 0.3 * np.eye(N_CATEGORIES)[
                data.cat_index
            ] @ rng.normal(size=(N_CATEGORIES, D_MODEL))
            for c in range(N_CATEGORIES):
                baseline_rows(
                    x,
                    data.values,
                    data.features,
                    data.cat_index == c,
                    category_folds(data.cat_index, c, 5, 0),
                    seed=0,
                )
        out["baselines_s"] = time.perf_counter() - t0
        out["baselines_cpu_s"] = time.process_time() - c0
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def bench_null(args) -> dict:
    code = (
        f"import json, sys; sys.path.insert(0, {str(HERE)!r}); import validation_bench as b;"
        f" print(json.dumps(b.null_child({args.active}, {args.permutations}, "
        f"{not args.no_baselines})))"
    )
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"OPENBLAS_NUM_THREADS": "2", "PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
    )
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["process_wall_s"] = time.perf_counter() - t0
    res.update(
        texts=N_TEXTS,
        features=D_SAE,
        layers=N_LAYERS,
        permutations=args.permutations,
        active_per_text=args.active,
    )
    print(json.dumps(res, indent=1))
    return res


JOB_DONE = re.compile(r"INFO (validation_\w+[^:]*): done in ([0-9.]+) s")


def study_config(assets: Path, results: Path, validation: bool) -> dict:
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg["model"] = {"path": str(assets / "model")}
    cfg["saes"] = {"res": {"path": str(assets / "saes" / "layer{layer}")}}
    cfg["device"] = "cpu"
    cfg["texts"] = str(REPO / "resources" / "texts")
    cfg["results_dir"] = str(results)
    cfg.setdefault("validation", {})["enabled"] = validation
    return cfg


def _snakemake(cfg_path: Path, cores: int, *targets: str) -> tuple[float, float, str]:
    """(wall s, CPU s of every process it ran, output) of one Snakemake run."""
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        *targets,  # before --configfile, which takes every word after it as a file
        "--cores",
        str(cores),
        "--configfile",
        str(cfg_path),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stdout + proc.stderr


def bench_e2e(args) -> dict:
    """The default study without the stage from an empty results directory, then the stage
    alone on its results (`snakemake validation`): the stage's wall and CPU time against the
    study's. Run together, the stage overlaps other jobs, so its share of the end-to-end time is
    at most the ratio of the walls."""
    work, assets = Path(args.workdir), Path(args.assets)
    work.mkdir(parents=True, exist_ok=True)
    build_assets(assets, GPT2, 24576, 64)
    results = work / "results"
    if results.exists():
        shutil.rmtree(results)
    plain, full = work / "config-plain.yaml", work / "config-validation.yaml"
    plain.write_text(yaml.safe_dump(study_config(assets, results, False)))
    full.write_text(yaml.safe_dump(study_config(assets, results, True)))
    study_wall, study_cpu, _ = _snakemake(plain, args.cores)
    print(f"study without validation: {study_wall:.0f} s wall, {study_cpu:.0f} s CPU", flush=True)
    val_wall, val_cpu, out = _snakemake(full, args.cores, "validation")
    print(f"validation alone: {val_wall:.0f} s wall, {val_cpu:.0f} s CPU", flush=True)
    jobs = {}
    for log in (results / "logs" / "validation").glob("*.log"):
        for what, seconds in JOB_DONE.findall(log.read_text()):
            jobs[what] = float(seconds)
    res = {
        "study_wall_s": study_wall,
        "study_cpu_s": study_cpu,
        "validation_wall_s": val_wall,
        "validation_cpu_s": val_cpu,
        "wall_share": val_wall / study_wall,
        "cpu_share": val_cpu / study_cpu,
        "validation_job_s": jobs,
        "cores": args.cores,
    }
    print(json.dumps(res, indent=1))
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--null", action="store_true")
    p.add_argument("--e2e", action="store_true")
    p.add_argument("--active", type=int, default=2000, help="active features per text")
    p.add_argument("--permutations", type=int, default=1000)
    p.add_argument("--no-baselines", action="store_true")
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--workdir", default="/tmp/sae-validation-bench")
    p.add_argument("--assets", default="/tmp/sae-bench/gpt2-24576-l064")
    p.add_argument("--log", default=str(HERE / "results.jsonl"))
    args = p.parse_args()
    record = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "tag": "validation",
        "machine": machine_info(),
    }
    if args.null:
        record["null"] = bench_null(args)
    if args.e2e:
        record["e2e"] = bench_e2e(args)
    append_record(record, args.log)


if __name__ == "__main__":
    main()

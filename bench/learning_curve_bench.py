"""Learning curve vs shuffled-label null at research size (run by hand; numbers go to
bench/RESULTS.md, issue 25 item 4).

Takes a finished ``bench/analysis_bench.py`` work directory (synthetic shards and per-text tables
of the GPT-2-shaped benchmark model: 7 categories, ``--texts`` texts in all, 4 layers, 24,576
features), switches the validation stage on in a copy of its config (baselines off: the
synthetic shards have no pooled residuals; learning curve on with the default ladder, draws and
permutations) and runs ``snakemake`` for three targets, one job at a time (``--cores 1``):
held-out selection, the null (``validation.permutations``, default 1,000) and the learning curve.
Each job's own last log line gives its wall time and peak RSS; CPU time of the whole Snakemake
run comes from ``getrusage(RUSAGE_CHILDREN)``. Target: the learning curve within 2 x the null.

``--layer L``: instead, the null (1,000 permutations), the held-out selection (5 folds, 100
random-feature draws) and the learning curve of one layer, each timed in a fresh process from
the dense layer (CPU time: robust on a shared host; peak RSS: VmHWM), as the jobs compute them:
the null and held-out parts write their cell tables (after their timing), the curve part reads
them for its top rung, as ``validation_learning_curve`` reads those jobs' outputs.

Usage:
    python bench/analysis_bench.py --texts 7000 --workdir /tmp/sae-analysis-bench
    python bench/learning_curve_bench.py --workdir /tmp/sae-analysis-bench
    python bench/learning_curve_bench.py --workdir /tmp/sae-analysis-bench --layer 8
Appends a JSON record to ``--log`` (default bench/results.jsonl).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from run_bench import append_record, machine_info  # noqa: E402

DONE = re.compile(r"(?P<what>\S+): done in (?P<s>[0-9.]+) s, peak RSS (?P<rss>[0-9]+) MB")
JOBS = ("heldout", "null", "learning_curve")


def job_line(log: Path) -> dict:
    lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
    found = [m for m in map(DONE.search, lines) if m]
    if not found:
        return {"seconds": None, "peak_rss_mb": None}
    return {"seconds": float(found[-1]["s"]), "peak_rss_mb": int(found[-1]["rss"])}


def part(name: str, per_text: str, texts: str, cells_dir: str) -> dict:
    """One part in this process, as its job runs it: CPU and wall seconds, peak RSS (VmHWM).
    ``cells_dir``: where the null and held-out parts write their cells, the curve reads them."""
    import polars as pl

    from sae_specialists.core.jobs import peak_rss_mb
    from sae_specialists.validation import learning_curve as lc
    from sae_specialists.validation.cells import heldout_layer, null_layer_rows
    from sae_specialists.validation.entry import load_layer
    from sae_specialists.validation.null import permutations
    from sae_specialists.validation.table import (
        HELDOUT_SCHEMA,
        NULL_CELL_SCHEMA,
        frame,
        join_cells,
    )

    data = load_layer(per_text, texts, 8.0)
    cells = Path(cells_dir)
    common = {"threshold": 5.0, "candidates": 5, "seed": 0}
    cpu, wall = time.process_time(), time.perf_counter()
    if name == "null":  # validation_null: validation.permutations = 1,000
        labels = data.cat_index[permutations(data.n_texts, 1000, 0)]
        _, rows = null_layer_rows(data, labels, **common)
        out = (frame(rows, NULL_CELL_SCHEMA), cells / "null.parquet")
    elif name == "heldout":  # validation_heldout: 5 folds, 100 random-feature draws
        _, rows = heldout_layer(data, n_folds=5, draws=100, **common)
        out = (frame(rows, HELDOUT_SCHEMA), cells / "heldout.parquet")
    else:  # validation_learning_curve: the default ladder, draws and permutations
        draws = int(os.environ.get("CURVE_DRAWS", 5))  # CURVE_DRAWS: another draw count
        s = lc.CurveSettings(
            (5, 10, 20, 50, 100, 200, 500, 1000), draws, 200, 0.5, 5, 0, 5.0, 5, 0.05, 0.7
        )
        stage = join_cells(
            pl.read_parquet(cells / "heldout.parquet"), pl.read_parquet(cells / "null.parquet")
        )
        lc.curve_layer(data, s, stage)
        out = None
    result = {
        "part": name,
        "texts": data.n_texts,
        "features": len(data.features),
        "cpu_s": time.process_time() - cpu,
        "wall_s": time.perf_counter() - wall,
        "peak_rss_mb": peak_rss_mb(),
    }
    if out is not None:
        out[0].write_parquet(out[1])
    return result


def in_process(work: Path, layer: int, log: str) -> None:
    """--layer: the null, the held-out selection and the learning curve of one layer, each in
    a fresh process."""
    config = yaml.safe_load((work / "config.yaml").read_text())
    results = Path(config["results_dir"])
    per_text = str(results / "per_text" / "sae=res" / f"layer={layer}.parquet")
    texts = str(results / "per_text" / "texts.parquet")
    out = {}
    with tempfile.TemporaryDirectory() as cells:
        for name in ("null", "heldout", "curve"):
            proc = subprocess.run(
                [sys.executable, __file__, "--part", name, per_text, texts, cells],
                capture_output=True,
                text=True,
                check=True,
            )
            out[name] = json.loads(proc.stdout.strip().splitlines()[-1])
            print(out[name], flush=True)
    record = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "tag": "learning-curve-vs-null-one-layer",
        "machine": machine_info(),
        "layer": layer,
        "curve_draws": int(os.environ.get("CURVE_DRAWS", 5)),
        "parts": list(out.values()),
        "curve_over_null_cpu": out["curve"]["cpu_s"] / out["null"]["cpu_s"],
    }
    append_record(record, log)
    print(json.dumps(record, indent=1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workdir", default="/tmp/sae-analysis-bench")
    p.add_argument("--log", default=str(HERE / "results.jsonl"))
    p.add_argument("--layer", type=int, help="time one layer's null and curve in-process")
    p.add_argument("--part", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.part:
        print(json.dumps(part(*args.part)))
        return
    if args.layer is not None:
        in_process(Path(args.workdir), args.layer, args.log)
        return
    work = Path(args.workdir)
    config = yaml.safe_load((work / "config.yaml").read_text())
    config["validation"] = {
        "enabled": True,
        "families": ["res"],
        "baselines": False,
        "learning_curve": {"enabled": True},
    }
    cfg = work / "config_validation.yaml"
    cfg.write_text(yaml.safe_dump(config, sort_keys=False))
    results = Path(config["results_dir"])
    targets = [
        results / "validation" / "heldout" / "cells.parquet",
        results / "validation" / "null" / "cells.parquet",
        results / "validation" / "learning_curve" / "cells.parquet",
    ]
    for t in targets:
        t.unlink(missing_ok=True)
    cmd = [
        str(Path(sys.executable).with_name("snakemake")),
        "--configfile",
        str(cfg),
        "--cores",
        "1",
        *map(str, targets),
    ]
    t0 = time.perf_counter()
    with open(work / "snakemake-learning-curve.log", "w") as out:
        rc = subprocess.call(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    jobs = {name: job_line(results / "logs" / "validation" / f"{name}.log") for name in JOBS}
    record = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "tag": "learning-curve-vs-null",
        "machine": machine_info(),
        "workdir": str(work),
        "rc": rc,
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "jobs": jobs,
    }
    null, curve = jobs["null"]["seconds"], jobs["learning_curve"]["seconds"]
    if null and curve:
        record["curve_over_null"] = curve / null
    append_record(record, args.log)
    print(json.dumps(record, indent=1))
    if rc:
        sys.exit(f"snakemake failed ({rc}): {work / 'snakemake-learning-curve.log'}")


if __name__ == "__main__":
    main()

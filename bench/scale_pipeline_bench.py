"""The study's whole pipeline at research size on the demo-shaped model (run by hand, never in CI;
results in bench/RESULTS.md, "Research-size corpora").

Builds the offline demo's model and SAEs (``sae_specialists.demo.build_demo``: d_model 64, four
layers, SAEs of 64-128 features), a corpus of ``--per-category`` texts for each of the study's
seven categories (each text 1-3 lines drawn, seeded, from that category's resources/texts file
and shuffled: the study's vocabulary and markers at research size), and a config that is
config/config.yaml with the model, the ``res`` SAEs and the layers 0-3 of the demo (every stage
the study runs by default: extraction, analysis, dashboards, methodology, validation with its
learning curve, comparison, surface with the probe texts, causal). Then one
``snakemake --cores N`` and, for every job, the time and peak RSS its own log line reports
(``core.jobs.run``: "done in X s, peak RSS Y MB").

    python bench/scale_pipeline_bench.py --per-category 1000 --workdir /tmp/scale
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
STUDY = ("python", "math", "urls", "social", "non_english", "formal", "conversational")
DONE = re.compile(r"INFO (\S+)(?: [^:]*)?: done in ([\d.]+) s, peak RSS (\d+) MB")


def corpus(directory: Path, per_category: int, seed: int) -> int:
    """Seeded texts of 1-3 lines of each category's resource texts; returns the total."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for category in STUDY:
        items = yaml.safe_load((REPO / "resources/texts" / f"{category}.yaml").read_text("utf-8"))
        lines = [line for text in items for line in text.splitlines() if line.strip()]
        texts = []
        for i in range(per_category):
            picked = rng.sample(lines, k=min(len(lines), rng.randint(1, 3)))
            texts.append("\n".join(picked) + f" ({i})")  # distinct texts: no duplicate warning
        (directory / f"{category}.yaml").write_text(
            yaml.safe_dump(texts, allow_unicode=True, width=1000), encoding="utf-8"
        )
    return per_category * len(STUDY)


def config(workdir: Path, assets: Path, texts: Path) -> Path:
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text("utf-8"))
    cfg.update(
        model={"path": str(assets / "model")},
        device="cpu",
        saes={"res": {"path": str(assets / "saes/res/layer{layer}")}},
        layers=[0, 1, 2, 3],
        texts=str(texts),
        results_dir=str(workdir / "results"),
    )
    for key in ("surface", "validation"):  # repository paths, absolute for a run elsewhere
        for name, value in list((cfg.get(key) or {}).items()):
            if isinstance(value, str) and value.startswith("resources/"):
                cfg[key][name] = str(REPO / value)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    return path


def job_lines(results: Path) -> list[dict]:
    rows = []
    for log in sorted((results / "logs").rglob("*.log")):
        for match in DONE.finditer(log.read_text(errors="replace")):
            rows.append(
                {
                    "log": str(log.relative_to(results / "logs")),
                    "rule": match[1],
                    "seconds": float(match[2]),
                    "peak_rss_mb": int(match[3]),
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-category", type=int, default=1000)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=int, default=3600)
    parser.add_argument("--log", type=Path, default=REPO / "bench/results.jsonl")
    args = parser.parse_args()

    from sae_specialists.demo import build_demo

    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    assets = work / "assets"
    if not (assets / "planted.json").is_file():
        build_demo(assets, seed=0)
    n_texts = corpus(work / "texts", args.per_category, args.seed)
    cfg = config(work, assets, work / "texts")
    cmd = [
        str(Path(sys.executable).with_name("snakemake")),
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(work),
        "--configfile",
        str(cfg),
        "--cores",
        str(args.cores),
    ]
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
        exit_code, stderr = proc.returncode, proc.stderr
    except subprocess.TimeoutExpired as stopped:  # report the jobs that finished
        exit_code = f"stopped after {args.timeout} s"
        stderr = (stopped.stderr or b"").decode(errors="replace")
    wall = time.perf_counter() - start
    rows = job_lines(work / "results")
    by_rule = defaultdict(list)
    for row in rows:
        by_rule[row["rule"]].append(row)
    print(f"{n_texts} texts, snakemake exit {exit_code}, {wall:.0f} s wall, {len(rows)} jobs")
    if exit_code:
        print(stderr[-3000:])
    print("| job | jobs | time (s, each) | peak RSS (MB, max) |\n|---|---|---|---|")
    for rule, items in sorted(by_rule.items(), key=lambda kv: -sum(r["seconds"] for r in kv[1])):
        secs = [r["seconds"] for r in items]
        span = f"{min(secs):.1f}" if len(secs) == 1 else f"{min(secs):.1f}-{max(secs):.1f}"
        rss = max(r["peak_rss_mb"] for r in items)
        print(f"| `{rule}` | {len(items)} | {span} | {rss} |")
    record = {
        "bench": "scale_pipeline",
        "texts": n_texts,
        "exit": exit_code,
        "wall_s": round(wall, 1),
        "jobs": rows,
        "commit": subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),
    }
    with open(args.log, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()

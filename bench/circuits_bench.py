"""Circuits benchmark (run by hand, never in CI). See bench/RESULTS.md for results.

The circuits stage's model job (``circuits_layer``: one SAE family and layer) at the default
study's size, on the GPT-2-small-shaped random model of ``run_bench.py`` (12 layers, d_model 768,
vocabulary 50,257; 24,576-wide StandardSAEs on ``blocks.{6,8,10,11}.hook_resid_pre``, about
``--l0`` features firing per token): 70 texts of 20-200 random tokens in 7 categories of 10, one
specialist per category at the job's layer (the feature with the highest mean activation on the
category's texts, distinct features, as causal_bench.py picks them), every SAE of the run loaded
(the edges reach all of them), ``--verify`` upstream features verified. Each layer runs in its
own child process, as a job would: wall and CPU time, the child's peak RSS.

Usage (a layer takes minutes on 2 shared CPU cores):
    python bench/circuits_bench.py                 # every layer of the study
    python bench/circuits_bench.py --layers 8      # one layer
Results are printed and appended as JSON lines to ``--log`` (default bench/results.jsonl).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from causal_bench import pick_specialists, study_texts  # noqa: E402
from run_bench import (  # noqa: E402
    GPT2,
    LAYERS,
    append_record,
    build_assets,
    machine_info,
    peak_rss_mb,
)


def child_layer(args) -> dict:
    import torch

    from sae_specialists.causal.ablation import FeatureSite
    from sae_specialists.circuits.edges import Root, freeze, make_sites
    from sae_specialists.circuits.run import Options, run_roots
    from sae_specialists.extraction.loading import ModelAndSAEs

    torch.set_num_threads(args.threads)
    root = Path(args.root)
    t0 = time.perf_counter()
    job = ModelAndSAEs(
        {"path": str(root / "model")},
        {("bench", layer): {"path": str(root / "saes" / f"layer{layer}")} for layer in LAYERS},
        "cpu",
        "float32",
    )
    model, saes, _ = job.load()
    sites = make_sites(model, saes)
    freeze(model, sites)
    load_s = time.perf_counter() - t0
    own = next(s for s in saes if s.layer == args.layer)
    texts = study_texts(GPT2["d_vocab"])
    t = time.perf_counter()
    cells = pick_specialists(FeatureSite(model, own.sae, own.hook_name), texts, args.batch_size)
    pick_s = time.perf_counter() - t
    by_category: dict[str, list] = {}
    for x in texts:
        by_category.setdefault(x.category, []).append(x.ids)
    roots = [Root("bench", args.layer, c.feature, c.category) for c in cells]
    cpu0 = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
    t = time.perf_counter()
    frames = run_roots(
        model, sites, roots, by_category, Options(verify=args.verify, batch_size=args.batch_size)
    )
    work_s = time.perf_counter() - t
    work_cpu = sum(resource.getrusage(resource.RUSAGE_SELF)[:2]) - cpu0
    return {
        "layer": args.layer,
        "texts": len(texts),
        "tokens": sum(len(x.ids) for x in texts),
        "specialists": len(roots),
        "verify": args.verify,
        "rows": {name: df.height for name, df in frames.items()},
        "load_s": load_s,
        "pick_specialists_s": pick_s,
        "work_s": work_s,
        "work_cpu_s": work_cpu,
        "cpu_s": sum(resource.getrusage(resource.RUSAGE_SELF)[:2]),  # user + system
        "peak_rss_mb": peak_rss_mb(),
        "loadavg": os.getloadavg(),
    }


CHILDREN = {"layer": child_layer}


def run_child(step: str, **kwargs) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", step]
    cmd += ["--payload", json.dumps(kwargs)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TQDM_DISABLE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{step} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--child")
    p.add_argument("--payload")
    p.add_argument("--layers", type=int, nargs="+", default=list(LAYERS))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--verify", type=int, default=10)
    p.add_argument("--d-sae", type=int, default=24576)
    p.add_argument("--l0", type=int, default=64)
    p.add_argument("--workdir", default=os.environ.get("SAE_BENCH_DIR", "/tmp/sae-bench"))
    p.add_argument("--log", default=str(HERE / "results.jsonl"))
    args = p.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child](argparse.Namespace(**json.loads(args.payload)))))
        return

    root = Path(args.workdir) / f"gpt2-{args.d_sae}-l0{args.l0}"
    root.mkdir(parents=True, exist_ok=True)
    build_assets(root, GPT2, args.d_sae, args.l0)
    record = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "bench": "circuits",
        "machine": machine_info(),
        "args": {k: v for k, v in vars(args).items() if k not in ("child", "payload")},
        "layers": [],
    }
    for layer in args.layers:
        res = run_child(
            "layer",
            root=str(root),
            layer=layer,
            threads=args.threads,
            batch_size=args.batch_size,
            verify=args.verify,
        )
        record["layers"].append(res)
        print(
            f"layer {layer}: {res['specialists']} specialists on {res['texts']} texts "
            f"({res['tokens']} tokens): work {res['work_s']:.0f} s wall, "
            f"{res['work_cpu_s']:.0f} s CPU; load {res['load_s']:.0f} s; job CPU "
            f"{res['cpu_s']:.0f} s; peak RSS {res['peak_rss_mb']:.0f} MB; "
            f"load average {res['loadavg'][0]:.1f}",
            flush=True,
        )
    append_record(record, args.log)


if __name__ == "__main__":
    main()

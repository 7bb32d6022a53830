"""Causal-check benchmark (run by hand, never in CI). See bench/RESULTS.md for results.

The causal stage's model job (``causal_layer``: one SAE family and layer) at the default
study's size, on the GPT-2-small-shaped random model of ``run_bench.py`` (12 layers, d_model
768, vocabulary 50,257; 24,576-wide StandardSAEs on ``blocks.{6,8,10,11}.hook_resid_pre``, about
``--l0`` features firing per token): 70 texts of 20-200 random tokens in 7 categories of 10,
one specialist per category (the feature with the highest mean activation on the category's
texts, distinct features), one density-matched control each, zero and mean ablations, the top
tokens, and steering samples (3 prompts x 20 tokens, scales 0 / 2 / 5). Each layer runs in its
own child process, as a job would: wall time per part and the child's peak RSS.

Usage (a layer takes minutes on 2 shared CPU cores):
    python bench/causal_bench.py                 # every layer of the study
    python bench/causal_bench.py --layers 6      # one layer
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

from run_bench import (  # noqa: E402
    GPT2,
    LAYERS,
    append_record,
    build_assets,
    machine_info,
    peak_rss_mb,
)

CATEGORIES = 7
TEXTS_PER_CATEGORY = 10
PROMPTS = ("t11 t12 t13 t14", "t21 t22 t23", "t31 t32 t33 t34 t35")


def study_texts(d_vocab: int, seed: int = 1):
    """The default study's size: 7 categories x 10 texts of 20-200 random tokens (BOS first)."""
    import numpy as np

    from sae_specialists.causal.run import TextTokens

    rng = np.random.default_rng(seed)
    texts = []
    for c in range(CATEGORIES):
        for i in range(TEXTS_PER_CATEGORY):
            ids = rng.integers(0, d_vocab - 1, int(rng.integers(20, 201)))
            texts.append(TextTokens(f"c{c}-{i}", f"c{c}", (d_vocab - 1, *map(int, ids))))
    return texts


def pick_specialists(site, texts, batch_size: int) -> list:
    """Per category, the feature with the highest mean activation on its texts (distinct)."""
    import numpy as np

    from sae_specialists.causal.ablation import feature_stats, iter_batches
    from sae_specialists.causal.run import Cell

    cells, taken = [], set()
    for c in sorted({t.category for t in texts}):
        ids = [t.ids for t in texts if t.category == c]
        stats = feature_stats(site, iter_batches(ids, batch_size, 0, site.device))
        order = [int(f) for f in np.argsort(-stats.mean, kind="stable") if int(f) not in taken]
        cells.append(Cell(c, order[0]))
        taken.add(order[0])
    return cells


def child_layer(args) -> dict:
    import torch

    from sae_specialists.causal.ablation import FeatureSite
    from sae_specialists.causal.run import LayerOptions, run_layer
    from sae_specialists.extraction.loading import ModelAndSAEs

    torch.set_num_threads(args.threads)
    root = Path(args.root)
    t0 = time.perf_counter()
    job = ModelAndSAEs(
        {"path": str(root / "model")},
        {("bench", args.layer): {"path": str(root / "saes" / f"layer{args.layer}")}},
        "cpu",
        "float32",
    )
    model, saes, _ = job.load()
    load_s = time.perf_counter() - t0
    site = FeatureSite(model, saes[0].sae, saes[0].hook_name)
    texts = study_texts(GPT2["d_vocab"])
    t = time.perf_counter()
    cells = pick_specialists(site, texts, args.batch_size)
    pick_s = time.perf_counter() - t
    tok = model.tokenizer
    prompt_ids = [
        [tok.bos_token_id] + tok(p, add_special_tokens=False)["input_ids"] for p in PROMPTS
    ]
    options = LayerOptions(
        prompts=PROMPTS,
        steer_tokens=args.steer_tokens,
        batch_size=args.batch_size,
        modes=tuple(args.modes),
    )
    t = time.perf_counter()
    result = run_layer(
        site,
        "bench",
        args.layer,
        texts,
        cells,
        options,
        lambda ids: " ".join(map(str, ids)),
        prompt_ids,
    )
    work_s = time.perf_counter() - t
    n_tokens = sum(len(x.ids) for x in texts)
    ablations = result.per_text.select("feature", "mode").unique().height
    return {
        "layer": args.layer,
        "texts": len(texts),
        "tokens": n_tokens,
        "specialists": len(cells),
        "ablations": ablations,
        "load_s": load_s,
        "pick_specialists_s": pick_s,
        "work_s": work_s,
        "stats_s": result.seconds["stats"],
        "ablations_s": result.seconds["ablations"],
        "steering_s": result.seconds["steering"],
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
    p.add_argument("--steer-tokens", type=int, default=20)
    p.add_argument("--modes", nargs="+", default=["zero", "mean"])
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
        "bench": "causal",
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
            steer_tokens=args.steer_tokens,
            modes=args.modes,
        )
        record["layers"].append(res)
        print(
            f"layer {layer}: {res['ablations']} ablations on {res['texts']} texts "
            f"({res['tokens']} tokens): {res['work_s']:.0f} s (stats {res['stats_s']:.0f} s, "
            f"ablations {res['ablations_s']:.0f} s, steering {res['steering_s']:.0f} s), "
            f"load {res['load_s']:.0f} s; CPU {res['cpu_s']:.0f} s; peak RSS "
            f"{res['peak_rss_mb']:.0f} MB",
            flush=True,
        )
    append_record(record, args.log)


if __name__ == "__main__":
    main()

"""Surface stage benchmark (run by hand, never in CI): CPU and wall time of the token measures (the
``surface_layer`` job of every layer and the ``surface_verdicts`` job, without probe texts) at
the study's size, on synthetic GPT-2-shaped shards.

The shards follow the data contract (core/contract.py): 7 categories, ``--texts`` texts of
``--min-len``-``--max-len`` positions (BOS first), token ids uniform over GPT-2's 50,257, and per
layer (``--layers``, the study's 6/8/10/11) about ``--l0`` active features per position out of
24,576 with exponential values; one specialist per category fires on 5 % of the category's
positions (values ~10-30) and leaks weakly elsewhere. The analysis' text list and a
specialists table (the planted feature of every category and layer) are written next to them,
then each job's function runs in this process exactly as its rule calls it (the entry
functions of sae_specialists.surface.entry), timed with ``time.process_time`` and
``time.perf_counter``; peak RSS from ``getrusage``.

Usage:
    python bench/surface_bench.py                  # the study's size: 70 texts
    python bench/surface_bench.py --texts 2000     # larger corpora
Results are printed and appended as one JSON line to ``--log`` (default bench/results.jsonl).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

CATEGORIES = ("conversational", "formal", "math", "non_english", "python", "social", "urls")
D_SAE, D_VOCAB, BOS = 24576, 50257, 50256


def write_shards(work: Path, n_texts: int, layers, l0: float, lengths, seed: int):
    """Tokens and activation shards (one chunk per category), the text list and the
    specialists table; returns the Layout."""
    import polars as pl
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sae_specialists.core.contract import ACTIVATIONS_SCHEMA, TOKENS_SCHEMA
    from sae_specialists.core.layout import Layout

    L = Layout.of(str(work / "results"), ["res"], layers, CATEGORIES)
    rng = np.random.default_rng(seed)
    sizes = {
        c: n_texts // len(CATEGORIES) + (i < n_texts % len(CATEGORIES))
        for i, c in enumerate(CATEGORIES)
    }
    planted = {(c, layer): int(rng.integers(0, D_SAE)) for c in CATEGORIES for layer in layers}
    text_rows = []
    for c in CATEGORIES:
        ids, pos, tok = [], [], []
        for t in range(sizes[c]):
            n = int(rng.integers(lengths[0], lengths[1] + 1))
            tid = f"{c}-{t:05d}"
            text_rows.append((tid, c, n, n - 1))
            ids += [tid] * n
            pos += list(range(n))
            tok += [BOS] + rng.integers(0, D_VOCAB - 1, n - 1).tolist()
        n_pos = len(ids)
        tokens = pa.table(
            {
                "text_id": ids,
                "category": [c] * n_pos,
                "token_pos": np.array(pos, dtype=np.int32),
                "token_id": np.array(tok, dtype=np.int32),
                "token": [f"t{x}" for x in tok],
                "token_bytes": [f" t{x}".encode() for x in tok],
                "bos": np.array(pos) == 0,
            },
            schema=TOKENS_SCHEMA,
        )
        path = Path(L.tokens_chunk(c, "00000"))
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(tokens, path)
        for layer in layers:
            k = rng.poisson(l0, n_pos)
            row = np.repeat(np.arange(n_pos), k)
            feat = rng.integers(0, D_SAE, len(row))
            val = rng.exponential(1.0, len(row))
            own = rng.random(n_pos) < 0.05
            row = np.r_[row, np.flatnonzero(own)]
            feat = np.r_[feat, np.full(int(own.sum()), planted[(c, layer)])]
            val = np.r_[val, rng.uniform(10, 30, int(own.sum()))]
            for other in CATEGORIES:  # the other categories' specialists leak weakly
                if other == c:
                    continue
                leak = rng.random(n_pos) < 0.002
                row = np.r_[row, np.flatnonzero(leak)]
                feat = np.r_[feat, np.full(int(leak.sum()), planted[(other, layer)])]
                val = np.r_[val, rng.uniform(0.5, 2, int(leak.sum()))]
            frame = (
                pl.DataFrame({"row": row, "feature": feat.astype(np.int32), "activation": val})
                .unique(["row", "feature"], keep="first")
                .sort("row", "feature")
            )
            r = frame["row"].to_numpy()
            acts = pa.table(
                {
                    "text_id": [ids[i] for i in r],
                    "token_pos": np.array(pos, dtype=np.int32)[r],
                    "feature": frame["feature"].to_numpy(),
                    "activation": frame["activation"].to_numpy().astype(np.float32),
                },
                schema=ACTIVATIONS_SCHEMA,
            )
            path = Path(L.activations_chunk("res", layer, c, "00000"))
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(acts, path)
    texts = (
        pl.DataFrame(
            text_rows, schema=["text_id", "category", "n_positions", "n_counted"], orient="row"
        )
        .with_row_index("text_order")
        .with_columns(pl.col("text_order").cast(pl.Int64))
    )
    Path(L.texts).parent.mkdir(parents=True, exist_ok=True)
    texts.write_parquet(L.texts)
    spec = pl.DataFrame(
        {
            "sae": ["res"] * len(planted),
            "layer": [layer for _, layer in planted],
            "category": [c for c, _ in planted],
            "feature": list(planted.values()),
            "has_specialist": [True] * len(planted),
        }
    )
    Path(L.table("specialists")).parent.mkdir(parents=True, exist_ok=True)
    spec.write_parquet(L.table("specialists"))
    return L


def timed(fn, smk) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    fn(smk)
    return time.process_time() - cpu, time.perf_counter() - wall


def run(L, layers) -> dict:
    from sae_specialists.surface import entry

    out = {}
    parts = []
    for layer in layers:
        smk = SimpleNamespace(
            input=SimpleNamespace(
                tokens=L.tokens(),
                activations=L.activations("res", layer),
                texts=L.texts,
                specialists=L.table("specialists"),
            ),
            output=SimpleNamespace(
                specialists=L.surface_layer("res", layer, "specialists"),
                tokens=L.surface_layer("res", layer, "tokens"),
            ),
            params=SimpleNamespace(
                include_bos=False, folds=5, seed=0, trigger_mass=0.8, max_triggers=10
            ),
            wildcards=SimpleNamespace(family="res", layer=str(layer)),
        )
        out[f"layer_{layer}"] = timed(entry.layer, smk)
        parts.append(smk.output)
    outputs = {
        **L.surface_pair("specialists"),
        **L.surface_pair("tokens"),
        **L.surface_pair("layers"),
        "board": L.verdicts("surface"),
        "summary": L.surface_summary,
        "chart_html": L.surface_chart("html"),
        "chart_png": L.surface_chart("png"),
    }
    smk = SimpleNamespace(
        input=SimpleNamespace(
            specialists=[p.specialists for p in parts],
            tokens=[p.tokens for p in parts],
            probe_index=[],
            probe_tokens=[],
            probe_activations=[],
        ),
        output=SimpleNamespace(**outputs),
        params=SimpleNamespace(
            token_r2_min=0.8,
            outside_min=0.5,
            gated_max=0.2,
            fires_min=0.5,
            auroc_min=0.75,
            probe_layers=[],
            threshold=5.0,
            aggregation="mean",
            include_bos=False,
            summary={"threshold": 5.0},
        ),
    )
    out["verdicts"] = timed(entry.verdicts, smk)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--texts", type=int, default=70)
    p.add_argument("--layers", type=int, nargs="+", default=[6, 8, 10, 11])
    p.add_argument("--l0", type=float, default=64)
    p.add_argument("--min-len", type=int, default=20)
    p.add_argument("--max-len", type=int, default=200)
    p.add_argument("--workdir", default="/tmp/sae-surface-bench")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log", default=str(HERE / "results.jsonl"))
    args = p.parse_args()
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    t = time.perf_counter()
    L = write_shards(
        work, args.texts, args.layers, args.l0, (args.min_len, args.max_len), args.seed
    )
    generate = time.perf_counter() - t
    times = run(L, args.layers)
    cpu = sum(c for c, _ in times.values())
    wall = sum(w for _, w in times.values())
    record = {
        "bench": "surface",
        "texts": args.texts,
        "layers": args.layers,
        "l0": args.l0,
        "generate_s": round(generate, 1),
        "jobs": {k: {"cpu_s": round(c, 2), "wall_s": round(w, 2)} for k, (c, w) in times.items()},
        "cpu_s": round(cpu, 2),
        "wall_s": round(wall, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "date": time.strftime("%Y-%m-%d"),
    }
    print(json.dumps(record, indent=1))
    with open(args.log, "a") as fh:
        fh.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()

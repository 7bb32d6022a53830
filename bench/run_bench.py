"""Extraction benchmark (run by hand, never in CI). See bench/RESULTS.md for results.

Builds, with random weights and no download, a GPT-2-small-shaped HookedTransformer (12 layers,
d_model 768, 12 heads, d_mlp 3072, vocabulary 50,257, gelu_new, LayerNorm) and four 24,576-wide
StandardSAEs on ``blocks.{6,8,10,11}.hook_resid_pre`` (encoder biases calibrated so that about
``--l0`` features fire per token, like real residual SAEs), plus a JSONL corpus of texts of
20-200 random tokens. Then, each step in its own child process (so peak RSS is per step):

- ``matmul``: the machine's fp32 ``torch.mm`` rate at the workload's own GEMM shapes (model
  linears at batch-token rows, SAE encoders at the engine's encode block rows) and at a large
  shape (peak);
- ``engine``: the extraction job itself (``pipeline.extract_category``: JSONL corpus ->
  shards): tokens/s, achieved GFLOP/s (model forward up to the deepest hook + SAE encoders,
  non-padding tokens only) against the matmul rate, peak RSS;
- ``compare``: the engine against the study notebook's way on the same texts and batches (per
  SAE, one full ``run_with_cache``: every hook cached, unembedding computed; a dense
  ``sae.encode``; dense features to numpy; per-text means), interleaved group by group in one
  process so that both see the same machine load;
- ``rss``: peak RSS of extraction jobs as the corpus grows (see ``--rss-texts``).

The engine step probes the matmul rate before the first window and after every window (the
machine is shared and its load drifts); each window's efficiency is its GFLOP/s over the mean of
the probes around it.

Usage (a full-size step takes minutes on 2 CPU cores; scale with --texts):
    python bench/run_bench.py --texts 2000 --steps matmul engine
    python bench/run_bench.py --texts 2000 --compare-texts 128 --steps compare
    python bench/run_bench.py --small --steps rss --rss-texts 2500 5000 10000 20000
Results are printed and appended as JSON lines to ``--log`` (default bench/results.jsonl).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "src"))

GPT2 = dict(
    n_layers=12,
    d_model=768,
    n_heads=12,
    d_head=64,
    d_mlp=3072,
    d_vocab=50257,
    n_ctx=1024,
    act_fn="gelu_new",
    normalization_type="LN",
)
SMALL = dict(
    n_layers=12,
    d_model=128,
    n_heads=4,
    d_head=32,
    d_mlp=512,
    d_vocab=50257,
    n_ctx=1024,
    act_fn="gelu_new",
    normalization_type="LN",
)
LAYERS = (6, 8, 10, 11)
BOS = "<|endoftext|>"


# -- assets -------------------------------------------------------------------------------------


def build_tokenizer(d_vocab: int, out: Path):
    """Word-level tokenizer: 't0'..'t{V-2}' and BOS = id V-1 (like GPT-2's 50256)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    vocab = {f"t{i}": i for i in range(d_vocab - 1)}
    vocab[BOS] = d_vocab - 1
    tok = Tokenizer(models.WordLevel(vocab, unk_token=BOS))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=BOS,
        unk_token=BOS,
        pad_token=BOS,
        model_max_length=1024,
    ).save_pretrained(str(out))
    return AutoTokenizer.from_pretrained(str(out))


def build_assets(root: Path, shape: dict, d_sae: int, l0: int, seed: int = 0) -> None:
    import torch
    from sae_lens import StandardSAE, StandardSAEConfig
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from sae_specialists.extraction.models import save_local_model

    if (root / "done.json").exists():
        return
    torch.manual_seed(seed)
    model_dir = root / "model"
    tokenizer = build_tokenizer(shape["d_vocab"], model_dir)
    cfg = HookedTransformerConfig(
        **shape,
        seed=seed,
        model_name="bench-gpt2-shaped",
        original_architecture="GPT2LMHeadModel",
        default_prepend_bos=True,
    )
    model = HookedTransformer(cfg, tokenizer=tokenizer)
    model.eval()
    save_local_model(model, model_dir)
    # calibration activations: 32 random texts of 200 tokens
    tokens = torch.randint(0, shape["d_vocab"] - 1, (32, 200))
    tokens[:, 0] = shape["d_vocab"] - 1
    hooks = [f"blocks.{layer}.hook_resid_pre" for layer in LAYERS]
    with torch.inference_mode():
        _, cache = model.run_with_cache(tokens, names_filter=hooks, stop_at_layer=max(LAYERS) + 1)
    for layer, hook in zip(LAYERS, hooks, strict=True):
        x = cache[hook][:, 1:].reshape(-1, shape["d_model"])  # BOS excluded
        sae_cfg = StandardSAEConfig(d_in=shape["d_model"], d_sae=d_sae, apply_b_dec_to_input=True)
        sae_cfg.metadata.hook_name = hook
        sae_cfg.metadata.model_name = "bench-gpt2-shaped"
        sae = StandardSAE(sae_cfg)  # kaiming-uniform W_dec, W_enc = W_dec.T
        with torch.no_grad():
            sae.b_dec.copy_(x.mean(0))
            pre = (x - sae.b_dec) @ sae.W_enc
            # per feature: fire on a fraction l0 / d_sae of tokens -> ~l0 active per token
            k = max(1, int(round(pre.shape[0] * (1 - l0 / d_sae))))
            sae.b_enc.copy_(-torch.kthvalue(pre, k, dim=0).values)
        sae.save_model(str(root / "saes" / f"layer{layer}"))
    (root / "done.json").write_text(json.dumps({"shape": shape, "d_sae": d_sae, "l0": l0}))


def write_corpus(path: Path, n_texts: int, d_vocab: int, seed: int = 1) -> None:
    import numpy as np

    if path.exists():
        return
    rng = np.random.default_rng(seed)
    lengths = rng.integers(20, 201, n_texts)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as handle:
        for length in lengths:
            ids = rng.integers(0, d_vocab - 1, length)
            handle.write(json.dumps({"text": " ".join(f"t{i}" for i in ids)}) + "\n")
    os.replace(tmp, path)


def corpus_stats(path: Path) -> dict:
    lengths = []
    with open(path) as handle:
        for line in handle:
            lengths.append(len(json.loads(line)["text"].split()) + 1)  # + BOS
    return {
        "texts": len(lengths),
        "tokens": sum(lengths),
        "min_len": min(lengths),
        "max_len": max(lengths),
        "lengths": lengths,
    }


# -- FLOPs --------------------------------------------------------------------------------------


def forward_flops(lengths, shape: dict, n_blocks: int, unembed: bool = False) -> float:
    """Matmul FLOPs of the forward pass of each text on its own (no padding counted):
    per block QKV + O + MLP linears and the attention scores / mixing (full L x L)."""
    d, m = shape["d_model"], shape["d_mlp"]
    total = 0.0
    for length in lengths:
        per_block = 2 * length * d * (3 * d + d + 2 * m) + 2 * 2 * length * length * d
        total += n_blocks * per_block
        if unembed:
            total += 2 * length * d * shape["d_vocab"]
    return total


def sae_flops(n_tokens: int, d_in: int, d_sae: int, n_saes: int) -> float:
    return 2.0 * n_tokens * d_in * d_sae * n_saes


# -- child steps ----------------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM; not ru_maxrss, which a child inherits from the
    process that started it: core/jobs.py)."""
    from sae_specialists.core.jobs import peak_rss_mb as own_peak_mb

    return float(own_peak_mb())


def workload_shapes(
    shape: dict, d_sae: int, batch_tokens: int, encode_rows: int, n_blocks: int, n_saes: int
) -> dict:
    """The GEMMs of the workload: name -> ((M, K, N), how many per token row)."""
    d, m = shape["d_model"], shape["d_mlp"]
    return {
        "qkv": ((batch_tokens, d, 3 * d), n_blocks),  # one fused QKV matmul per block
        "attn_out": ((batch_tokens, d, d), n_blocks),
        "mlp_in": ((batch_tokens, d, m), n_blocks),
        "mlp_out": ((batch_tokens, m, d), n_blocks),
        "sae_encode": ((encode_rows, d, d_sae), n_saes),
    }


def matmul_probe(shapes: dict, repeats: int = 3, seconds: float = 0.6) -> dict:
    """fp32 torch.mm rate (best of ``repeats`` timings of ~``seconds``) per workload shape, and
    the FLOP-weighted rate of the workload's mix (the time the same GEMMs take alone)."""
    import torch

    rates = {}
    for name, ((mm, k, n), _) in shapes.items():
        a, b = torch.randn(mm, k), torch.randn(k, n)
        out = torch.empty(mm, n)
        torch.mm(a, b, out=out)
        t = time.perf_counter()
        torch.mm(a, b, out=out)
        reps = max(1, int(seconds / max(time.perf_counter() - t, 1e-6)))
        best = 0.0
        for _ in range(repeats):
            t = time.perf_counter()
            for _ in range(reps):
                torch.mm(a, b, out=out)
            best = max(best, reps * 2 * mm * k * n / (time.perf_counter() - t))
        rates[name] = best / 1e9
    per_row = {name: 2 * k * n * w for name, ((_, k, n), w) in shapes.items()}
    seconds_per_row = sum(per_row[name] / (rates[name] * 1e9) for name in shapes)
    return {"rates_gflops": rates, "mix_gflops": sum(per_row.values()) / seconds_per_row / 1e9}


def child_matmul(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    shapes = workload_shapes(
        args.shape, args.d_sae, args.batch_tokens, args.encode_rows, args.n_blocks, len(LAYERS)
    )
    big = {"peak_4096x768x24576": ((4096, args.shape["d_model"], args.d_sae), 1)}
    probe = matmul_probe(shapes, repeats=5, seconds=1.0)
    peak = matmul_probe(big, repeats=5, seconds=1.0)["rates_gflops"]
    rates = {**probe["rates_gflops"], **peak}
    return {
        "rates_gflops": rates,
        "workload_mix_gflops": probe["mix_gflops"],
        "peak_gflops": max(rates.values()),
        "threads": args.threads,
        "loadavg": os.getloadavg(),
    }


def _settings(args, root: Path, results: Path, dtype: str = "float32"):
    from sae_specialists.core.settings import load_settings, schema_path

    return load_settings(
        {
            "model": {"path": str(root / "model")},
            "device": args.device,
            "dtype": dtype,
            "saes": {"bench": {"path": str(root / "saes" / "layer{layer}")}},
            "layers": list(LAYERS),
            "texts": str(root),
            "results_dir": str(results),
            "extraction": {"batch_size": args.batch_size, "chunk_size": None},
        },
        schema_path(),
    )


def child_engine(args) -> dict:
    """The extraction job (JSONL -> shards), with a matmul probe before the first window and
    after every window (probe time not counted): per-window efficiency against the rate the
    machine gave at that moment (the machine is shared; its load drifts)."""
    import pyarrow.parquet as pq
    import torch

    from sae_specialists.extraction.loading import ModelAndSAEs
    from sae_specialists.extraction.pipeline import extract_category

    torch.set_num_threads(args.threads)
    root, corpus = Path(args.root), Path(args.corpus)
    results = Path(args.results)
    settings = _settings(args, root, results, args.dtype)
    acts = {
        ("bench", layer): str(
            results / f"activations/sae=bench/layer={layer}/"
            "category=bench/chunk=00000/activations.parquet"
        )
        for layer in LAYERS
    }
    tokens_out = str(results / "tokens/category=bench/chunk=00000/tokens.parquet")
    shapes = workload_shapes(
        args.shape, args.d_sae, args.batch_tokens, args.encode_rows, args.n_blocks, len(LAYERS)
    )
    probes, windows = [], []

    def on_window(result):
        lengths = [len(t.ids) for t in result.tokenized]
        flops = forward_flops(lengths, args.shape, args.n_blocks) + sae_flops(
            sum(lengths), args.shape["d_model"], args.d_sae, len(LAYERS)
        )
        windows.append(
            {
                "texts": len(lengths),
                "tokens": sum(lengths),
                "rows": result.rows,  # activation rows of the window (extraction/memory.py)
                "seconds": result.seconds,
                "gflops": flops / result.seconds / 1e9,
                "tflop": flops / 1e12,
                "peak_rss_mb_so_far": peak_rss_mb(),
            }
        )
        if args.progress:  # one line per window: a long run cut short still leaves evidence
            with open(args.progress, "a") as handle:
                handle.write(
                    json.dumps(
                        {
                            "window": len(windows),
                            "texts_so_far": sum(w["texts"] for w in windows),
                            **windows[-1],
                            "when": time.strftime("%H:%M:%S"),
                        }
                    )
                    + "\n"
                )
        probes.append(matmul_probe(shapes) if args.probe else None)

    t0 = time.perf_counter()
    first_probe = matmul_probe(shapes) if args.probe else None  # before any window is timed
    summary = extract_category(
        ModelAndSAEs.of(settings),
        settings.extraction,
        "bench",
        str(corpus),
        tokens_out,
        acts,
        chunk=0,
        n_chunks=1,
        window_tokens=args.window_tokens,
        encode_rows=args.encode_rows,
        on_window=on_window,
    )
    total = time.perf_counter() - t0
    rows = {layer: pq.ParquetFile(path).metadata.num_rows for (_, layer), path in acts.items()}
    if args.probe:
        all_probes = [first_probe, *probes]
        for i, w in enumerate(windows):
            rate = (all_probes[i]["mix_gflops"] + all_probes[i + 1]["mix_gflops"]) / 2
            w["probe_mix_gflops"] = rate
            w["fraction"] = w["gflops"] / rate
    return {
        **summary,
        "total_s": total,
        "rows": rows,
        "peak_rss_mb": peak_rss_mb(),
        "dtype": args.dtype,
        "batch_size": args.batch_size,
        "windows": windows,
        "probes": [first_probe, *probes] if args.probe else [],
        "loadavg": os.getloadavg(),
    }


def _batch_tensors(tokenized, batch, pad_id):
    import torch

    lengths = [len(tokenized[i].ids) for i in batch]
    tokens = torch.full((len(batch), max(lengths)), pad_id)
    mask = torch.zeros_like(tokens)
    for row, i in enumerate(batch):
        tokens[row, : lengths[row]] = torch.tensor(tokenized[i].ids)
        mask[row, : lengths[row]] = 1
    return tokens, mask, lengths


def notebook_way(model, saes, tokenized, batch_size: int) -> dict:
    """The study notebook's method: per SAE, one full run_with_cache per batch (every hook
    cached, logits computed) and a dense sae.encode; dense features to numpy; per-text means."""
    import numpy as np
    import torch

    from sae_specialists.extraction.tokenize import length_sorted_batches

    out = {}
    with torch.no_grad():
        for s in saes:
            values = np.zeros((len(tokenized), s.d_sae), dtype=np.float32)
            pad = model.tokenizer.pad_token_id
            for batch in length_sorted_batches(tokenized, batch_size):
                tokens, mask, lengths = _batch_tensors(tokenized, batch, pad)
                _, cache = model.run_with_cache(tokens, attention_mask=mask)
                dense = s.sae.encode(cache[s.hook_name]).cpu().numpy()  # [batch, seq, d_sae]
                for row, i in enumerate(batch):
                    values[i] = dense[row, : lengths[row]].mean(0)
                del cache, dense
            out[s.layer] = values
    return out


def child_compare(args) -> dict:
    """Engine vs notebook way on the same texts, interleaved group by group (alternating which
    goes first) so that both see the same machine load; model and SAEs loaded once."""
    import torch

    from sae_specialists.extraction.corpus import iter_texts
    from sae_specialists.extraction.engine import Extractor, tune_allocator
    from sae_specialists.extraction.models import load_local_model
    from sae_specialists.extraction.saes import load_sae
    from sae_specialists.extraction.tokenize import tokenize_texts

    tune_allocator()
    torch.set_num_threads(args.threads)
    root = Path(args.root)
    model = load_local_model(root / "model")
    saes = [
        load_sae("bench", layer, {"path": str(root / "saes" / f"layer{layer}")}) for layer in LAYERS
    ]
    tokenized = tokenize_texts(model, list(iter_texts(args.corpus, "bench")))
    engine = Extractor(model, saes, args.batch_size, encode_rows=args.encode_rows)
    engine.run(tokenized[:4])  # warm-up (allocations, weights paged in)
    notebook_way(model, saes, tokenized[:2], args.batch_size)
    times = {"engine": 0.0, "notebook": 0.0}
    groups = []
    for g, lo in enumerate(range(0, len(tokenized), args.group)):
        group = tokenized[lo : lo + args.group]
        order = ("engine", "notebook") if g % 2 == 0 else ("notebook", "engine")
        row = {"texts": len(group), "tokens": sum(len(t.ids) for t in group)}
        for method in order:
            t = time.perf_counter()
            if method == "engine":
                engine.run(group)
            else:
                notebook_way(model, saes, group, args.batch_size)
            row[method] = time.perf_counter() - t
            times[method] += row[method]
        groups.append(row)
    n_tokens = sum(len(t.ids) for t in tokenized)
    return {
        "texts": len(tokenized),
        "tokens": n_tokens,
        "engine_s": times["engine"],
        "notebook_s": times["notebook"],
        "speedup": times["notebook"] / times["engine"],
        "groups": groups,
        "loadavg": os.getloadavg(),
    }


CHILDREN = {"matmul": child_matmul, "engine": child_engine, "compare": child_compare}


def run_child(step: str, **kwargs) -> dict:
    payload = json.dumps(kwargs)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", step, "--payload", payload]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TQDM_DISABLE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{step} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- orchestration --------------------------------------------------------------------------------


def append_record(record: dict, log: str) -> None:
    """Stamp the end load average and append ``record`` as one JSON line to ``log``."""
    record["machine"]["loadavg_end"] = os.getloadavg()
    with open(log, "a") as handle:
        handle.write(json.dumps(record) + "\n")
    print(f"appended to {log}")


def machine_info() -> dict:
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
    }
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        mem = next(line for line in open("/proc/meminfo") if line.startswith("MemTotal"))
        info["mem_gib"] = round(int(mem.split()[1]) / 2**20, 1)
    except OSError:
        pass
    from importlib.metadata import version

    info["versions"] = {
        n: version(n) for n in ("torch", "transformer-lens", "sae-lens", "numpy", "pyarrow")
    }
    return info


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--child")
    p.add_argument("--payload")
    p.add_argument(
        "--steps",
        nargs="+",
        default=["matmul", "engine", "compare"],
        choices=["matmul", "engine", "compare", "rss"],
    )
    p.add_argument("--texts", type=int, default=2000)
    p.add_argument(
        "--compare-texts",
        type=int,
        default=200,
        help="the first N texts: engine and notebook way both run on them",
    )
    p.add_argument("--group", type=int, default=32, help="compare: texts per interleaved group")
    p.add_argument("--rss-texts", type=int, nargs="+", default=[2500, 5000, 10000, 20000])
    p.add_argument(
        "--small",
        action="store_true",
        help="d_model 128 / d_sae 4096 model (cheap compute, same code path)",
    )
    p.add_argument("--no-probe", action="store_true", help="engine: no matmul probes")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--d-sae", type=int, default=24576)
    p.add_argument("--l0", type=int, default=64)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--window-tokens", type=int, default=None)
    p.add_argument("--encode-rows", type=int, default=None)
    p.add_argument("--workdir", default=os.environ.get("SAE_BENCH_DIR", "/tmp/sae-bench"))
    p.add_argument("--log", default=str(HERE / "results.jsonl"))
    args = p.parse_args()

    if args.child:
        payload = argparse.Namespace(**json.loads(args.payload))
        print(json.dumps(CHILDREN[args.child](payload)))
        return

    shape = SMALL if args.small else GPT2
    d_sae = 4096 if args.small else args.d_sae
    tag = f"{'small' if args.small else 'gpt2'}-{d_sae}-l0{args.l0}"
    work = Path(args.workdir)
    root = work / tag
    root.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    build_assets(root, shape, d_sae, args.l0)
    print(f"assets {root} ready ({time.perf_counter() - t:.0f} s)", flush=True)
    from sae_specialists.extraction.encode import ENCODE_ROWS
    from sae_specialists.extraction.tokenize import WINDOW_TOKENS

    encode_rows = args.encode_rows or ENCODE_ROWS.get(args.device, 8192)
    n_blocks = max(LAYERS)  # resid_pre of block 11 = resid_post of block 10: 11 blocks run
    record = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "tag": tag,
        "machine": machine_info(),
        "args": {k: v for k, v in vars(args).items() if k not in ("child", "payload")},
        "window_tokens": args.window_tokens or WINDOW_TOKENS,
        "encode_rows": encode_rows,
    }

    corpus = work / f"corpus-{args.texts}.jsonl"
    write_corpus(corpus, args.texts, shape["d_vocab"])
    stats = corpus_stats(corpus)
    record["corpus"] = {k: v for k, v in stats.items() if k != "lengths"}
    batch_tokens = int(args.batch_size * stats["tokens"] / stats["texts"])
    common = dict(
        root=str(root),
        threads=args.threads,
        batch_size=args.batch_size,
        device=args.device,
        dtype=args.dtype,
        window_tokens=args.window_tokens,
        encode_rows=encode_rows,
        shape=shape,
        d_sae=d_sae,
        n_blocks=n_blocks,
        batch_tokens=batch_tokens,
        probe=not args.no_probe,
    )

    def engine_run(path, st, label, probe=True):
        progress = str(work / f"progress-{tag}-{label}.jsonl")
        Path(progress).unlink(missing_ok=True)
        print(f"per-window progress: {progress}", flush=True)
        res = run_child(
            "engine",
            corpus=str(path),
            results=str(work / f"out-{tag}-{label}"),
            progress=progress,
            **{**common, "probe": probe and not args.no_probe},
        )
        flops = forward_flops(st["lengths"], shape, n_blocks) + sae_flops(
            st["tokens"], shape["d_model"], d_sae, len(LAYERS)
        )
        res["tokens_per_s"] = res["n_tokens"] / res["work_s"]
        res["gflops"] = flops / res["work_s"] / 1e9
        res["tflop"] = flops / 1e12
        res["l0_mean"] = {k: v / res["n_tokens"] for k, v in res["rows"].items()}
        return res

    if "matmul" in args.steps:
        record["matmul"] = run_child("matmul", **common)
        print("matmul", json.dumps(record["matmul"]), flush=True)
    if "engine" in args.steps:
        res = engine_run(corpus, stats, "main")
        record["engine"] = res
        fractions = sorted(w["fraction"] for w in res["windows"] if "fraction" in w)
        summary = {
            "tokens_per_s": res["tokens_per_s"],
            "gflops": res["gflops"],
            "peak_rss_mb": res["peak_rss_mb"],
            "work_s": res["work_s"],
            "window_fractions": fractions,
            "median_fraction": fractions[len(fractions) // 2] if fractions else None,
            "overall_fraction": (
                res["gflops"] / (sum(p["mix_gflops"] for p in res["probes"]) / len(res["probes"]))
            )
            if res["probes"]
            else None,
        }
        record["engine_summary"] = summary
        print("engine", json.dumps(summary), flush=True)
    if "compare" in args.steps:
        sub = work / f"corpus-{args.texts}-first{args.compare_texts}.jsonl"
        if not sub.exists():
            with open(corpus) as src, open(sub, "w") as dst:
                for i, line in enumerate(src):
                    if i >= args.compare_texts:
                        break
                    dst.write(line)
        res = run_child("compare", corpus=str(sub), group=args.group, **common)
        record["compare"] = res
        print(
            f"compare on {res['texts']} texts ({res['tokens']} tokens): engine "
            f"{res['engine_s']:.1f} s, notebook way {res['notebook_s']:.1f} s: "
            f"{res['speedup']:.2f}x",
            flush=True,
        )
    if "rss" in args.steps:
        series = []
        for n in args.rss_texts:
            c = work / f"corpus-{n}.jsonl"
            write_corpus(c, n, shape["d_vocab"])
            st = corpus_stats(c)
            res = engine_run(c, st, f"rss{n}", probe=False)
            series.append(
                {
                    "texts": n,
                    "tokens": st["tokens"],
                    "peak_rss_mb": res["peak_rss_mb"],
                    "work_s": res["work_s"],
                    "tokens_per_s": res["tokens_per_s"],
                    "l0_mean": res["l0_mean"],
                    "rows": res["rows"],
                    "peak_rss_mb_by_window": [
                        round(w["peak_rss_mb_so_far"]) for w in res["windows"]
                    ],
                }
            )
            print(
                f"rss: {n} texts ({st['tokens']} tokens): peak RSS {res['peak_rss_mb']:.0f} MB, "
                f"{res['work_s']:.0f} s",
                flush=True,
            )
        record["rss_series"] = series
    append_record(record, args.log)


if __name__ == "__main__":
    main()

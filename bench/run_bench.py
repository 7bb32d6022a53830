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
- ``baseline``: the study notebook's way on the same texts and batches: per SAE, one full
  ``run_with_cache`` (every hook cached, unembedding computed) and a dense ``sae.encode``, dense
  features to numpy, per-text means;
- ``rss``: peak RSS of extraction jobs as the corpus grows (see ``--rss-texts``).

Usage (a full-size step takes minutes on 2 CPU cores; scale with --texts):
    python bench/run_bench.py --texts 2000 --baseline-texts 200 --steps matmul engine baseline
    python bench/run_bench.py --steps rss --rss-texts 2500 5000 10000 20000 --small
Results are printed and appended as JSON lines to ``--log`` (default bench/results.jsonl).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "src"))

GPT2 = dict(n_layers=12, d_model=768, n_heads=12, d_head=64, d_mlp=3072, d_vocab=50257,
            n_ctx=1024, act_fn="gelu_new", normalization_type="LN")
SMALL = dict(n_layers=12, d_model=128, n_heads=4, d_head=32, d_mlp=512, d_vocab=50257,
             n_ctx=1024, act_fn="gelu_new", normalization_type="LN")
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
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=BOS, unk_token=BOS,
                            pad_token=BOS, model_max_length=1024).save_pretrained(str(out))
    return AutoTokenizer.from_pretrained(str(out))


def build_assets(root: Path, shape: dict, d_sae: int, l0: int, seed: int = 0) -> None:
    import torch
    from sae_lens import StandardSAE, StandardSAEConfig
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from sae_specialists.models import save_local_model

    if (root / "done.json").exists():
        return
    torch.manual_seed(seed)
    model_dir = root / "model"
    tokenizer = build_tokenizer(shape["d_vocab"], model_dir)
    cfg = HookedTransformerConfig(**shape, seed=seed, model_name="bench-gpt2-shaped",
                                  original_architecture="GPT2LMHeadModel",
                                  default_prepend_bos=True)
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
        sae_cfg = StandardSAEConfig(d_in=shape["d_model"], d_sae=d_sae,
                                    apply_b_dec_to_input=True)
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
    return {"texts": len(lengths), "tokens": sum(lengths), "min_len": min(lengths),
            "max_len": max(lengths), "lengths": lengths}


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
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_matmul(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    d, m, v, s = args.shape["d_model"], args.shape["d_mlp"], args.d_sae, args.batch_tokens
    e = args.encode_rows
    shapes = {  # (M, K, N): name -> shape, weight per token in the workload
        "qkv": (s, d, 3 * d),
        "attn_out": (s, d, d),
        "mlp_in": (s, d, m),
        "mlp_out": (s, m, d),
        "sae_encode": (e, d, v),
    }
    n_blocks, n_saes = args.n_blocks, len(LAYERS)
    weights = {"qkv": n_blocks, "attn_out": n_blocks, "mlp_in": n_blocks, "mlp_out": n_blocks,
               "sae_encode": n_saes}
    rates = {}
    for name, (mm, k, n) in {**shapes, "peak_4096x768x24576": (4096, d, v)}.items():
        a, b = torch.randn(mm, k), torch.randn(k, n)
        out = torch.empty(mm, n)
        torch.mm(a, b, out=out)
        best = 0.0
        reps = max(3, int(2e10 / (2 * mm * k * n)))
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(reps):
                torch.mm(a, b, out=out)
            best = max(best, reps * 2 * mm * k * n / (time.perf_counter() - t))
        rates[name] = best / 1e9
    # FLOP-weighted rate of the workload's GEMMs (time the same GEMM mix takes alone)
    per_token = {name: 2 * k * n * weights[name] for name, (_, k, n) in shapes.items()}
    total = sum(per_token.values())
    time_per_token = sum(per_token[name] / (rates[name] * 1e9) for name in shapes)
    return {"rates_gflops": rates, "workload_mix_gflops": total / time_per_token / 1e9,
            "peak_gflops": max(rates.values()), "threads": args.threads}


def _settings(args, root: Path, results: Path, dtype: str = "float32"):
    from sae_specialists.settings import check_config

    return check_config({
        "model": {"path": str(root / "model")},
        "device": args.device,
        "dtype": dtype,
        "saes": {"bench": {"path": str(root / "saes" / "layer{layer}")}},
        "layers": list(LAYERS),
        "texts": str(root),
        "results_dir": str(results),
        "extraction": {"batch_size": args.batch_size, "chunk_size": None},
    })


def child_engine(args) -> dict:
    import torch

    from sae_specialists.pipeline import extract_category

    torch.set_num_threads(args.threads)
    root, corpus = Path(args.root), Path(args.corpus)
    results = Path(args.results)
    settings = _settings(args, root, results, args.dtype)
    acts = {("bench", layer): str(results / f"activations/sae=bench/layer={layer}/"
                                  "category=bench/chunk=00000/activations.parquet")
            for layer in LAYERS}
    tokens_out = str(results / "tokens/category=bench/chunk=00000/tokens.parquet")
    t0 = time.perf_counter()
    summary = extract_category(settings, "bench", str(corpus), tokens_out, acts, chunk=0,
                               n_chunks=1, window_tokens=args.window_tokens,
                               encode_rows=args.encode_rows)
    total = time.perf_counter() - t0
    import pyarrow.parquet as pq

    rows = {layer: pq.ParquetFile(path).metadata.num_rows for (_, layer), path in acts.items()}
    return {**summary, "total_s": total, "rows": rows, "peak_rss_mb": peak_rss_mb(),
            "dtype": args.dtype, "batch_size": args.batch_size}


def child_baseline(args) -> dict:
    """The study notebook's method: per SAE, full run_with_cache + dense encode per batch."""
    import numpy as np
    import torch

    from sae_specialists.corpus import iter_texts
    from sae_specialists.extract import length_sorted_batches, tokenize_texts
    from sae_specialists.models import load_local_model
    from sae_specialists.saes import load_sae

    torch.set_num_threads(args.threads)
    root = Path(args.root)
    t0 = time.perf_counter()
    model = load_local_model(root / "model")
    saes = [load_sae("bench", layer, {"path": str(root / "saes" / f"layer{layer}")})
            for layer in LAYERS]
    load_s = time.perf_counter() - t0
    texts = list(iter_texts(args.corpus, "bench"))
    tokenized = tokenize_texts(model, texts)
    batches = length_sorted_batches(tokenized, args.batch_size)
    per_text = {}
    t0 = time.perf_counter()
    with torch.no_grad():
        for s in saes:
            values = np.zeros((len(tokenized), s.d_sae), dtype=np.float32)
            for batch in batches:
                lengths = [len(tokenized[i].ids) for i in batch]
                tokens = torch.full((len(batch), max(lengths)), model.tokenizer.pad_token_id)
                mask = torch.zeros_like(tokens)
                for row, i in enumerate(batch):
                    tokens[row, : lengths[row]] = torch.tensor(tokenized[i].ids)
                    mask[row, : lengths[row]] = 1
                _, cache = model.run_with_cache(tokens, attention_mask=mask)  # every hook
                dense = s.sae.encode(cache[s.hook_name]).cpu().numpy()  # [batch, seq, d_sae]
                for row, i in enumerate(batch):
                    values[i] = dense[row, : lengths[row]].mean(0)
                del cache, dense
            per_text[s.layer] = float((values > 0).sum())
    work_s = time.perf_counter() - t0
    n_tokens = sum(len(t.ids) for t in tokenized)
    return {"work_s": work_s, "load_s": load_s, "n_texts": len(tokenized), "n_tokens": n_tokens,
            "peak_rss_mb": peak_rss_mb(), "nonzero_per_text_values": per_text}


CHILDREN = {"matmul": child_matmul, "engine": child_engine, "baseline": child_baseline}


def run_child(step: str, **kwargs) -> dict:
    payload = json.dumps(kwargs)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", step, "--payload", payload]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TQDM_DISABLE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{step} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- orchestration --------------------------------------------------------------------------------


def machine_info() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "cpus": os.cpu_count(), "loadavg_start": os.getloadavg()}
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

    info["versions"] = {n: version(n) for n in ("torch", "transformer-lens", "sae-lens",
                                                  "numpy", "pyarrow")}
    return info


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--child")
    p.add_argument("--payload")
    p.add_argument("--steps", nargs="+", default=["matmul", "engine", "baseline"],
                   choices=["matmul", "engine", "baseline", "rss"])
    p.add_argument("--texts", type=int, default=2000)
    p.add_argument("--baseline-texts", type=int, default=200,
                   help="first N texts: the baseline and the engine both run on them")
    p.add_argument("--rss-texts", type=int, nargs="+", default=[2500, 5000, 10000, 20000])
    p.add_argument("--small", action="store_true",
                   help="d_model 128 / d_sae 4096 model for the rss step (see RESULTS.md)")
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
    from sae_specialists.extract import ENCODE_ROWS

    encode_rows = args.encode_rows or ENCODE_ROWS.get(args.device, 8192)
    n_blocks = max(LAYERS)  # resid_pre of block 11 = resid_post of block 10: 11 blocks run
    common = dict(root=str(root), threads=args.threads, batch_size=args.batch_size,
                  device=args.device, dtype=args.dtype, window_tokens=args.window_tokens,
                  encode_rows=args.encode_rows)
    record = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "tag": tag, "machine": machine_info(),
              "args": {k: v for k, v in vars(args).items() if k not in ("child", "payload")}}

    def matmul(texts_stats):
        batch_tokens = int(args.batch_size * texts_stats["tokens"] / texts_stats["texts"])
        return run_child("matmul", threads=args.threads, shape=shape, d_sae=d_sae,
                         batch_tokens=batch_tokens, encode_rows=encode_rows, n_blocks=n_blocks)

    def engine_run(corpus, stats, label):
        res = run_child("engine", corpus=str(corpus), results=str(work / f"out-{tag}-{label}"),
                        **common)
        flops = forward_flops(stats["lengths"], shape, n_blocks) + sae_flops(
            stats["tokens"], shape["d_model"], d_sae, len(LAYERS))
        res["tokens_per_s"] = res["n_tokens"] / res["work_s"]
        res["gflops"] = flops / res["work_s"] / 1e9
        res["tflop"] = flops / 1e12
        res["l0_mean"] = {k: v / res["n_tokens"] for k, v in res["rows"].items()}
        return res

    corpus = work / f"corpus-{args.texts}.jsonl"
    write_corpus(corpus, args.texts, shape["d_vocab"])
    stats = corpus_stats(corpus)
    record["corpus"] = {k: v for k, v in stats.items() if k != "lengths"}

    if "matmul" in args.steps or "engine" in args.steps:
        record["matmul_before"] = matmul(stats)
        print("matmul", json.dumps(record["matmul_before"]), flush=True)
    if "engine" in args.steps:
        res = engine_run(corpus, stats, "main")
        record["engine"] = res
        record["matmul_after"] = matmul(stats)
        best = max(record["matmul_before"]["workload_mix_gflops"],
                   record["matmul_after"]["workload_mix_gflops"])
        peak = max(record["matmul_before"]["peak_gflops"], record["matmul_after"]["peak_gflops"])
        record["engine_fraction_of_workload_mix"] = res["gflops"] / best
        record["engine_fraction_of_peak"] = res["gflops"] / peak
        print("engine", json.dumps({k: v for k, v in res.items()}), flush=True)
        print(f"engine: {res['tokens_per_s']:.0f} tokens/s, {res['gflops']:.1f} GFLOP/s = "
              f"{100 * res['gflops'] / best:.0f}% of the workload-mix matmul rate "
              f"({best:.1f}), {100 * res['gflops'] / peak:.0f}% of peak ({peak:.1f}); "
              f"peak RSS {res['peak_rss_mb']:.0f} MB", flush=True)
    if "baseline" in args.steps:
        sub = work / f"corpus-{args.texts}-first{args.baseline_texts}.jsonl"
        if not sub.exists():
            with open(corpus) as src, open(sub, "w") as dst:
                for i, line in enumerate(src):
                    if i >= args.baseline_texts:
                        break
                    dst.write(line)
        sub_stats = corpus_stats(sub)
        eng = engine_run(sub, sub_stats, "subset")
        base = run_child("baseline", corpus=str(sub), **common)
        base["tokens_per_s"] = base["n_tokens"] / base["work_s"]
        record["comparison"] = {"texts": sub_stats["texts"], "tokens": sub_stats["tokens"],
                                "engine": eng, "notebook_way": base,
                                "speedup": base["work_s"] / eng["work_s"]}
        print(f"comparison on {sub_stats['texts']} texts: engine {eng['work_s']:.1f} s, "
              f"notebook way {base['work_s']:.1f} s: {base['work_s'] / eng['work_s']:.2f}x; "
              f"peak RSS {eng['peak_rss_mb']:.0f} vs {base['peak_rss_mb']:.0f} MB", flush=True)
    if "rss" in args.steps:
        series = []
        for n in args.rss_texts:
            c = work / f"corpus-{n}.jsonl"
            write_corpus(c, n, shape["d_vocab"])
            st = corpus_stats(c)
            res = engine_run(c, st, f"rss{n}")
            series.append({"texts": n, "tokens": st["tokens"], "peak_rss_mb": res["peak_rss_mb"],
                           "work_s": res["work_s"], "tokens_per_s": res["tokens_per_s"],
                           "rows": res["rows"]})
            print(f"rss: {n} texts ({st['tokens']} tokens): peak RSS {res['peak_rss_mb']:.0f} MB, "
                  f"{res['work_s']:.0f} s", flush=True)
        record["rss_series"] = series
    record["machine"]["loadavg_end"] = os.getloadavg()
    with open(args.log, "a") as handle:
        handle.write(json.dumps(record) + "\n")
    print(f"appended to {args.log}")


if __name__ == "__main__":
    main()

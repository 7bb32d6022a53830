"""Analysis-stage benchmark (run by hand, never in CI): time and memory of ``snakemake analysis``
on a large synthetic corpus, without running a model.

1. Builds a study directory under ``--workdir`` (default /tmp/sae-analysis-bench):
   ``texts/<category>.jsonl`` (7 categories, ``--texts`` texts in all, split evenly; each text is
   19-199 random words ``t<id>`` of the benchmark's word-level tokenizer, so 20-200 positions with
   BOS), and ``config.yaml`` (model and SAE family ``res`` = the random GPT-2-shaped assets of
   bench/run_bench.py, layers 6/8/10/11, chunk_size 1000, methodology off).
2. Writes the extraction's outputs directly, in the data contract of the extraction job
   (``pipeline.extract_category``), with the package's own code wherever it does not need the
   model: the same chunks (``corpus.iter_texts``, so the same text ids), the same windows of
   ~32,768 tokens (``extract.tokenized_windows``, one Parquet row group per window), the same
   table builders (``extract._tokens_table`` / ``_activation_table``), the same writer
   (``pipeline.AtomicParquetWriter``) and metadata (``extract.shard_metadata``). Only the
   activations are synthetic (seeded, per (category, chunk, layer)):

   - each token, BOS included, gets about ``--l0`` features; feature firing rates are
     log-normal (log10 sd 1, capped at 95 % of tokens): a few features fire on most tokens,
     most fire on fewer than 1 in 5,000. Values: a per-feature scale x a per-layer scale
     (growing with depth) x log-normal noise, positive float32;
   - one planted specialist feature per (category, layer): on 85 % of the category's texts it
     fires on half of the non-BOS positions with values ~12-27 (per-text mean above the 5.0
     threshold); on 3 % of other texts just as strongly; on every other token with probability
     0.02 and small values. The last category (``urls``) has none below layer 10, so some
     layers have a category without a specialist;
   - one BOS-only feature per layer with value ~100 x the layer scale (it must never be a
     strongest feature: BOS is not counted).

   Shards are written after the texts (and the model/SAE files), so Snakemake sees extraction
   as up to date; a dry run (``snakemake -n analysis``) checks that no extraction job is
   scheduled before anything is timed.
3. Removes earlier analysis outputs, runs ``snakemake analysis --configfile <cfg> --cores N``
   from the repository root (HF_HUB_OFFLINE=1), timed, and reads each job's final log line
   ``<what>: done in X s, peak RSS Y MB`` from ``{results}/logs/analysis/*.log``. The largest
   RSS of the whole Snakemake process tree (Snakemake itself included) is
   ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` taken in a small wrapper process that only runs
   Snakemake (taken in this process it would include the generator and the dry run).

Usage:
    python bench/analysis_bench.py --texts 700 --l0 16        # quick check
    python bench/analysis_bench.py --texts 2000
    python bench/analysis_bench.py --texts 20000              # the target size (GBs of shards)
    python bench/analysis_bench.py --skip-generate            # analysis again on the same shards
The Snakemake output of the run is kept in ``<workdir>/snakemake-analysis.log``. Results are
printed and appended as one JSON line to ``--log`` (default bench/results.jsonl).
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
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "src"))

from run_bench import (  # noqa: E402
    GPT2,
    LAYERS,
    append_record,
    build_assets,
    machine_info,
    peak_rss_mb,
)

CATEGORIES = ("conversational", "formal", "math", "non_english", "python", "social", "urls")
FAMILY = "res"
D_SAE = 24576
ASSETS_L0 = 64  # L0 the random SAEs were calibrated for (irrelevant here: nothing is encoded)
MIN_LEN, MAX_LEN = 20, 200  # positions per text, BOS included
DEFAULT_ASSETS = f"/tmp/sae-bench/gpt2-{D_SAE}-l0{ASSETS_L0:02d}"  # run_bench.py's tag
ANALYSIS_OUTPUTS = (
    "per_text",
    "tables",
    "charts",
    "token_views",
    "logs/analysis",
    "summary.md",
    "index.html",
)
DONE = re.compile(
    r"(?:INFO|WARNING|ERROR) (?P<what>.+): done in (?P<s>[0-9.]+) s, "
    r"peak RSS (?P<rss>[0-9]+) MB"
)

# synthetic activations
RATE_LOG10_SD = 1.0  # spread of the log10 firing rates
RATE_CAP = 3.0  # Poisson rate cap: a feature fires on at most 1 - e^-3 = 95 % of tokens
PLANTED_TEXTS = 0.85  # fraction of the category's texts where its specialist fires
PLANTED_POSITIONS = 0.5  # ...on this fraction of their non-BOS positions
CROSS_TEXTS = 0.03  # fraction of other categories' texts where it fires just as strongly
LEAK_POSITIONS = 0.02  # elsewhere: this fraction of non-BOS positions, small values
NO_SPECIALIST_BELOW = 10  # the last category gets no planted feature below this layer


def layer_scale(layer: int) -> float:
    """Activation magnitudes grow with depth (1.0 at layer 6 -> 3.0 at layer 11)."""
    return 1.0 + 0.4 * (layer - 6)


# -- paths of the data contract (workflow/rules/common.smk) ------------------------------------


def tokens_chunk_shard(results: Path, category: str, chunk: int) -> Path:
    return results / f"tokens/category={category}/chunk={chunk:05d}/tokens.parquet"


def activation_chunk_shard(
    results: Path, family: str, layer: int, category: str, chunk: int
) -> Path:
    return (
        results / f"activations/sae={family}/layer={layer}/category={category}/"
        f"chunk={chunk:05d}/activations.parquet"
    )


# -- study directory ----------------------------------------------------------------------------


def make_config(work: Path, assets: Path) -> dict:
    return {
        "model": {"path": str(assets / "model")},
        "device": "cpu",
        "dtype": "float32",
        "saes": {FAMILY: {"path": str(assets / "saes" / "layer{layer}")}},
        "layers": list(LAYERS),
        "texts": str(work / "texts"),
        "results_dir": str(work / "results"),
        "extraction": {
            "batch_size": 8,
            "chunk_size": 1000,
            "max_tokens": None,
            "long_texts": "truncate",
            "text_field": "text",
        },
        "analysis": {
            "aggregation": "mean",
            "threshold": 5.0,
            "candidates": 5,
            "include_bos": False,
        },
        # dashboards: schema defaults (not part of the `analysis` target)
        "methodology": {"enabled": False},
    }


def category_sizes(n_texts: int) -> dict[str, int]:
    base, extra = divmod(n_texts, len(CATEGORIES))
    return {c: base + (i < extra) for i, c in enumerate(CATEGORIES)}


def write_texts(texts_dir: Path, n_texts: int, d_vocab: int, seed: int) -> dict[str, int]:
    import numpy as np

    texts_dir.mkdir(parents=True, exist_ok=True)
    sizes = category_sizes(n_texts)
    for ci, (category, n) in enumerate(sizes.items()):
        rng = np.random.default_rng([seed, 11, ci])
        lengths = rng.integers(MIN_LEN, MAX_LEN + 1, n) - 1  # words; + BOS = positions
        tmp = texts_dir / f".{category}.jsonl.tmp"
        with open(tmp, "w") as handle:
            for length in lengths:
                ids = rng.integers(0, d_vocab - 1, length)  # d_vocab - 1 is BOS
                handle.write(json.dumps({"text": " ".join(f"t{i}" for i in ids)}) + "\n")
        os.replace(tmp, texts_dir / f"{category}.jsonl")
    return sizes


# -- synthetic activations ------------------------------------------------------------------------


class LayerModel:
    """Feature statistics of one layer: firing rates, value scales, planted features."""

    def __init__(self, layer: int, d_sae: int, l0: float, seed: int, n_categories: int):
        import numpy as np

        rng = np.random.default_rng([seed, 7, layer])
        base = 10.0 ** rng.normal(0.0, RATE_LOG10_SD, d_sae)
        lo, hi = -30.0, 10.0  # log(c): rates c * base (capped) give l0 distinct features/token
        for _ in range(100):
            mid = (lo + hi) / 2
            rates = np.minimum(np.exp(mid) * base, RATE_CAP)
            if (1.0 - np.exp(-rates)).sum() < l0:
                lo = mid
            else:
                hi = mid
        self.rates = np.minimum(np.exp(lo) * base, RATE_CAP)
        self.total_rate = float(self.rates.sum())
        self.cdf = np.cumsum(self.rates / self.total_rate)
        self.cdf[-1] = 1.0
        self.feature_scale = rng.lognormal(0.0, 0.5, d_sae)
        rarest = np.argsort(base, kind="stable")[: n_categories + 1]
        self.planted = [int(f) for f in rarest[:n_categories]]
        if layer < NO_SPECIALIST_BELOW:
            self.planted[-1] = -1
        self.bos_feature = int(rarest[n_categories])
        self.layer, self.d_sae, self.scale = layer, d_sae, layer_scale(layer)
        self.planted_median = 12.0 + 3.0 * (layer - 6)  # 12 at layer 6 -> 27 at layer 11

    def window(self, rng, lengths, category_index: int):
        """(text index, token_pos, feature, activation) of a window's texts of one category,
        ordered by (text, pos, feature), one row per distinct (token, feature)."""
        import numpy as np

        lengths = np.asarray(lengths, dtype=np.int64)
        n, total = len(lengths), int(lengths.sum())
        d = self.d_sae
        text_of = np.repeat(np.arange(n, dtype=np.int32), lengths)
        pos = (np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)).astype(np.int32)
        token = np.arange(total, dtype=np.int64)
        inner = pos > 0
        keys, values = [], []

        def add(tokens, feature: int, median: float, sigma: float):
            keys.append(tokens * d + feature)
            values.append(median * rng.lognormal(0.0, sigma, tokens.size))

        # planted features first: np.unique keeps the first occurrence of a (token, feature)
        for ci, feature in enumerate(self.planted):
            if feature < 0:
                continue
            strong_texts = rng.random(n) < (PLANTED_TEXTS if ci == category_index else CROSS_TEXTS)
            strong = strong_texts[text_of] & inner & (rng.random(total) < PLANTED_POSITIONS)
            add(token[strong], feature, self.planted_median, 0.5)
            leak = ~strong & inner & (rng.random(total) < LEAK_POSITIONS)
            add(token[leak], feature, 2.0, 0.5)
        add(token[pos == 0], self.bos_feature, 100.0 * self.scale, 0.1)
        counts = rng.poisson(self.total_rate, total)
        drawn = np.minimum(
            np.searchsorted(self.cdf, rng.random(int(counts.sum())), side="right"), d - 1
        )
        keys.append(np.repeat(token, counts) * d + drawn)
        values.append(self.feature_scale[drawn] * self.scale * rng.lognormal(0.0, 0.6, drawn.size))
        del drawn, counts
        unique, first = np.unique(np.concatenate(keys), return_index=True)
        value = np.concatenate(values)[first].astype(np.float32)
        tok = unique // d
        return (text_of[tok], pos[tok], (unique % d).astype(np.int32), value)


def newest_mtime(paths) -> float:
    return max(os.stat(p).st_mtime for p in paths)


def generate_shards(config: dict, l0: float, seed: int) -> dict:
    """Write every tokens and activation shard of the config, as the extraction jobs would."""
    import numpy as np
    import pyarrow as pa
    from transformers import AutoTokenizer

    from sae_specialists.core.contract import TOKENS_SCHEMA
    from sae_specialists.core.io import AtomicParquetWriter
    from sae_specialists.core.settings import load_settings, schema_path
    from sae_specialists.extraction.corpus import (
        CorpusOptions,
        chunk_bounds,
        chunk_counts,
        iter_texts,
    )
    from sae_specialists.extraction.engine import (
        ACTIVATIONS_DICT_SCHEMA,
        _activation_table,
        _tokens_table,
        shard_metadata,
    )
    from sae_specialists.extraction.pipeline import _chunk_meta
    from sae_specialists.extraction.saes import LoadedSAE
    from sae_specialists.extraction.texts import list_categories
    from sae_specialists.extraction.tokenize import WINDOW_TOKENS, tokenized_windows

    settings = load_settings(config, schema_path())
    ex = settings.extraction
    results = Path(settings.results_dir)
    model_dir = Path(settings.model.path)
    model_cfg = json.loads((model_dir / "config.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    # what tokenized_windows needs of a HookedTransformer
    model = SimpleNamespace(tokenizer=tokenizer, cfg=SimpleNamespace(n_ctx=model_cfg["n_ctx"]))
    saes = {}
    for layer in settings.layers:
        source = settings.saes[FAMILY].source(layer)
        cfg = json.loads((Path(source["path"]) / "cfg.json").read_text())
        fake = SimpleNamespace(cfg=SimpleNamespace(d_sae=cfg["d_sae"], d_in=cfg["d_in"]))
        saes[layer] = LoadedSAE(
            FAMILY, layer, fake, cfg["metadata"]["hook_name"], dict(source), None
        )
    d_sae = saes[settings.layers[0]].d_sae
    categories = list_categories(settings.texts)
    options = CorpusOptions(ex.text_field, ex.text_split)
    n_chunks = chunk_counts(categories, ex.chunk_size, options)
    models = {
        layer: LayerModel(layer, d_sae, l0, seed, len(categories)) for layer in settings.layers
    }
    decoded: dict[int, str] = {}
    stats = {
        "texts": 0,
        "tokens": 0,
        "windows": 0,
        "chunks": 0,
        "rows": {layer: 0 for layer in settings.layers},
        "planted": {
            layer: dict(zip(categories, models[layer].planted, strict=True))
            for layer in settings.layers
        },
        "bos_feature": {layer: models[layer].bos_feature for layer in settings.layers},
    }
    t0 = time.perf_counter()
    for ci, (category, text_file) in enumerate(categories.items()):
        for chunk in range(n_chunks[category]):
            start, stop = chunk_bounds(chunk, ex.chunk_size)
            writers = {}
            try:
                writers["tokens"] = AtomicParquetWriter(
                    tokens_chunk_shard(results, category, chunk), TOKENS_SCHEMA
                )
                for layer in settings.layers:
                    writers[layer] = AtomicParquetWriter(
                        activation_chunk_shard(results, FAMILY, layer, category, chunk),
                        ACTIVATIONS_DICT_SCHEMA,
                    )
                rngs = {
                    layer: np.random.default_rng([seed, ci, chunk, layer])
                    for layer in settings.layers
                }
                texts = iter_texts(text_file, category, options, start, stop)
                n_texts = n_tokens = 0
                for window in tokenized_windows(
                    model, texts, ex.max_tokens, ex.long_texts, WINDOW_TOKENS
                ):
                    ids = pa.array([t.text.text_id for t in window], pa.string())
                    lengths = [len(t.ids) for t in window]
                    for layer in settings.layers:  # the engine's order: (family, layer)
                        columns = models[layer].window(rngs[layer], lengths, ci)
                        table = _activation_table([columns], ids)
                        writers[layer].write(table)
                        stats["rows"][layer] += table.num_rows
                        del table, columns
                    writers["tokens"].write(_tokens_table(tokenizer, window, decoded))
                    n_texts += len(window)
                    n_tokens += sum(lengths)
                    stats["windows"] += 1
                chunk_meta = _chunk_meta(chunk, n_chunks[category], ex.chunk_size)
                for layer in settings.layers:
                    meta = shard_metadata(
                        settings.model.spec,
                        saes[layer],
                        category,
                        n_texts,
                        n_tokens,
                        settings.dtype,
                        chunk_meta,
                    )
                    writers.pop(layer).commit(meta)
                writers.pop("tokens").commit()
            finally:
                for writer in writers.values():
                    writer.abort()
            stats["texts"] += n_texts
            stats["tokens"] += n_tokens
            stats["chunks"] += 1
            print(
                f"  {category} chunk {chunk:05d}: {n_texts} texts, {n_tokens} tokens "
                f"({time.perf_counter() - t0:.0f} s so far)",
                flush=True,
            )
    stats["seconds"] = time.perf_counter() - t0
    return stats


def ensure_shards_newer(config: dict) -> int:
    """Shards must be newer than the extraction inputs (texts, model and SAE files); touch any
    that is not (none when generated in order). Returns how many were touched."""
    from sae_specialists.extraction.models import model_input_files
    from sae_specialists.extraction.saes import sae_input_files

    inputs = [*Path(config["texts"]).glob("*.jsonl"), *model_input_files(config["model"])]
    for layer in config["layers"]:
        inputs += sae_input_files({"path": config["saes"][FAMILY]["path"].format(layer=layer)})
    newest = newest_mtime(inputs)
    results = Path(config["results_dir"])
    touched = 0
    for shard in [*results.glob("tokens/**/*.parquet"), *results.glob("activations/**/*.parquet")]:
        if shard.stat().st_mtime <= newest:
            os.utime(shard)
            touched += 1
    return touched


# -- Snakemake ------------------------------------------------------------------------------------


def snakemake_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "snakemake"
    return [str(exe) if exe.exists() else (shutil.which("snakemake") or "snakemake")]


def snakemake_env() -> dict:
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
    }


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of Snakemake's (dry-run) output: rule -> count."""
    counts, inside = {}, False
    for line in output.splitlines():
        if line.strip().startswith("Job stats"):
            inside, counts = True, {}
            continue
        if inside:
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                counts[parts[0]] = int(parts[1])
            elif parts and parts[0] == "total":
                inside = False
    return counts


def dry_run(cfg_path: Path, cores: int) -> dict[str, int]:
    cmd = [*snakemake_cmd(), "-n", "analysis", "--configfile", str(cfg_path), "--cores", str(cores)]
    proc = subprocess.run(cmd, cwd=REPO, env=snakemake_env(), capture_output=True, text=True)
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise RuntimeError(f"dry run failed ({' '.join(cmd)}):\n{output[-5000:]}")
    counts = job_counts(output)
    if "extract_activations" in counts:
        why = subprocess.run(
            [*cmd, "-r"], cwd=REPO, env=snakemake_env(), capture_output=True, text=True
        )
        raise RuntimeError(
            f"Snakemake wants to rerun extraction ({counts['extract_activations']} jobs): the "
            f"synthetic shards are not seen as up to date. Reasons:\n"
            f"{(why.stdout + why.stderr)[-5000:]}"
        )
    return counts


def run_analysis(cfg_path: Path, cores: int, log_path: Path) -> dict:
    """``snakemake analysis`` timed, through a small wrapper process (``--child-run``).

    The wrapper reports ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` after Snakemake exits: the
    largest RSS of any process of the Snakemake tree (the Snakemake process itself or a job).
    It is measured there, not here, because a child spawned from this process (which holds the
    generator's memory) starts with this process's peak RSS as its ru_maxrss.
    """
    cmd = [*snakemake_cmd(), "analysis", "--configfile", str(cfg_path), "--cores", str(cores)]
    out = log_path.with_suffix(".json")
    out.unlink(missing_ok=True)
    subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child-run",
            json.dumps({"cmd": cmd, "log": str(log_path), "out": str(out)}),
        ],
        check=True,
    )
    return {"cmd": " ".join(cmd), **json.loads(out.read_text())}


def child_run(payload: str) -> None:
    """Wrapper process: run Snakemake (output to the log), write rc, wall time and max RSS."""
    spec = json.loads(payload)
    with open(spec["log"], "w") as log:
        t0 = time.perf_counter()
        rc = subprocess.call(
            spec["cmd"], cwd=REPO, env=snakemake_env(), stdout=log, stderr=subprocess.STDOUT
        )
        wall = time.perf_counter() - t0
    maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    Path(spec["out"]).write_text(
        json.dumps({"rc": rc, "wall_s": wall, "children_maxrss_mb": maxrss})
    )


def job_logs(results: Path) -> list[dict]:
    jobs = []
    for path in sorted((results / "logs" / "analysis").glob("*.log")):
        lines = path.read_text(errors="replace").splitlines()
        done = [m for m in map(DONE.search, lines) if m]
        job = {"log": path.name}
        if done:
            m = done[-1]
            job.update(what=m["what"], seconds=float(m["s"]), peak_rss_mb=int(m["rss"]))
        else:
            job.update(
                what=None, seconds=None, peak_rss_mb=None, last_line=lines[-1] if lines else ""
            )
        if any(" failed" in line for line in lines):
            job["failed"] = True
        jobs.append(job)
    return jobs


# -- measurements ---------------------------------------------------------------------------------


def parquet_stats(paths) -> dict:
    import pyarrow.parquet as pq

    paths = list(paths)
    return {
        "files": len(paths),
        "rows": sum(pq.ParquetFile(p).metadata.num_rows for p in paths),
        "bytes": sum(os.stat(p).st_size for p in paths),
    }


def shard_stats(results: Path, layers) -> dict:
    out = {"tokens": parquet_stats(results.glob("tokens/**/*.parquet")), "activations": {}}
    for layer in layers:
        out["activations"][layer] = parquet_stats(
            results.glob(f"activations/sae={FAMILY}/layer={layer}/**/*.parquet")
        )
    out["bytes"] = out["tokens"]["bytes"] + sum(a["bytes"] for a in out["activations"].values())
    return out


def per_text_stats(results: Path, layers) -> dict:
    out = {}
    for layer in layers:
        path = results / f"per_text/sae={FAMILY}/layer={layer}.parquet"
        if path.exists():
            out[layer] = parquet_stats([path])
    return out


def specialists_overview(results: Path) -> list[str]:
    """One line per layer: categories with a specialist (to see the tables have content)."""
    path = results / "tables" / "specialists.parquet"
    if not path.exists():
        return []
    import polars as pl

    df = pl.read_parquet(path)
    lines = []
    for (sae, layer), group in df.sort("layer", "category").group_by(
        ["sae", "layer"], maintain_order=True
    ):
        found = group.filter(pl.col("has_specialist"))
        lines.append(
            f"  {sae} layer {layer}: {found.height}/{group.height} categories have a "
            f"specialist ("
            + ", ".join(
                f"{c}={f}" for c, f in zip(found["category"], found["feature"], strict=True)
            )
            + ")"
        )
    return lines


def mb(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:,.1f} MiB"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--texts", type=int, default=20000, help="texts in all (7 categories)")
    p.add_argument("--l0", type=float, default=64, help="distinct features per token (mean)")
    p.add_argument("--workdir", default="/tmp/sae-analysis-bench")
    p.add_argument(
        "--assets",
        default=DEFAULT_ASSETS,
        help="model + SAE dirs (run_bench.build_assets(GPT2, 24576, 64); built if missing)",
    )
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--skip-generate",
        action="store_true",
        help="reuse the texts and shards already in --workdir",
    )
    p.add_argument("--log", default=str(HERE / "results.jsonl"))
    p.add_argument("--child-run", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child_run:
        child_run(args.child_run)
        return

    import yaml

    work = Path(args.workdir)
    cfg_path, meta_path = work / "config.yaml", work / "generated.json"
    record = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "tag": None,
        "machine": machine_info(),
        "args": {k: v for k, v in vars(args).items() if k != "child_run"},
    }
    from importlib.metadata import version

    record["machine"]["versions"].update({n: version(n) for n in ("polars", "snakemake")})
    if args.skip_generate:
        if not meta_path.exists():
            sys.exit(f"--skip-generate: {meta_path} does not exist; run once without it.")
        generated = json.loads(meta_path.read_text())
        config = yaml.safe_load(cfg_path.read_text())
        print(f"reusing {generated['texts']} texts (l0 {generated['l0']}) in {work}")
    else:
        assets = Path(args.assets)
        t = time.perf_counter()
        build_assets(assets, GPT2, D_SAE, ASSETS_L0)
        print(f"assets {assets} ready ({time.perf_counter() - t:.0f} s)", flush=True)
        for name in ("texts", "results", "generated.json"):
            target = work / name
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
        work.mkdir(parents=True, exist_ok=True)
        config = make_config(work, assets)
        cfg_path.write_text(yaml.safe_dump(config, sort_keys=False))
        write_texts(Path(config["texts"]), args.texts, GPT2["d_vocab"], args.seed)
        print(f"generating shards for {args.texts} texts, L0 {args.l0:g} ...", flush=True)
        stats = generate_shards(config, args.l0, args.seed)
        stats["peak_rss_mb"] = peak_rss_mb()
        generated = {"texts": args.texts, "l0": args.l0, "seed": args.seed, **stats}
        meta_path.write_text(json.dumps(generated))
        print(
            f"shards written in {stats['seconds']:.0f} s (generator peak RSS "
            f"{stats['peak_rss_mb']:.0f} MB)",
            flush=True,
        )
    record["tag"] = f"analysis-{generated['texts']}t-l0{generated['l0']:g}"
    record["generated"] = generated
    results = Path(config["results_dir"])
    record["touched_shards"] = ensure_shards_newer(config)
    for name in ANALYSIS_OUTPUTS:
        target = results / name
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)

    t = time.perf_counter()
    record["dry_run_jobs"] = dry_run(cfg_path, args.cores)
    record["dry_run_s"] = time.perf_counter() - t
    print(
        f"dry run ({record['dry_run_s']:.1f} s): no extraction job; jobs {record['dry_run_jobs']}",
        flush=True,
    )
    sm_log = work / "snakemake-analysis.log"
    print(f"running snakemake analysis --cores {args.cores} (output: {sm_log}) ...", flush=True)
    run = run_analysis(cfg_path, args.cores, sm_log)
    record["snakemake"] = run
    layers = config["layers"]
    record["shards"] = shard_stats(results, layers)
    record["per_text"] = per_text_stats(results, layers)
    jobs = job_logs(results)
    record["jobs"] = jobs
    rss = [j["peak_rss_mb"] for j in jobs if j["peak_rss_mb"] is not None]
    record["max_job_rss_mb"] = max(rss, default=None)
    if run["rc"] != 0:
        record["error"] = sm_log.read_text(errors="replace")[-4000:]
    sh = record["shards"]
    print(f"\n== analysis benchmark: {generated['texts']} texts, L0 {generated['l0']:g} ==")
    print(
        f"texts {generated['texts']:,}, tokens {sh['tokens']['rows']:,} "
        f"({sh['tokens']['files']} tokens shards)"
    )
    for layer in layers:
        a = sh["activations"][layer]
        pt = record["per_text"].get(layer)
        per_text = f"{pt['rows']:,} ({mb(pt['bytes'])})" if pt else "none"
        print(
            f"layer {layer:>2}: activation rows {a['rows']:,} "
            f"({a['rows'] / max(sh['tokens']['rows'], 1):.1f}/token, {mb(a['bytes'])}); "
            f"per-text rows {per_text}"
        )
    print(f"shard bytes: {mb(sh['bytes'])}")
    print(f"{'job log':<40} {'seconds':>8} {'peak RSS MB':>12}")
    for j in jobs:
        secs = f"{j['seconds']:.2f}" if j["seconds"] is not None else "-"
        peak = j["peak_rss_mb"] if j["peak_rss_mb"] is not None else "-"
        print(f"{j['log']:<40} {secs:>8} {peak!s:>12}" + ("  FAILED" if j.get("failed") else ""))
    print(
        f"max job RSS (job logs): {record['max_job_rss_mb']} MB; max RSS of the Snakemake "
        f"process tree (RUSAGE_CHILDREN): {run['children_maxrss_mb']:.0f} MB"
    )
    print(f"snakemake analysis: rc {run['rc']}, wall {run['wall_s']:.1f} s")
    for line in specialists_overview(results):
        print(line)
    if run["rc"] != 0:
        print(f"\nsnakemake failed; last lines of {sm_log}:\n{record['error'][-2500:]}")
    append_record(record, args.log)
    if run["rc"] != 0:
        sys.exit(1)


if __name__ == "__main__":
    main()

"""End to end on the offline demo (planted specialists), through the real workflow in a
temporary copy: every analysis table equals an independent numpy computation from the shards,
planted features are recovered, the planted BOS-only feature never appears, a threshold change
schedules analysis jobs only, and the Snakemake report builds.

Slow (the demo's extraction runs first: about 1.5 minutes on 2 cores)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
import yaml
from test_analysis_fixture import reference_tables

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = ROOT / "config" / "demo.yaml"
COPY = ["Snakefile", "workflow", "scripts", "config", "resources"]

pytestmark = pytest.mark.skipif(
    not DEMO_CONFIG.exists() or not (ROOT / "workflow" / "rules" / "demo.smk").exists(),
    reason="offline demo not present",
)


def snakemake(work: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=900)
    if proc.returncode:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-5000:]}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    work = tmp_path_factory.mktemp("demo")
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, work / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, work / name)
    snakemake(work, "--configfile", "config/demo.yaml")
    cfg = yaml.safe_load((work / "config" / "demo.yaml").read_text())
    return work, cfg


def reference(results: Path, family: str, layer: int, include_bos: bool, aggregation: str):
    """Dense per-text values straight from the shards with pyarrow + numpy (no polars)."""
    cats = sorted(p.name.split("=", 1)[1] for p in (results / "tokens").iterdir())
    order, n_counted = [], []
    for cat in cats:
        tok = pq.read_table(results / "tokens" / f"category={cat}" / "tokens.parquet").to_pydict()
        seen: dict[str, int] = {}
        for tid, bos in zip(tok["text_id"], tok["bos"], strict=True):
            if tid not in seen:
                seen[tid] = 0
                order.append((tid, cat))
            seen[tid] += int(include_bos or not bos)
        n_counted += [seen[t] for t in seen]
    idx = {t: i for i, (t, _) in enumerate(order)}
    d_sae = None
    sums: dict[tuple[int, int], float] = {}
    maxes: dict[tuple[int, int], float] = {}
    for cat in cats:
        path = (
            results
            / "activations"
            / f"sae={family}"
            / f"layer={layer}"
            / f"category={cat}"
            / "activations.parquet"
        )
        d_sae = json.loads(pq.read_schema(path).metadata[b"sae_specialists"])["d_sae"]
        tok = pq.read_table(results / "tokens" / f"category={cat}" / "tokens.parquet").to_pydict()
        bos_pos = {
            (t, p)
            for t, p, b in zip(tok["text_id"], tok["token_pos"], tok["bos"], strict=True)
            if b
        }
        act = pq.read_table(path).to_pydict()
        for t, p, f, a in zip(
            act["text_id"], act["token_pos"], act["feature"], act["activation"], strict=True
        ):
            if not include_bos and (t, p) in bos_pos:
                continue
            key = (idx[t], f)
            sums[key] = sums.get(key, 0.0) + float(a)
            maxes[key] = max(maxes.get(key, 0.0), float(a))
    V = np.zeros((len(order), d_sae))
    for (i, f), s in sums.items():
        V[i, f] = s / n_counted[i] if aggregation == "mean" else maxes[(i, f)]
    return order, V


def check_tables(results: Path, cfg: dict, threshold: float):
    a = cfg["analysis"]
    spec = pl.read_parquet(results / "tables" / "specialists.parquet")
    cands = pl.read_parquet(results / "tables" / "candidates.parquet")
    strongest = pl.read_parquet(results / "tables" / "strongest.parquet")
    frequent = pl.read_parquet(results / "tables" / "frequent.parquet")
    selective = pl.read_parquet(results / "tables" / "selective.parquet")
    for family in cfg["saes"]:
        for layer in cfg["layers"]:
            order, V = reference(results, family, layer, a["include_bos"], a["aggregation"])
            ref = reference_tables(order, V, threshold, a["candidates"])
            sel = (pl.col("sae") == family) & (pl.col("layer") == layer)
            got = strongest.filter(sel).select("rank", "feature", "text_id").rows()
            assert got == [(r[0], r[1], r[3]) for r in ref["strongest"]]
            np.testing.assert_allclose(
                strongest.filter(sel)["peak"].to_numpy(),
                [r[2] for r in ref["strongest"]],
                rtol=1e-6,
            )
            got = frequent.filter(sel).select("rank", "feature", "n_texts").rows()
            assert got == [r[:3] for r in ref["frequent"]]
            got = selective.filter(sel).select("rank", "feature", "n_above").rows()
            assert got == [r[:3] for r in ref["selective"]]
            got = cands.filter(sel).select("category", "feature", "n_in", "n_out", "score").rows()
            assert got == [
                (r["category"], r["feature"], r["n_in"], r["n_out"], r["score"])
                for r in ref["candidates"]
            ]
            for row in spec.filter(sel).iter_rows(named=True):
                best = ref["specialists"][row["category"]]
                assert (row["feature"], row["score"], row["has_specialist"]) == (
                    best["feature"],
                    best["score"],
                    best["score"] > 0,
                )
    return spec


def test_demo_tables_match_independent_computation_and_plan(demo):
    work, cfg = demo
    results = work / cfg["results_dir"]
    spec = check_tables(results, cfg, cfg["analysis"]["threshold"])
    plan = json.loads((Path(work) / cfg["demo"]["dir"] / "planted.json").read_text())
    frequent = pl.read_parquet(results / "tables" / "frequent.parquet")
    for layer in cfg["layers"]:
        planted = plan["layers"][str(layer)]
        sel = pl.col("layer") == layer
        # every specialist found is the planted one of its category
        for row in spec.filter(sel & pl.col("has_specialist")).iter_rows(named=True):
            assert row["feature"] == planted[row["category"]], row
        assert spec.filter(sel & pl.col("has_specialist")).height >= 4
        top = frequent.filter(sel & (pl.col("rank") == 1)).row(0, named=True)
        assert top["feature"] == planted["frequent"] and top["coverage"] == 1.0
        # the planted BOS-only feature is in the shards (at BOS) but in no analysis output
        bos = planted["bos"]
        shard = pl.read_parquet(
            results
            / "activations"
            / "sae=res"
            / f"layer={layer}"
            / "category=python"
            / "activations.parquet"
        )
        assert shard.filter((pl.col("feature") == bos) & (pl.col("token_pos") == 0)).height
        per_text = pl.read_parquet(results / "per_text" / "sae=res" / f"layer={layer}.parquet")
        assert bos not in per_text["feature"].to_list()
        for table in (results / "tables").glob("*.parquet"):
            df = pl.read_parquet(table).filter(pl.col("layer") == layer)
            assert bos not in df["feature"].drop_nulls().to_list(), table
    summary = (results / "summary.md").read_text()
    assert "Specialists found per layer" in summary


def test_demo_threshold_change_reruns_only_analysis(demo):
    work, cfg = demo
    results = work / cfg["results_dir"]
    new = dict(cfg, analysis=dict(cfg["analysis"], threshold=cfg["analysis"]["threshold"] + 3))
    (work / "config" / "demo_threshold.yaml").write_text(yaml.safe_dump(new))
    dry = snakemake(work, "--configfile", "config/demo_threshold.yaml", "-n")
    stats = dry.stdout.split("Job stats:")[1]
    jobs = set(re.findall(r"^(\w+)\s+\d+\s*$", stats, flags=re.M)) - {"total"}
    assert jobs == {
        "all",
        "analysis_specialist_tables",
        "analysis_specialist_charts",
        "analysis_summary",
        "analysis_token_views",
        "analysis_index",
    }, dry.stdout
    before = pl.read_parquet(results / "tables" / "specialists.parquet")
    snakemake(work, "--configfile", "config/demo_threshold.yaml")
    after = check_tables(results, new, new["analysis"]["threshold"])
    assert before["score"].to_list() != after["score"].to_list()
    dry = snakemake(work, "--configfile", "config/demo_threshold.yaml", "-n")
    assert "Nothing to be done" in dry.stdout + dry.stderr


def test_demo_report(demo):
    work, _ = demo
    snakemake(work, "--configfile", "config/demo.yaml", "--report", "report.html")
    assert (work / "report.html").stat().st_size > 10_000

"""Same config -> same tables, whatever the batch size, --cores or job order."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from conftest import demo_config, resource_texts, run_snakemake, write_texts


@pytest.fixture(scope="module")
def three_runs(demo_assets, tmp_path_factory):
    root = tmp_path_factory.mktemp("determinism")
    texts = write_texts(root / "texts", resource_texts(("python", "math", "social"), n=3))
    runs = {}
    # every stage but the two whose jobs only rerun the model on the same texts (causal layer
    # jobs, the methodology's model variants): each model-loading job costs ~10 s of imports,
    # three runs of them would be most of this module's time; their determinism is the seeded
    # computations' own (tests/test_causal_*.py, tests/test_methodology_*.py). One extraction
    # job for every category (tokens included): per_family writes the same shards bit for bit
    # (tests/test_comparison_workflow.py)
    quieter = {"causal": {"enabled": False}, "methodology": {"model_variants": False}}
    for name, batch_size, cores in (("a", 4, "2"), ("b", 4, "1"), ("c", 1, "2")):
        extraction = {"batch_size": batch_size, "jobs": "single"}
        config = demo_config(demo_assets, texts, root / name, extraction=extraction, **quieter)
        run_snakemake(root / f"wf_{name}", "--cores", cores, config=config)
        runs[name] = root / name
    return runs


def is_float(dtype) -> bool:
    while dtype.is_nested():
        dtype = dtype.inner
    return dtype.is_float()


def tables(results):
    files = sorted(
        p.relative_to(results) for p in results.rglob("*.parquet") if "assets" not in p.parts
    )
    assert any(str(f).startswith("tables/") for f in files), files
    return files


def test_same_batch_size_any_cores_gives_identical_tables(three_runs):
    a, b = three_runs["a"], three_runs["b"]
    assert tables(a) == tables(b)
    for name in tables(a):
        left, right = pl.read_parquet(a / name), pl.read_parquet(b / name)
        assert left.equals(right), name


def test_other_batch_size_gives_the_same_tables_up_to_float32_rounding(three_runs):
    a, c = three_runs["a"], three_runs["c"]
    assert tables(a) == tables(c)
    for name in tables(a):
        left, right = pl.read_parquet(a / name), pl.read_parquet(c / name)
        assert left.columns == right.columns and left.height == right.height, name
        floats = [c for c, t in left.schema.items() if is_float(t)]
        exact = [c for c in left.columns if c not in floats]
        assert left.select(exact).equals(right.select(exact)), name
        for column in floats:
            lhs, rhs = left[column], right[column]
            while lhs.dtype.is_nested():  # list-of-float columns (e.g. dashboard windows)
                assert lhs.list.len().equals(rhs.list.len()), f"{name}:{column}"
                lhs, rhs = lhs.explode(), rhs.explode()
            np.testing.assert_allclose(
                lhs.to_numpy(), rhs.to_numpy(), rtol=1e-5, atol=1e-5, err_msg=f"{name}:{column}"
            )

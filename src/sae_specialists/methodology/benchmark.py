"""Time the bootstrap at the study's size: ``python -m sae_specialists.methodology.benchmark``.

Synthetic per-text values shaped like the study (7 categories x 10 texts, 24,576 SAE features):
each text has ``--active`` random active features (mean-aggregated SAE activations: mostly
small, a few above the threshold) plus one planted specialist per category. ``--active 24576``
makes every feature active on every text (the dense worst case). Prints seconds per layer for
``--resamples`` resamples (default 1000).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import polars as pl

from ..analysis.bootstrap import bootstrap_table
from ..analysis.dense import LayerData

D_SAE = 24_576


def synthetic_layer(
    n_categories: int = 7,
    per_category: int = 10,
    d_sae: int = D_SAE,
    active: int = 1500,
    seed: int = 0,
) -> LayerData:
    rng = np.random.default_rng(seed)
    n = n_categories * per_category
    values = np.zeros((n, d_sae))
    for i in range(n):
        cols = rng.choice(d_sae, size=min(active, d_sae), replace=False)
        values[i, cols] = rng.exponential(0.8, size=len(cols))
    cat_index = np.repeat(np.arange(n_categories), per_category)
    for c in range(n_categories):  # one planted specialist per category, weaker in some texts
        values[cat_index == c, c] = rng.uniform(3.0, 12.0, per_category)
    used = np.flatnonzero(values.max(axis=0) > 0)
    return LayerData(
        sae="synthetic",
        layer=0,
        values=values[:, used],
        features=used.astype(np.int64),
        text_ids=[f"t{i}" for i in range(n)],
        categories=[f"cat{c}" for c in range(n_categories)],
        cat_index=cat_index,
    )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--active", type=int, default=1500, help="active features per text")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threshold", type=float, default=5.0)
    ap.add_argument("--candidates", type=int, default=5)
    args = ap.parse_args(argv)
    data = synthetic_layer(active=args.active)
    print(
        f"{data.n_texts} texts x {D_SAE} features, {data.values.shape[1]} active in some text, "
        f"{int((data.values > 0).sum(axis=1).mean())} per text; {args.resamples} resamples"
    )
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        table = bootstrap_table([data], args.threshold, args.candidates, args.resamples, seed=0)
        times.append(time.perf_counter() - t0)
    print(
        f"bootstrap: {min(times):.2f} s per layer (best of {args.repeats}; all: "
        + ", ".join(f"{t:.2f}" for t in times)
        + ")"
    )
    with pl.Config(tbl_cols=8, tbl_rows=10):
        print(
            table.select(
                "category",
                "feature",
                "score",
                "stability",
                "score_ci_low",
                "score_ci_high",
                "found_rate",
            )
        )


if __name__ == "__main__":
    main()

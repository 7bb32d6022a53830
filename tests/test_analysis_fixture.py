"""Hand-made shards following the data contract, and an independent numpy reference of every
analysis definition (dense matrices, plain loops), for the analysis tests."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


@dataclass
class Fixture:
    """texts: ordered list of (text_id, category); acts[text_id]: dense (n_positions, d_sae)
    per-token activations, row 0 = BOS; tokens[text_id]: decoded token strings."""

    d_sae: int
    texts: list[tuple[str, str]] = field(default_factory=list)
    acts: dict[str, np.ndarray] = field(default_factory=dict)
    tokens: dict[str, list[str]] = field(default_factory=dict)

    def add(self, text_id: str, category: str, acts: np.ndarray, tokens: list[str] | None = None):
        acts = np.asarray(acts, dtype=np.float32)
        assert acts.ndim == 2 and acts.shape[1] == self.d_sae
        self.texts.append((text_id, category))
        self.acts[text_id] = acts
        self.tokens[text_id] = tokens or ["<|endoftext|>"] + [
            f" t{i}" for i in range(1, acts.shape[0])
        ]

    @property
    def categories(self) -> list[str]:
        return sorted({c for _, c in self.texts})

    def ordered_texts(self) -> list[tuple[str, str]]:
        """Text order of the analysis: categories alphabetically, then insertion order."""
        return [t for c in self.categories for t in self.texts if t[1] == c]

    def write(
        self,
        root: Path,
        family: str = "res",
        layer: int = 0,
        neuronpedia_id=None,
        chunk_size: int | None = None,
    ) -> dict[str, dict[str, list[Path]]]:
        """Write tokens and activation shards under ``root`` (the results-dir layout: one shard
        per chunk of ``chunk_size`` texts of a category). Returns {"tokens"|"activations":
        {category: [shard per chunk, in text order]}}."""
        paths: dict[str, dict[str, list[Path]]] = {"tokens": {}, "activations": {}}
        for cat in self.categories:
            ids = [tid for tid, c in self.texts if c == cat]
            size = chunk_size or max(1, len(ids))
            chunks = [ids[i : i + size] for i in range(0, len(ids), size)] or [[]]
            for k, chunk in enumerate(chunks):
                label = f"chunk={k:05d}"
                tpath = root / "tokens" / f"category={cat}" / label / "tokens.parquet"
                apath = (
                    root
                    / "activations"
                    / f"sae={family}"
                    / f"layer={layer}"
                    / f"category={cat}"
                    / label
                    / "activations.parquet"
                )
                self._write_chunk(chunk, cat, tpath, apath, family, layer, neuronpedia_id)
                paths["tokens"].setdefault(cat, []).append(tpath)
                paths["activations"].setdefault(cat, []).append(apath)
        return paths

    @staticmethod
    def flat(paths: dict[str, list[Path]]) -> list[Path]:
        return [p for ps in paths.values() for p in ps]

    def _write_chunk(self, ids, cat, tpath, apath, family, layer, neuronpedia_id):
        rows = {k: [] for k in ("text_id", "category", "token_pos", "token_id", "token", "bos")}
        arows = {k: [] for k in ("text_id", "token_pos", "feature", "activation")}
        for tid in ids:
            a = self.acts[tid]
            for pos in range(a.shape[0]):
                rows["text_id"].append(tid)
                rows["category"].append(cat)
                rows["token_pos"].append(pos)
                rows["token_id"].append(pos)
                rows["token"].append(self.tokens[tid][pos])
                rows["bos"].append(pos == 0)
                for f in np.flatnonzero(a[pos] > 0):
                    arows["text_id"].append(tid)
                    arows["token_pos"].append(pos)
                    arows["feature"].append(int(f))
                    arows["activation"].append(float(a[pos, f]))
        tok = pa.table(
            {
                "text_id": pa.array(rows["text_id"], pa.string()),
                "category": pa.array(rows["category"], pa.string()),
                "token_pos": pa.array(rows["token_pos"], pa.int32()),
                "token_id": pa.array(rows["token_id"], pa.int32()),
                "token": pa.array(rows["token"], pa.string()),
                "token_bytes": pa.array([t.encode() for t in rows["token"]], pa.binary()),
                "bos": pa.array(rows["bos"], pa.bool_()),
            }
        )
        tpath.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(tok, tpath)
        act = pa.table(
            {
                "text_id": pa.array(arows["text_id"], pa.string()),
                "token_pos": pa.array(arows["token_pos"], pa.int32()),
                "feature": pa.array(arows["feature"], pa.int32()),
                "activation": pa.array(arows["activation"], pa.float32()),
            }
        )
        meta = {
            "model": "fixture",
            "family": family,
            "layer": layer,
            "release": None,
            "sae_id": None,
            "sae_path": None,
            "hook_name": f"blocks.{layer}.hook_resid_pre",
            "d_sae": self.d_sae,
            "d_in": 4,
            "neuronpedia_id": neuronpedia_id,
            "category": cat,
            "versions": {},
        }
        act = act.replace_schema_metadata({b"sae_specialists": json.dumps(meta).encode()})
        apath.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(act, apath)


# -- numpy reference ------------------------------------------------------------------------


def reference_values(fx: Fixture, aggregation: str, include_bos: bool):
    """Dense (texts x d_sae) per-text values and per-token maxima, rows in text order."""
    order = fx.ordered_texts()
    V = np.zeros((len(order), fx.d_sae))
    M = np.zeros((len(order), fx.d_sae))
    for i, (tid, _) in enumerate(order):
        a = fx.acts[tid].astype(np.float64)
        counted = a if include_bos else a[1:]
        if counted.shape[0] == 0:
            continue
        V[i] = counted.mean(axis=0) if aggregation == "mean" else counted.max(axis=0)
        M[i] = counted.max(axis=0)
    return order, V, M


def _sort_key_first(items, key):
    return sorted(items, key=key)[0]


def reference_tables(order, V, threshold, k, top=10):
    """Every table of the issue, by plain loops over the dense matrix V."""
    cats = np.array([c for _, c in order])
    tids = [t for t, _ in order]
    n, d = V.shape
    out = {}
    # strongest: peak desc, feature asc; text: first in text order attaining the peak
    rows = []
    for f in range(d):
        if (V[:, f] > 0).any():
            peak = V[:, f].max()
            i = int(np.flatnonzero(V[:, f] == peak)[0])
            rows.append((f, peak, tids[i], cats[i]))
    rows.sort(key=lambda r: (-r[1], r[0]))
    out["strongest"] = [(r + 1, *row) for r, row in enumerate(rows[:top])]
    # frequent: n_texts desc, peak desc, feature asc
    rows = []
    for f in range(d):
        nt = int((V[:, f] > 0).sum())
        if nt:
            rows.append((f, nt, nt / n, V[:, f].max()))
    rows.sort(key=lambda r: (-r[1], -r[3], r[0]))
    out["frequent"] = [(r + 1, *row) for r, row in enumerate(rows[:top])]
    # selective: n_above asc, peak desc, feature asc
    rows = []
    for f in range(d):
        na = int((V[:, f] > threshold).sum())
        if na:
            rows.append((f, na, V[:, f].max()))
    rows.sort(key=lambda r: (r[1], -r[2], r[0]))
    out["selective"] = [(r + 1, *row) for r, row in enumerate(rows[:top])]
    # candidates and specialists
    cands, specs = [], {}
    for c in sorted(set(cats)):
        inside = cats == c
        peaks = V[inside].max(axis=0)
        active = [f for f in range(d) if peaks[f] > 0]
        active.sort(key=lambda f: (-peaks[f], f))
        best = None
        for rank, f in enumerate(active[:k], start=1):
            n_in = int((V[inside, f] > threshold).sum())
            n_out = int((V[~inside, f] > threshold).sum())
            row = dict(
                category=c,
                candidate_rank=rank,
                feature=f,
                peak=peaks[f],
                n_in=n_in,
                n_out=n_out,
                score=n_in - n_out,
                n_category=int(inside.sum()),
            )
            cands.append(row)
            if best is None or (-row["score"], -row["peak"], f) < (
                -best["score"],
                -best["peak"],
                best["feature"],
            ):
                best = row
        specs[c] = best
    out["candidates"] = cands
    out["specialists"] = specs
    return out

"""The method ablation on a planted fixture where padding dilutes short texts and averaging
before encoding kills features (exact counts, by construction and by an independent dense
computation), and the model-needing variants against a naive notebook-style computation."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sae_specialists.core.contract import TOKENS_SCHEMA
from sae_specialists.methodology import variants as mv
from sae_specialists.methodology.ablation import ablation_table, method_id

# -- the planted fixture ----------------------------------------------------------------------
# Residual dims: 0,1,2 = marker of category A,B,C; 3 = "a real token"; 4 = "a pad token".
# A marker token of X: e_X + e_3; a plain token: e_3; BOS: 0; a pad position: e_4.
# SAE (relu(x W + b)): f0,f1,f2 read dims 0,1,2 (18 x - 6: 12 on a marker, 0 otherwise);
# f3 reads dim 3 (3 x - 1: 2 on every real token); f4 reads dim 4 (16 x - 6: 10 on a pad);
# f5 never fires.
# Category X (4 texts; Y = the next category, cyclically):
#   long  = BOS + 20 X-markers + 20 Y-markers (41 positions, the category's longest);
#   short = BOS + 3 X-markers + 3 plain tokens (7 positions; padded: 34 pads), 3 of them.
CATS = ("A", "B", "C")
D_IN, D_SAE = 5, 6
W = np.zeros((D_IN, D_SAE))
B = np.zeros(D_SAE)
for _c in range(3):
    W[_c, _c], B[_c] = 18.0, -6.0
W[3, 3], B[3] = 3.0, -1.0
W[4, 4], B[4] = 16.0, -6.0
B[5] = -1.0
PAD = np.eye(D_IN)[4]


def encode(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).reshape(-1, D_IN)
    return np.maximum(x @ W + B, 0.0)


def token(marker: int | None) -> np.ndarray:
    v = np.eye(D_IN)[3].copy()
    if marker is not None:
        v[marker] = 1.0
    return v


def planted_texts() -> dict[str, list[tuple[str, np.ndarray]]]:
    """category -> [(text_id, residuals [n_positions, D_IN], BOS first)]"""
    out = {}
    for c, cat in enumerate(CATS):
        nxt = (c + 1) % 3
        long = [np.zeros(D_IN)] + [token(c)] * 20 + [token(nxt)] * 20
        texts = [(f"{cat}-long", np.array(long))]
        for j in range(3):
            short = [np.zeros(D_IN)] + [token(c)] * 3 + [token(None)] * 3
            texts.append((f"{cat}-short{j}", np.array(short)))
        out[cat] = texts
    return out


# Expected specialists found (of 3) per method, derived by hand (threshold 5, top-5):
# - encode->mean, no padding: long f_X = 12*20/40 = 6, short 12*3/6 = 6 (> 5); the previous
#   category's long text also has f_X = 6: n_in 4, n_out 1, score 3 -> 3/3. With BOS counted:
#   240/41 = 5.85 and 36/7 = 5.14, still > 5 -> 3/3.
# - encode->mean with padding: a short text counts 6 real + 34 pad positions: 36/40 = 0.9
#   (36/41 with BOS): n_in 1, n_out 1, score 0 -> 0/3 (the pad feature f4 = 8.5 fires on the 9
#   short texts: score 3 - 6 = -3).
# - encode->max: 12 on every text with an X marker (pads add f4 = 10 on short texts, score -3):
#   n_in 4, n_out 1 -> 3/3 with or without padding or BOS.
# - mean->encode: the mean residual has 0.5 on dim X (3/7, 20/41 with BOS): 18*0.5 - 6 = 3 < 5
#   -> 0/3; with padding, dim X ~ 0.08 and f4 = 16*34/40 - 6 = 7.6 on the short texts of every
#   category (score -3) -> 0/3.
# - max->encode: element-wise max has 1 on dim X: 12, like encode->max -> 3/3.
EXPECTED = {
    ("encode_then_aggregate", False, False, "mean"): 3,
    ("encode_then_aggregate", False, True, "mean"): 3,
    ("encode_then_aggregate", True, False, "mean"): 0,
    ("encode_then_aggregate", True, True, "mean"): 0,
    ("aggregate_then_encode", False, False, "mean"): 0,
    ("aggregate_then_encode", False, True, "mean"): 0,
    ("aggregate_then_encode", True, False, "mean"): 0,
    ("aggregate_then_encode", True, True, "mean"): 0,
    **{
        (e, p, b, "max"): 3
        for e in ("encode_then_aggregate", "aggregate_then_encode")
        for p in (False, True)
        for b in (False, True)
    },
}


def dense_reference(texts, method) -> tuple[list[str], list[str], np.ndarray]:
    """Independent per-text values of a method: plain numpy per text, no pipeline code."""
    encoding, padding, bos, agg = method
    ids, cats, rows = [], [], []
    for cat, items in texts.items():
        longest = max(len(r) for _, r in items)
        for tid, resid in items:
            positions = list(resid if bos else resid[1:])
            if padding:
                positions += [PAD] * (longest - len(resid))
            x = np.array(positions)
            if encoding == "encode_then_aggregate":
                f = encode(x)
                v = f.mean(axis=0) if agg == "mean" else f.max(axis=0)
            else:
                v = encode(x.mean(axis=0) if agg == "mean" else x.max(axis=0))[0]
            ids.append(tid)
            cats.append(cat)
            rows.append(v)
    return ids, cats, np.array(rows)


def loop_specialists_found(cats, V, threshold=5.0, k=5) -> int:
    cats = np.array(cats)
    found = 0
    for c in sorted(set(cats)):
        inside = cats == c
        peaks = V[inside].max(axis=0)
        cands = sorted([f for f in range(V.shape[1]) if peaks[f] > 0], key=lambda f: (-peaks[f], f))
        best = None
        for f in cands[:k]:
            score = int((V[inside, f] > threshold).sum()) - int((V[~inside, f] > threshold).sum())
            key = (score, peaks[f], -f)
            best = key if best is None or key > best else best
        found += best is not None and best[0] > 0
    return found


def write_shards(root, texts, per_chunk=2):
    """Tokens and activation shards of the data contract (chunk layout, ``per_chunk`` texts a
    chunk): per-token SAE activations of the real positions, BOS included, value > 0 only."""
    token_paths, act_paths = [], []
    for cat, items in texts.items():
        for k in range(0, len(items), per_chunk):
            tok = {c: [] for c in TOKENS_SCHEMA.names}
            act = {c: [] for c in ("text_id", "token_pos", "feature", "activation")}
            for tid, resid in items[k : k + per_chunk]:
                feats = encode(resid)
                for pos in range(len(resid)):
                    token = (tid, cat, pos, pos, f" t{pos}", f" t{pos}".encode(), pos == 0)
                    for col, v in zip(tok, token, strict=True):
                        tok[col].append(v)
                    for f in np.flatnonzero(feats[pos] > 0):
                        for col, v in zip(
                            act, (tid, pos, int(f), float(feats[pos, f])), strict=True
                        ):
                            act[col].append(v)
            chunk = f"category={cat}/chunk={k // per_chunk:05d}"
            tp = root / "tokens" / chunk / "tokens.parquet"
            ap = root / "activations" / "sae=res" / "layer=0" / chunk / "activations.parquet"
            for path, cols, types in (
                (tp, tok, TOKENS_SCHEMA.types),
                (ap, act, [pa.string(), pa.int32(), pa.int32(), pa.float32()]),
            ):
                table = pa.table(
                    {c: pa.array(v, t) for (c, v), t in zip(cols.items(), types, strict=True)}
                )
                if path == ap:
                    meta = {"family": "res", "layer": 0, "d_sae": D_SAE, "category": cat}
                    table = table.replace_schema_metadata(
                        {b"sae_specialists": json.dumps(meta).encode()}
                    )
                path.parent.mkdir(parents=True, exist_ok=True)
                pq.write_table(table, path)
            token_paths.append(tp)
            act_paths.append(ap)
    return token_paths, act_paths


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory):
    """Shards (per-token SAE activations of the real positions) + the variants job's tables,
    computed from the planted residuals with the module's own torch-free functions."""
    root = tmp_path_factory.mktemp("planted")
    texts = planted_texts()
    token_paths, shard_paths = write_shards(root, texts)
    variant_files = []
    for cat, items in texts.items():
        lengths = np.array([len(r) for _, r in items])
        L = int(lengths.max())
        acts = np.stack([np.vstack([r, np.tile(PAD, (L - len(r), 1))]) for _, r in items])
        ids = [t for t, _ in items]
        bos = [np.arange(n) == 0 for n in lengths]
        masks = mv.position_masks(lengths, bos, L)
        resid = mv._frame(
            mv.residual_variant_rows(ids, acts, masks, encode), mv.RESID_SCHEMA, sae="res", layer=0
        )
        pad = mv._frame(
            mv.pad_stat_rows(ids, acts, lengths, encode), mv.PAD_SCHEMA, sae="res", layer=0
        )
        ptexts = pl.DataFrame(
            {
                "text_id": ids,
                "category": cat,
                "n_positions": lengths,
                "padded_length": L,
                "n_pad": L - lengths,
                "pad_token_id": 0,
            },
            schema=mv.TEXTS_SCHEMA,
        )
        files = {}
        for name, df in (("resid", resid), ("pad", pad), ("texts", ptexts)):
            files[name] = root / "variants" / cat / f"{name}.parquet"
            files[name].parent.mkdir(parents=True, exist_ok=True)
            df.write_parquet(files[name])
        variant_files.append(files)
    act_paths = {("res", 0): shard_paths}
    rows, summary = ablation_table(token_paths, act_paths, variant_files, 5.0, 5)
    return texts, rows, summary, token_paths, act_paths


def test_planted_fixture_expected_counts_are_right(planted_run):
    """The hand-derived counts agree with an independent dense computation."""
    texts = planted_run[0]
    for method, expected in EXPECTED.items():
        _, cats, V = dense_reference(texts, method)
        assert loop_specialists_found(cats, V) == expected, method


def test_naive_variants_lose_the_specialists_the_correct_method_finds(planted_run):
    _, rows, summary, _, _ = planted_run
    assert summary.height == 16
    got = {
        (r["encoding"], r["padding"], r["include_bos"], r["aggregation"]): r["specialists_found"]
        for r in summary.iter_rows(named=True)
    }
    assert got == EXPECTED
    ref = rows.filter(pl.col("reference"))
    assert ref["method"].unique().to_list() == [
        method_id("encode_then_aggregate", False, False, "mean")
    ]
    assert ref.select("category", "feature", "score", "n_in", "n_out").rows() == [
        ("A", 0, 3, 4, 1),
        ("B", 1, 3, 4, 1),
        ("C", 2, 3, 4, 1),
    ]
    # padding alone: each category keeps its feature as best candidate but at score 0
    padded = rows.filter(
        pl.col("method") == method_id("encode_then_aggregate", True, False, "mean")
    ).sort("category")
    assert padded["score"].to_list() == [0, 0, 0]
    assert padded["n_in"].to_list() == [1, 1, 1] and not padded["has_specialist"].any()
    # the naive notebook (average the padded residual, then encode) finds nothing
    naive = summary.filter(
        pl.col("method") == method_id("aggregate_then_encode", True, True, "mean")
    )
    assert naive["specialists_found"].to_list() == [0]
    assert summary.filter(pl.col("reference"))["n_same_as_reference"].to_list() == [3]


def test_ablation_values_equal_the_dense_reference(planted_run):
    """Per-text values behind every method (shards + pad stats + aggregated residuals) equal
    the independent dense computation."""
    from sae_specialists.analysis.shards import texts_table
    from sae_specialists.methodology.ablation import method_values

    texts, _, _, token_paths, act_paths = planted_run
    root = token_paths[0].parents[3]
    resid = pl.concat([pl.read_parquet(p) for p in sorted(root.glob("variants/*/resid.parquet"))])
    pad = pl.concat([pl.read_parquet(p) for p in sorted(root.glob("variants/*/pad.parquet"))])
    ptexts = pl.concat([pl.read_parquet(p) for p in sorted(root.glob("variants/*/texts.parquet"))])
    methods = method_values(token_paths, act_paths[("res", 0)], "res", 0, resid, pad, ptexts)
    assert len(methods) == 16
    order = texts_table(token_paths, False)["text_id"].to_list()
    for method, df in methods.items():
        ids, _, V = dense_reference(texts, method)
        dense = np.zeros((len(ids), D_SAE))
        for r in df.iter_rows(named=True):
            dense[ids.index(r["text_id"]), r["feature"]] = r["value"]
        np.testing.assert_allclose(
            dense, np.where(V > 0, V, 0), rtol=1e-6, atol=1e-9, err_msg=str(method)
        )
        assert set(df["text_id"]) <= set(order)


def test_shard_only_ablation_has_the_four_encode_then_aggregate_methods(planted_run):
    _, _, _, token_paths, act_paths = planted_run
    rows, summary = ablation_table(token_paths, act_paths, None, 5.0, 5)
    assert summary.height == 4 and set(summary["encoding"]) == {"encode_then_aggregate"}
    assert not summary["padding"].any()
    assert dict(zip(summary["method"], summary["specialists_found"], strict=True)) == {
        method_id("encode_then_aggregate", False, b, a): EXPECTED[
            ("encode_then_aggregate", False, b, a)
        ]
        for b in (False, True)
        for a in ("mean", "max")
    }


def test_position_masks_and_empty_texts():
    lengths = np.array([1, 3])
    bos = [np.array([True]), np.array([True, False, False])]
    m = mv.position_masks(lengths, bos, 4)
    assert m[(False, False)].tolist() == [[False] * 4, [False, True, True, False]]
    assert m[(False, True)].tolist() == [[True, False, False, False], [True, True, True, False]]
    assert m[(True, False)].tolist() == [[False, True, True, True], [False, True, True, True]]
    acts = np.ones((2, 4, 2))
    mean, empty = mv.aggregate(acts, m[(False, False)], "mean")
    assert empty.tolist() == [True, False] and mean[0].tolist() == [0, 0]
    rows = mv.residual_variant_rows(["a", "b"], acts, m, lambda x: np.ones((len(x), 3)))
    # text 'a' (BOS only) gets no feature in the two variants without BOS and without padding
    got = {
        (p, b, g)
        for t, p, b, g in zip(
            rows["text_id"], rows["padding"], rows["include_bos"], rows["aggregation"], strict=True
        )
        if t == "a"
    }
    assert got == {v for v in mv.VARIANTS if v[0] or v[1]}


# -- the model path (demo model): against a naive notebook computation --------------------------


@pytest.fixture(scope="module")
def demo_model(demo_assets):
    from sae_specialists.extraction.models import load_local_model
    from sae_specialists.extraction.saes import load_sae

    model = load_local_model(demo_assets / "model")
    saes = [
        load_sae("res", layer, {"path": str(demo_assets / f"saes/res/layer{layer}")})
        for layer in (1, 3)
    ]
    return model, saes


def test_run_category_equals_a_naive_padded_notebook(demo_model):
    import torch

    from sae_specialists.extraction.texts import Text
    from sae_specialists.extraction.tokenize import tokenize_texts

    model, saes = demo_model
    raw = [
        "def f(self): return None",
        "hey lol",
        "import os\nfor x in range(10):\n    print(x ** 2)  # squares " * 3,
    ]
    tok = tokenize_texts(model, [Text(f"t{i}", "python", t) for i, t in enumerate(raw)])
    toks = mv.CategoryTokens(
        "python",
        [t.text.text_id for t in tok],
        [np.array(t.ids) for t in tok],
        [np.arange(len(t.ids)) == 0 for t in tok],
    )
    resid, pad, texts = mv.run_category(model, saes, toks, batch_size=2)
    L = toks.padded_length
    assert texts["n_pad"].to_list() == [L - len(t.ids) for t in tok]
    pad_id = mv.pad_token_id(model.tokenizer)
    assert texts["pad_token_id"].unique().to_list() == [pad_id]
    # the notebook: one batch right-padded with the pad token, full forward, no mask
    tokens = torch.full((len(tok), L), pad_id, dtype=torch.long)
    for i, t in enumerate(tok):
        tokens[i, : len(t.ids)] = torch.tensor(t.ids)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
        for s in saes:
            acts = cache[s.hook_name]
            for i, t in enumerate(tok):
                n = len(t.ids)
                # causality: real positions equal an unpadded forward of the text alone
                _, alone = model.run_with_cache(torch.tensor([t.ids]))
                torch.testing.assert_close(acts[i, :n], alone[s.hook_name][0], atol=1e-5, rtol=1e-5)
                for padding, bos, agg in mv.VARIANTS:
                    pos = acts[i, (0 if bos else 1) : (L if padding else n)]
                    x = pos.mean(0) if agg == "mean" else pos.max(0).values
                    want = s.sae.encode(x[None])[0].numpy()
                    got = np.zeros_like(want)
                    sel = resid.filter(
                        (pl.col("layer") == s.layer)
                        & (pl.col("text_id") == t.text.text_id)
                        & (pl.col("padding") == padding)
                        & (pl.col("include_bos") == bos)
                        & (pl.col("aggregation") == agg)
                    )
                    got[sel["feature"].to_numpy()] = sel["value"].to_numpy()
                    np.testing.assert_allclose(got, np.maximum(want, 0), rtol=1e-4, atol=1e-4)
                feats = s.sae.encode(acts[i, n:]).numpy() if n < L else np.zeros((1, s.d_sae))
                sel = pad.filter(
                    (pl.col("layer") == s.layer) & (pl.col("text_id") == t.text.text_id)
                )
                got_sum = np.zeros(s.d_sae)
                got_sum[sel["feature"].to_numpy()] = sel["pad_sum"].to_numpy()
                np.testing.assert_allclose(got_sum, feats.sum(0), rtol=1e-4, atol=1e-4)

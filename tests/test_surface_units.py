"""The surface stage's measures on small hand-made arrays and shards, each checked against an
independent computation (plain Python loops over the positions, scikit-learn's r2_score) and
against the value the planted structure implies (docs/surface.md)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import r2_score

from sae_specialists.core.contract import ACTIVATIONS_SCHEMA, TOKENS_SCHEMA
from sae_specialists.surface.measures import Positions, measure
from sae_specialists.surface.verdict import Thresholds, verdict
from sae_specialists.validation.folds import category_folds

THRESHOLDS = Thresholds(
    token_r2_min=0.8, outside_min=0.5, gated_max=0.2, fires_min=0.5, auroc_min=0.75
)


# -- an independent implementation -------------------------------------------------------------
def loop_predictions(texts, fold_of_text, key):
    """Held-out mean per key, written as loops: for each position, the mean activation over the
    positions of texts in other folds with the same key (``key(text, i)``), else the mean of
    those positions. ``texts``: list of (tokens, activations) per text. Returns (y, pred, seen)."""
    ys, preds, seen = [], [], []
    for t, (_, acts) in enumerate(texts):
        sums, counts, total, n = {}, {}, 0.0, 0
        for u, (_, other) in enumerate(texts):
            if fold_of_text[u] == fold_of_text[t]:
                continue
            for i, a in enumerate(other):
                k = key(u, i)
                sums[k] = sums.get(k, 0.0) + a
                counts[k] = counts.get(k, 0) + 1
                total += a
                n += 1
        for i, a in enumerate(acts):
            k = key(t, i)
            ys.append(a)
            seen.append(k in counts)
            preds.append(sums[k] / counts[k] if k in counts else total / n)
    return np.array(ys), np.array(preds), np.array(seen)


def loop_outside(texts, inside_text, ids):
    """Mean activation on the occurrences of ``ids`` inside / outside, with the counts."""
    at_in = [
        a
        for t, (toks, acts) in enumerate(texts)
        if inside_text[t]
        for x, a in zip(toks, acts, strict=True)
        if x in ids
    ]
    at_out = [
        a
        for t, (toks, acts) in enumerate(texts)
        if not inside_text[t]
        for x, a in zip(toks, acts, strict=True)
        if x in ids
    ]
    return (
        len(at_in),
        len(at_out),
        np.mean(at_in) if at_in else None,
        np.mean(at_out) if at_out else None,
    )


def arrays(texts, cats):
    """Positions and per-position arrays of ``texts`` (list of (tokens, activations))."""
    token = np.concatenate([np.asarray(t, dtype=np.int64) for t, _ in texts])
    prev = np.concatenate([np.r_[-1, np.asarray(t[:-1], dtype=np.int64)] for t, _ in texts])
    text = np.concatenate([np.full(len(t), i, dtype=np.int64) for i, (t, _) in enumerate(texts)])
    y = np.concatenate([np.asarray(a, dtype=np.float64) for _, a in texts])
    return Positions(token, prev, text, np.asarray(cats, dtype=np.int64)), y


def corpus(kind: str, seed: int = 0, n_per_cat: int = 10, length: int = 40):
    """Texts of two categories (0: the specialist's, 1: the rest) over a vocabulary of 30
    tokens; token 7 is the marker, token 0 the context cue, token 4 the bigram's first token.
    ``kind``: token (fires 6.0 on the marker wherever it is), context (fires on the marker only
    after a cue, and only category 0 has cues), bigram (fires on the marker right after 4)."""
    rng = np.random.default_rng(seed)
    texts, cats = [], []
    for c in (0, 1):
        for _ in range(n_per_cat):
            toks = rng.integers(8, 30, length)
            toks[rng.choice(length, 5, replace=False)] = 7 if c == 0 else rng.integers(8, 30)
            if c == 1:
                toks[rng.choice(length, 2, replace=False)] = 7  # the marker occurs outside too
            if c == 0 and kind == "context":
                toks[0] = 0  # the cue, first in every text of the category
            if kind == "bigram":
                toks[rng.choice(length - 1, 3, replace=False)] = 4
            acts = np.zeros(length)
            for i, x in enumerate(toks):
                if x != 7:
                    continue
                if kind == "token":
                    acts[i] = 6.0
                elif kind == "context" and 0 in toks[:i]:
                    acts[i] = 6.0 + 0.1 * i  # grows with the distance: not one value per token
                elif kind == "bigram" and i and toks[i - 1] == 4:
                    acts[i] = 6.0
            texts.append((toks.tolist(), acts.tolist()))
            cats.append(c)
    return texts, np.array(cats)


def measured(texts, cats, c=0, n_folds=5, seed=0, share=0.8, most=10):
    pos, y = arrays(texts, cats)
    folds = category_folds(pos.cat_index, c, n_folds, seed)
    return measure(pos, y, folds[pos.text], pos.cat_index[pos.text] == c, share, most), folds


# -- token measures against the independent loops ------------------------------------------
@pytest.mark.parametrize("kind", ["token", "context", "bigram"])
def test_r2_equals_the_loop_computation(kind):
    texts, cats = corpus(kind)
    s, folds = measured(texts, cats)
    y, pred, seen = loop_predictions(texts, folds, lambda t, i: texts[t][0][i])
    assert s.token_r2 == pytest.approx(r2_score(y, pred), abs=1e-12)
    assert s.token_r2_seen == pytest.approx(r2_score(y[seen], pred[seen]), abs=1e-12)
    assert s.unseen_mass == pytest.approx(y[~seen].sum() / y.sum(), abs=1e-12)
    # bigram: the pair's training mean, else the token's, else the mean
    _, tok_pred, _ = loop_predictions(texts, folds, lambda t, i: texts[t][0][i])
    pair = lambda t, i: (texts[t][0][i - 1] if i else -1, texts[t][0][i])  # noqa: E731
    y2, pair_pred, pair_seen = loop_predictions(texts, folds, pair)
    expected = np.where(pair_seen, pair_pred, tok_pred)
    assert s.bigram_r2 == pytest.approx(r2_score(y2, expected), abs=1e-12)


def test_planted_token_feature_is_its_tokens_identity():
    """Activation = a function of the token id: R² 1 on every seen token; the marker fires
    outside the category exactly as inside (ratio 1); every mass on one token."""
    s, _ = measured(*corpus("token"))
    assert s.token_r2 == pytest.approx(1.0)
    assert s.token_r2_seen == pytest.approx(1.0)
    assert s.top5_mass == pytest.approx(1.0)
    assert s.triggers.tolist() == [7]
    assert s.outside.ratio == pytest.approx(1.0)
    assert s.outside.n_out == 20  # 2 markers in each of the 10 other texts
    assert verdict(row_of(s), THRESHOLDS) == "token_detector"


def test_planted_context_feature_is_gated():
    """The same marker, firing only after the category's cue: low R² (the token table predicts
    the marker's mean over both categories), outside ratio exactly 0."""
    s, _ = measured(*corpus("context"))
    assert s.triggers.tolist() == [7]
    assert s.outside.ratio == 0.0
    assert s.outside.mean_out == 0.0 and s.outside.n_out == 20
    assert s.token_r2_seen < 0.8
    assert verdict(row_of(s), THRESHOLDS) == "context_gated"


def test_planted_bigram_feature_needs_the_previous_token():
    s, _ = measured(*corpus("bigram"))
    assert s.bigram_r2 > 0.95
    assert s.bigram_r2 > s.token_r2 + 0.3


def test_triggers_and_outside_against_loops():
    texts, cats = corpus("context", seed=3)
    # a second, weaker trigger: token 9 fires 1.0 everywhere
    texts = [
        (toks, [a + (1.0 if x == 9 else 0.0) for x, a in zip(toks, acts, strict=True)])
        for toks, acts in texts
    ]
    s, _ = measured(texts, cats, share=0.99)
    inside_mass: dict[int, float] = {}
    for t, (toks, acts) in enumerate(texts):
        if cats[t] == 0:
            for x, a in zip(toks, acts, strict=True):
                inside_mass[x] = inside_mass.get(x, 0.0) + a
    ranked = sorted((m, -x) for x, m in inside_mass.items() if m > 0)[::-1]
    assert s.triggers.tolist() == [-x for _, x in ranked][:2] == [7, 9]
    n_in, n_out, mean_in, mean_out = loop_outside(texts, cats == 0, {7, 9})
    assert (s.outside.n_in, s.outside.n_out) == (n_in, n_out)
    assert s.outside.mean_in == pytest.approx(mean_in)
    assert s.outside.mean_out == pytest.approx(mean_out)
    assert s.outside.ratio == pytest.approx(mean_out / mean_in)
    assert s.trigger_mass_in == pytest.approx(1.0)


def test_trigger_share_and_cap():
    """The fewest ids reaching the share, at most max_triggers."""
    texts, cats = corpus("context", seed=3)
    texts = [
        (toks, [a + (1.0 if x == 9 else 0.0) for x, a in zip(toks, acts, strict=True)])
        for toks, acts in texts
    ]
    only_first, _ = measured(texts, cats, share=0.5)
    capped, _ = measured(texts, cats, share=0.99, most=1)
    assert only_first.triggers.tolist() == [7] == capped.triggers.tolist()


def test_trigger_never_outside_gives_counts_not_a_ratio():
    texts, cats = corpus("context")
    texts = [
        (toks if c == 0 else [x if x != 7 else 8 for x in toks], acts)
        for (toks, acts), c in zip(texts, cats, strict=True)
    ]
    s, _ = measured(texts, cats)
    assert s.outside.n_out == 0 and s.outside.ratio is None and s.outside.n_in > 0


def row_of(s) -> dict:
    return dict(
        token_r2=s.token_r2,
        token_r2_seen=s.token_r2_seen,
        outside_ratio=s.outside.ratio,
        n_trigger_in=s.outside.n_in,
        n_trigger_out=s.outside.n_out,
    )


# -- the verdict rules --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (dict(token_r2_seen=0.95, outside_ratio=0.9), "token_detector"),
        (dict(token_r2_seen=0.95, outside_ratio=None), "token_detector"),  # never outside
        (dict(token_r2_seen=0.95, outside_ratio=0.3), "mixed"),  # R² high, not outside
        (dict(token_r2_seen=0.1, outside_ratio=0.05), "context_gated"),
        (dict(token_r2_seen=0.1, outside_ratio=0.9), "mixed"),
        (dict(token_r2_seen=None, token_r2=None, outside_ratio=None), "untested"),
        # probe texts: fires on meaning-only texts, separates them from neutral ones
        (
            dict(
                token_r2_seen=0.95,
                outside_ratio=0.9,
                meaning_n=10,
                meaning_fired=8,
                meaning_auroc=0.9,
                markers_n=10,
                markers_fired=9,
            ),
            "meaning",
        ),
        # fires on meaning-only texts but does not separate them from neutral texts
        (
            dict(
                token_r2_seen=0.95,
                outside_ratio=0.9,
                meaning_n=10,
                meaning_fired=8,
                meaning_auroc=0.6,
                markers_n=10,
                markers_fired=9,
            ),
            "token_detector",
        ),
        # R² high but silent on the markers without the meaning
        (
            dict(
                token_r2_seen=0.95,
                outside_ratio=0.9,
                meaning_n=10,
                meaning_fired=0,
                meaning_auroc=0.5,
                markers_n=10,
                markers_fired=1,
            ),
            "mixed",
        ),
    ],
)
def test_verdict_rules(row, expected):
    assert verdict(row, THRESHOLDS) == expected


# -- the layer job on real shards ---------------------------------------------------------------
def write_shards(tmp_path, texts, cats, names=("cat_a", "cat_b")):
    """Token and activation shards (BOS at position 0 with a large activation that must not
    count) per category, and the text list; returns the smk-like input."""
    tokens_paths, act_paths, text_rows = [], [], []
    for c, name in enumerate(names):
        tok_rows, act_rows = [], []
        for t, (toks, acts) in enumerate(texts):
            if cats[t] != c:
                continue
            tid = f"{name}-{t:03d}"
            text_rows.append((tid, name, len(toks) + 1, len(toks)))
            tok_rows.append((tid, name, 0, 1023, "<bos>", b"", True))
            act_rows.append((tid, 0, 5, 100.0))  # BOS: never counted
            for i, (x, a) in enumerate(zip(toks, acts, strict=True)):
                tok_rows.append((tid, name, i + 1, int(x), f"t{x}", f" t{x}".encode(), False))
                if a > 0:
                    act_rows.append((tid, i + 1, 5, float(a)))
                act_rows.append((tid, i + 1, 6, 1.0))  # another feature, not read
        tp, ap = tmp_path / f"tokens_{name}.parquet", tmp_path / f"acts_{name}.parquet"
        pq.write_table(
            pa.Table.from_pylist(
                [dict(zip(TOKENS_SCHEMA.names, r, strict=True)) for r in tok_rows], TOKENS_SCHEMA
            ),
            tp,
        )
        pq.write_table(
            pa.Table.from_pylist(
                [dict(zip(ACTIVATIONS_SCHEMA.names, r, strict=True)) for r in act_rows],
                ACTIVATIONS_SCHEMA,
            ),
            ap,
        )
        tokens_paths.append(str(tp))
        act_paths.append(str(ap))
    texts_df = (
        pl.DataFrame(
            text_rows, schema=["text_id", "category", "n_positions", "n_counted"], orient="row"
        )
        .with_row_index("text_order")
        .with_columns(pl.col("text_order").cast(pl.Int64))
    )
    texts_path = tmp_path / "texts.parquet"
    texts_df.write_parquet(texts_path)
    spec = pl.DataFrame(
        {
            "sae": ["res", "res"],
            "layer": [2, 2],
            "category": list(names),
            "feature": [5, None],
            "has_specialist": [True, False],
        }
    )
    spec_path = tmp_path / "specialists.parquet"
    spec.write_parquet(spec_path)
    return SimpleNamespace(
        tokens=tokens_paths,
        activations=act_paths,
        texts=str(texts_path),
        specialists=str(spec_path),
    )


def test_layer_job_on_shards_matches_the_loops(tmp_path):
    from sae_specialists.surface.entry import layer

    texts, cats = corpus("context", seed=5)
    # the shards store float32: the loops read the same values
    texts = [(toks, [float(np.float32(a)) for a in acts]) for toks, acts in texts]
    smk = SimpleNamespace(
        input=write_shards(tmp_path, texts, cats),
        output=SimpleNamespace(
            specialists=str(tmp_path / "out_spec.parquet"),
            tokens=str(tmp_path / "out_tokens.parquet"),
        ),
        params=SimpleNamespace(
            include_bos=False, folds=5, seed=0, trigger_mass=0.8, max_triggers=10
        ),
        wildcards=SimpleNamespace(family="res", layer="2"),
    )
    layer(smk)
    row = pl.read_parquet(smk.output.specialists).row(0, named=True)
    assert (row["sae"], row["layer"], row["category"], row["feature"]) == ("res", 2, "cat_a", 5)
    # the folds are the validation stage's, of the texts in text order
    folds = category_folds(cats, 0, 5, 0)
    y, pred, seen = loop_predictions(texts, folds, lambda t, i: texts[t][0][i])
    assert row["n_positions"] == len(y)  # BOS excluded, zeros included
    assert row["token_r2"] == pytest.approx(r2_score(y, pred), abs=1e-12)
    assert row["token_r2_seen"] == pytest.approx(r2_score(y[seen], pred[seen]), abs=1e-12)
    # the previous token of the first counted position is BOS (id 1023 in these shards)
    pair = lambda t, i: (texts[t][0][i - 1] if i else 1023, texts[t][0][i])  # noqa: E731
    _, pair_pred, pair_seen = loop_predictions(texts, folds, pair)
    expected = r2_score(y, np.where(pair_seen, pair_pred, pred))
    assert row["bigram_r2"] == pytest.approx(expected, abs=1e-12)
    n_in, n_out, mean_in, mean_out = loop_outside(texts, cats == 0, {7})
    assert (row["n_trigger_in"], row["n_trigger_out"]) == (n_in, n_out)
    assert row["outside_ratio"] == pytest.approx(mean_out / mean_in)
    assert row["trigger_tokens"] == "␣t7 1.00"
    toks = pl.read_parquet(smk.output.tokens)
    assert toks.filter(pl.col("trigger"))["token_id"].to_list() == [7]


def test_verdict_table_layer_shares_and_board_records():
    from sae_specialists.core.verdicts import verdict_frame
    from sae_specialists.surface.report import (
        board_records,
        layer_shares,
        summary_md,
        with_verdicts,
    )

    rows = [  # (layer, category, token_r2_seen, outside_ratio): token, gated, mixed, token
        (0, "math", 0.99, 1.0),
        (0, "chat", 0.05, 0.01),
        (1, "math", 0.95, 0.3),
        (1, "chat", 0.9, 0.9),
    ]
    spec = pl.DataFrame(
        {
            "sae": ["res"] * 4,
            "layer": [r[0] for r in rows],
            "category": [r[1] for r in rows],
            "feature": [1, 2, 3, 4],
            "token_r2": [r[2] for r in rows],
            "token_r2_seen": [r[2] for r in rows],
            "unseen_mass": [0.0] * 4,
            "bigram_r2": [r[2] for r in rows],
            "outside_ratio": [r[3] for r in rows],
            "n_trigger_in": [10] * 4,
            "n_trigger_out": [5] * 4,
            "top5_tokens": ["␣+ 1.00"] * 4,
        }
    )
    table = with_verdicts(spec, THRESHOLDS)
    assert table["verdict"].to_list() == [
        "token_detector",
        "context_gated",
        "mixed",
        "token_detector",
    ]
    assert table["verdict_label"][0].startswith("token detector (token R² 0.99 on seen tokens")
    shares = layer_shares(table).sort("layer")
    assert shares["share_token_detector"].to_list() == [0.5, 0.5]
    assert shares["share_context_gated"].to_list() == [0.5, 0.0]
    assert shares["mean_token_r2_seen"].to_list() == pytest.approx([0.52, 0.925])
    board = verdict_frame(board_records(table))  # the board's schema and key checks
    assert board["ok"].null_count() == 4 and set(board["stage"]) == {"surface"}
    md = summary_md(table, shares, {"threshold": 5.0})
    assert "mean token R² (seen tokens) 0.52 at layer 0 and 0.93 at layer 1" in md
    assert "share\\_token\\_detector" in md  # Markdown-escaped

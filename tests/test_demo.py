"""The offline demo: the same assets in every process, real TransformerLens / SAELens objects, and
every planted structure measured here, independently (run_with_cache / run_with_hooks, numpy,
scikit-learn; none of the project's stages), on resources/demo_texts, equal to what
planted.json["expected"] promises the stage tests (sae_specialists/demo/expected.py)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

REPO = Path(__file__).resolve().parents[1]
TEXTS = REPO / "resources" / "demo_texts"


def build_in_subprocess(out, hash_seed: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    code = "import sys; from sae_specialists.demo import build_demo; build_demo(sys.argv[1])"
    subprocess.run([sys.executable, "-c", code, str(out)], env=env, check=True, capture_output=True)
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file()
    }


def test_demo_assets_do_not_depend_on_the_hash_seed(tmp_path):
    from sae_specialists.demo import asset_files

    first = build_in_subprocess(tmp_path / "a", "1")
    second = build_in_subprocess(tmp_path / "b", "2")
    expected = {str(Path(p).relative_to(tmp_path / "a")) for p in asset_files(tmp_path / "a")}
    assert expected <= set(first)
    assert first == second


# -- an independent reading of the demo on its texts ---------------------------------------------


class Demo:
    """Dense per-text values (mean over the non-BOS positions of each text) of every planted SAE
    on resources/demo_texts, from the model's own run_with_cache and each SAE's encode."""

    def __init__(self, assets: Path, planted: dict):
        import torch
        from sae_lens import SAE

        from sae_specialists.extraction.models import load_local_model

        self.planted = planted
        self.expected = planted.get("expected", {})
        self.model = load_local_model(assets / "model")
        self.texts, cats = [], []
        for path in sorted(TEXTS.glob("*.yaml")):
            for text in yaml.safe_load(path.read_text("utf-8")):
                self.texts.append(text)
                cats.append(path.stem)
        self.cats = np.array(cats)
        self.saes = {
            (family, int(layer)): SAE.load_from_disk(
                str(assets / "saes" / family / f"layer{layer}")
            )
            for family, layers in planted["families"].items()
            for layer in layers
        }
        self.tokens = [self.model.to_tokens(t, prepend_bos=True) for t in self.texts]
        hooks = {sae.cfg.metadata.hook_name for sae in self.saes.values()}
        self.values = {key: [] for key in self.saes}
        self.acts = {key: [] for key in self.saes}
        self.pooled: dict[int, list] = {}
        with torch.inference_mode():
            for tokens in self.tokens:
                _, cache = self.model.run_with_cache(tokens, names_filter=lambda n: n in hooks)
                for key, sae in self.saes.items():
                    x = cache[sae.cfg.metadata.hook_name][0, 1:]
                    acts = sae.encode(x).numpy().astype(np.float64)
                    self.acts[key].append(acts)
                    self.values[key].append(acts.mean(axis=0))
                    if key[0] == "res":
                        self.pooled.setdefault(key[1], []).append(x.numpy().mean(axis=0))
        self.values = {k: np.array(v) for k, v in self.values.items()}

    def roles(self, family: str, layer: int) -> dict[str, int]:
        return self.planted["families"][family][str(layer)]

    def role_of(self, family: str, layer: int, feature: int) -> str | None:
        return {f: r for r, f in self.roles(family, layer).items()}.get(feature)


def study_rule(values: np.ndarray, cats: np.ndarray, category: str, threshold=5.0, k=5):
    """The study's specialist rule, written out: top-k features by in-category peak, score
    n_in - n_out at the threshold; best score, ties by higher peak, then lower id."""
    inside = cats == category
    peak = values[inside].max(axis=0)
    candidates = np.lexsort((np.arange(values.shape[1]), -peak))[:k]
    best = None
    for f in candidates:
        n_in = int((values[inside, f] > threshold).sum())
        n_out = int((values[~inside, f] > threshold).sum())
        key = (n_in - n_out, peak[f], -f)
        if best is None or key > best[0]:
            best = (key, int(f), n_in, n_out)
    return best[1], best[2], best[3]


@pytest.fixture(scope="module")
def demo(demo_assets, planted):
    """One torch thread while this module runs (restored after): the tiny model's forwards are
    overhead-bound, and two threads contending on a busy 2-core machine cost ~25x the CPU time
    (94 clean text losses: 20.7 s CPU with 2 threads, 0.7 s with 1)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield Demo(demo_assets, planted)
    torch.set_num_threads(threads)


def test_assets_are_real_library_objects(demo):
    from sae_lens import StandardSAE
    from transformer_lens import HookedTransformer

    from sae_specialists.demo import FAMILIES

    assert isinstance(demo.model, HookedTransformer)
    assert demo.model.tokenizer.name_or_path
    for (family, layer), sae in demo.saes.items():
        hook, d_sae, layers = FAMILIES[family]
        assert isinstance(sae, StandardSAE) and layer in layers
        assert (
            sae.cfg.metadata.hook_name
            == hook.format(layer=layer)
            == demo.planted["hooks"][family].format(layer=layer)
        )
        assert sae.cfg.d_sae == d_sae


def test_specialists_by_the_study_rule_are_the_planted_ones(demo):
    """Every (family, layer, category): the rule's winner, n_in and n_out on the demo texts."""
    expected = demo.expected["specialists"]
    n = 0
    for family, layers in expected.items():
        for layer, cells in layers.items():
            values = demo.values[(family, int(layer))]
            for category, (role, n_in, n_out) in cells.items():
                f, got_in, got_out = study_rule(values, demo.cats, category)
                assert (demo.role_of(family, int(layer), f), got_in, got_out) == (
                    role,
                    n_in,
                    n_out,
                ), (family, layer, category)
                n += 1
    assert n == 9 * (4 + 4 + 4 + 1 + 1)
    # the block-0 writers: no residual specialist before block 0 writes the direction
    for category, family in (("conversational", "attn"), ("non_english", "mlp")):
        assert expected["res"]["0"][category][1] - expected["res"]["0"][category][2] <= 0
        assert expected[family]["0"][category][0] == category
        other = {"attn": "mlp", "mlp": "attn"}[family]
        for layer in range(4):
            role, n_in, n_out = expected[other][str(layer)][category]
            assert n_in - n_out <= 0


def test_first_family_of_each_category(demo):
    """``comparison.first_family``: the family whose earliest specialist (the study rule,
    score > 0) is written first in the forward pass; in a block attn_out is written before
    mlp_out, and both before the next block's resid_pre."""
    order = {"attn": 0, "mlp": 1, "res": -1}  # res reads resid_pre: before the block's writers
    for category, want in demo.expected["comparison"]["first_family"].items():
        first = []
        for family in ("res", "attn", "mlp"):
            for layer in range(4):
                _, n_in, n_out = study_rule(demo.values[(family, layer)], demo.cats, category)
                if n_in - n_out > 0:
                    first.append(((layer, order[family]), family, layer))
                    break
        _, family, layer = min(first)
        assert {"sae": family, "layer": layer} == want, category


def test_lottery_features_fire_only_on_their_word(demo):
    from sae_specialists.demo.vocab import bpe_token

    tokenizer = demo.model.tokenizer
    for layer in range(4):
        for role, f in demo.roles("res", layer).items():
            if not role.startswith("lottery_"):
                continue
            word_id = tokenizer.convert_tokens_to_ids(bpe_token(" " + role.split("_", 1)[1]))
            texts = []
            for i, (tokens, acts) in enumerate(
                zip(demo.tokens, demo.acts[("res", layer)], strict=True)
            ):
                fired = np.flatnonzero(acts[:, f] > 0)
                assert (tokens[0, 1:][fired] == word_id).all(), (role, i)
                if fired.size:
                    texts.append(i)
            cats = demo.cats[texts].tolist()
            assert 2 <= len(texts) <= 3 and len(set(cats)) >= 2, (role, cats)
            assert demo.expected["validation"]["lottery"]["texts"][role] == sorted(cats)


def permutation_p(values, cats, category, score, n=1000, seed=0):
    rng = np.random.default_rng(seed)
    null = []
    for _ in range(n):
        shuffled = rng.permutation(cats)
        _, n_in, n_out = study_rule(values, shuffled, category)
        null.append(n_in - n_out)
    return (1 + np.sum(np.array(null) >= score)) / (1 + n)


def heldout_auroc(values, cats, category, seed=0):
    aucs = []
    for train, test in StratifiedKFold(5, shuffle=True, random_state=seed).split(values, cats):
        f, _, _ = study_rule(values[train], cats[train], category)
        aucs.append(roc_auc_score(cats[test] == category, values[test, f]))
    return float(np.mean(aucs))


def test_lottery_winner_looks_like_a_specialist_but_is_chance(demo):
    lottery = demo.expected["validation"]["lottery"]
    for layer in range(4):
        values = demo.values[("res", layer)]
        f, n_in, n_out = study_rule(values, demo.cats, "recipes")
        assert demo.role_of("res", layer, f) == lottery["winner"] and n_in - n_out == 1
        p = permutation_p(values, demo.cats, "recipes", n_in - n_out)
        assert p == pytest.approx(lottery["permutation_p"][str(layer)]) and p > 0.05
        auc = heldout_auroc(values, demo.cats, "recipes")
        assert auc == pytest.approx(lottery["heldout_auroc"][str(layer)]) and abs(auc - 0.5) < 0.1
        # a planted specialist beats the same null and generalises
        f, n_in, n_out = study_rule(values, demo.cats, "python")
        assert permutation_p(values, demo.cats, "python", n_in - n_out) < 0.01
        assert heldout_auroc(values, demo.cats, "python") >= 0.95


def test_every_validation_cell_recomputed(demo):
    """Each category and layer of ``validation.cells`` (res): the shuffled-label p-value and the
    held-out AUROC, by the same written-out rule (1,000 shuffles of
    default_rng(0).permutation, 5 stratified folds), to the last digit the tables are held to
    (test_validation_demo.py compares the stage's p-values with these to 1e-12)."""
    cells = demo.expected["validation"]["cells"]
    assert set(cells) == set(demo.cats) - {"recipes"}  # recipes: the lottery test above
    for category, layers in cells.items():
        assert sorted(layers) == ["0", "1", "2", "3"]
        for layer, want in layers.items():
            values = demo.values[("res", int(layer))]
            _, n_in, n_out = study_rule(values, demo.cats, category)
            p = permutation_p(values, demo.cats, category, n_in - n_out)
            assert p == pytest.approx(want["permutation_p"], abs=1e-12), (category, layer)
            auc = heldout_auroc(values, demo.cats, category)
            assert auc == pytest.approx(want["heldout_auroc"], abs=1e-12), (category, layer)


def test_spread_category_is_carried_by_the_pooled_residual_not_one_feature(demo):
    from sae_specialists.demo.vocab import POETRY_GROUPS

    spread = demo.expected["validation"]["spread"]
    y = (demo.cats == "poetry").astype(int)
    for layer in range(4):
        values, pooled = demo.values[("res", layer)], np.array(demo.pooled[layer])
        folds = list(StratifiedKFold(5, shuffle=True, random_state=0).split(values, demo.cats))
        dense, k5 = [], []
        for train, test in folds:
            probe = LogisticRegressionCV(Cs=10, cv=3, max_iter=5000).fit(pooled[train], y[train])
            dense.append(roc_auc_score(y[test], probe.decision_function(pooled[test])))
            diff = values[train][y[train] == 1].mean(0) - values[train][y[train] == 0].mean(0)
            top = np.lexsort((np.arange(diff.size), -diff))[:5]
            sparse = LogisticRegression(max_iter=5000).fit(values[train][:, top], y[train])
            k5.append(roc_auc_score(y[test], sparse.decision_function(values[test][:, top])))
        single = heldout_auroc(values, demo.cats, "poetry")
        assert np.mean(dense) == 1.0 and np.mean(k5) == 1.0
        assert single == pytest.approx(spread["heldout_auroc"][str(layer)]) and single < 0.8
        # four group features, each above the threshold on about half of the 12 poems and on
        # no other text; together they fire on every poem
        groups = [demo.roles("res", layer)[f"poetry_{g}"] for g in POETRY_GROUPS]
        above = values[:, groups] > 5.0
        assert ((above[y == 1].sum(axis=0) >= 5) & (above[y == 1].sum(axis=0) <= 6)).all()
        assert not above[y == 0].any() and (values[y == 1][:, groups] > 0).any(axis=1).all()


def text_losses(model, tokens, hooks=()):
    """Mean next-token cross-entropy over the predictions made at counted positions (1..n-2)."""
    import torch

    logits = model.run_with_hooks(tokens, fwd_hooks=list(hooks))[0].double()
    n = tokens.shape[1]
    logp = torch.log_softmax(logits[1 : n - 1], dim=-1)
    return float(-logp[torch.arange(n - 2), tokens[0, 2:]].mean())


def ablation(sae, feature):
    def hook(x, hook):
        act = sae.encode(x)[..., feature].clone()
        act[:, 0] = 0.0  # BOS is never edited
        return x - act[..., None] * sae.W_dec[feature]

    return hook


@pytest.fixture(scope="module")
def clean_losses(demo) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return np.array([text_losses(demo.model, t) for t in demo.tokens])


@pytest.mark.parametrize("layer", [0, 1, 2, 3])
def test_causal_driver_and_pure_detector(demo, clean_losses, layer):
    """Every layer's Δloss cells (in / out / ratio) of expected.json, from run_with_hooks."""
    import torch

    causal = demo.expected["causal"]
    sae = demo.saes[("res", layer)]
    hook = sae.cfg.metadata.hook_name
    clean = clean_losses
    with torch.inference_mode():
        for kind in ("driver", "detector"):
            category = causal[kind]["category"]
            f = demo.roles("res", layer)[category]
            ablated = np.array(
                [text_losses(demo.model, t, [(hook, ablation(sae, f))]) for t in demo.tokens]
            )
            delta = ablated - clean
            inside = demo.cats == category
            d_in, d_out = delta[inside].mean(), delta[~inside].mean()
            want = causal[kind]
            assert d_in == pytest.approx(want["delta_in"][str(layer)], rel=1e-3, abs=1e-6)
            assert d_out == pytest.approx(want["delta_out"][str(layer)], rel=1e-3, abs=1e-6)
            if kind == "driver":
                assert d_in >= 5 * d_out > 0 and (delta[inside] > 0).all()
                assert d_in / d_out == pytest.approx(want["ratio"][str(layer)], rel=2e-3)
            else:
                assert np.abs(delta).max() < 1e-6


def greedy(model, prompt, n, hooks=()):
    import torch

    tokens = model.to_tokens(prompt, prepend_bos=True)
    for _ in range(n):
        logits = model.run_with_hooks(tokens, fwd_hooks=list(hooks))
        tokens = torch.cat([tokens, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return tokens[0, -n:].tolist()


def test_steering_the_driver_writes_python_tokens(demo):
    import torch

    driver = demo.planted["causal"]["driver"]
    tokens = set(driver["token_ids"])
    layer = 1
    sae = demo.saes[("res", layer)]
    f = demo.roles("res", layer)[driver["category"]]
    top = max(acts[:, f].max() for acts in demo.acts[("res", layer)])

    def clamp(value):
        def hook(x, hook):
            return x + (value - sae.encode(x)[..., f])[..., None] * sae.W_dec[f]

        return hook

    with torch.inference_mode():
        for prompt in ("The weather today is", "I went to the store and"):
            plain = greedy(demo.model, prompt, 10)
            assert not tokens & set(plain)
            for scale in (2, 5):
                hook = (sae.cfg.metadata.hook_name, clamp(scale * top))
                steered = greedy(demo.model, prompt, 10, [hook])
                assert len([t for t in steered if t in tokens]) >= 5, (prompt, scale)


def test_block0_writers_and_the_unembedding(demo):
    from sae_specialists.demo.vocab import DIM

    w_o = demo.model.W_O.detach().numpy()  # [layer, head, d_head, d_model]
    w_out = demo.model.W_out.detach().numpy()  # [layer, d_mlp, d_model]
    attn_dim, mlp_dim = DIM["conversational_written"], DIM["non_english_written"]
    writes = np.abs(w_o[..., attn_dim]).sum(axis=2)
    assert writes[0, 0] > 0 and writes.sum() == writes[0, 0]
    assert not np.abs(w_out[..., attn_dim]).any() and not np.abs(w_o[..., mlp_dim]).any()
    mlp_writes = np.abs(w_out[..., mlp_dim])
    assert mlp_writes[0, 0] > 0 and mlp_writes.sum() == mlp_writes[0, 0]
    w_u = demo.model.W_U.detach().numpy()
    assert np.abs(w_u.sum(axis=0)).max() < 1e-5  # the detector's all-ones row writes no logit


def test_cosines_and_width_split(demo):
    comparison = demo.expected["comparison"]

    def decoder(family, layer, role):
        sae = demo.saes[(family, layer)]
        return sae.W_dec.detach().numpy()[demo.roles(family, layer)[role]].astype(np.float64)

    def cos(a, b):
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    for category, by_pair in comparison["layer_cosines"].items():
        for pair, want in by_pair.items():
            a, b = (int(x) for x in pair.split("-"))
            got = cos(decoder("res", a, category), decoder("res", b, category))
            assert got == pytest.approx(want, abs=1e-4), (category, pair)
    assert comparison["layer_cosines"][comparison["chain"]["category"]]["1-2"] >= 0.9
    # what block 0's attention / MLP writes is read by the residual SAE of block 1
    for pair, want in comparison["cross_family_cosines"].items():
        (fa, la, ca), (fb, lb, cb) = (key.split("/") for key in pair.split("~"))
        got = cos(decoder(fa, int(la), ca), decoder(fb, int(lb), cb))
        assert got == pytest.approx(want, abs=1e-4), pair
    split = comparison["split"]
    narrow = demo.values[("res_narrow", 2)]
    wide = demo.values[("res_wide", 2)]
    parent = demo.roles("res_narrow", 2)[split["parent"]]
    texts = np.flatnonzero((demo.cats == split["category"]) & (narrow[:, parent] > 5.0))
    assert len(texts) == split["n_parent_texts"]
    children = {role: demo.roles("res_wide", 2)[role] for role in split["children"]}
    owner = [max(children, key=lambda r: (wide[t, children[r]], -children[r])) for t in texts]
    owner = [o if wide[t, children[o]] > 5.0 else None for o, t in zip(owner, texts, strict=True)]
    for role, want in split["children"].items():
        assigned = sum(o == role for o in owner)
        assert assigned / len(texts) == pytest.approx(want["share"])
        assert int((wide[texts, children[role]] > 5.0).sum()) == want["n_covered"]
        assert cos(decoder("res_narrow", 2, split["parent"]), decoder("res_wide", 2, role)) == (
            pytest.approx(want["cosine"], abs=1e-4)
        )


# -- the surface stage's meaning plant ---------------------------------------------------------


def yaml_texts(root: Path) -> dict[str, list[str]]:
    """Every YAML list of texts under ``root`` (symlinks followed), by path."""
    out = {}
    for path in sorted(root.rglob("*.yaml")):
        items = yaml.safe_load(path.read_text("utf-8"))
        if isinstance(items, list) and all(isinstance(t, str) for t in items):
            out[str(path.relative_to(root))] = items
    return out


def test_meaning_words_change_no_other_tokenisation():
    """The meaning words are added to the trained vocabulary as whole words: every text the
    project ships tokenises as with the trained merges alone unless it holds one of them, and
    none of the demo's texts holds one (so no planted outcome on them moves)."""
    import re

    from sae_specialists.demo.model import PYTHON_REFERENCE
    from sae_specialists.demo.vocab import (
        MEANING_WORDS,
        meaning_tokens,
        trained_tokenizer,
        with_meaning_tokens,
    )

    plain, full = trained_tokenizer(), with_meaning_tokens(trained_tokenizer())
    assert full.get_vocab_size() == plain.get_vocab_size() + len(meaning_tokens())
    words = [w for ws in MEANING_WORDS.values() for w in ws]
    holds = re.compile(rf" (?:{'|'.join(words)})(?![A-Za-z])")
    texts = yaml_texts(REPO / "resources")
    texts["PYTHON_REFERENCE"] = [PYTHON_REFERENCE]
    n_same = n_with = 0
    for name, items in texts.items():
        for text in items:
            if holds.search(text):
                assert not name.startswith(("demo_texts/", "texts/")), (name, text)
                n_with += 1
                ids = full.encode(text).ids
                assert any(i >= plain.get_vocab_size() for i in ids), text
            else:
                assert full.encode(text).ids == plain.encode(text).ids, (name, text)
                n_same += 1
    assert n_with >= 8 and n_same > 500


def test_meaning_plant_fires_on_arithmetic_spelled_out(demo):
    """res math at every layer reads the dimension its markers and the spelled-out words write:
    on the meaning-only probe texts (no math marker), its largest activation over the non-BOS
    positions is above the threshold exactly on the texts holding one of the words, and only
    there; the words' own embedding rows carry the math dimension and no marker dimension."""
    import torch

    from sae_specialists.demo.vocab import DIM, marker_categories

    plant = demo.planted["surface"]["meaning"]
    category = plant["category"]
    tok = demo.model.tokenizer
    word_ids = set(tok.convert_tokens_to_ids(plant["tokens"]))
    assert len(word_ids) == len(plant["words"]) and min(word_ids) >= len(tok) - len(word_ids)
    w_e = demo.model.W_E.detach().numpy()
    for i in word_ids:
        assert w_e[i, DIM[category]] == 1.0
        assert not marker_categories(tok.convert_ids_to_tokens(i))
    texts = yaml.safe_load(
        (REPO / "resources/probe_texts" / category / "meaning.yaml").read_text("utf-8")
    )
    holds = [bool(word_ids & set(tok(t)["input_ids"])) for t in texts]
    assert sum(holds) >= len(texts) / 2
    for layer in range(4):
        sae = demo.saes[("res", layer)]
        f = demo.roles("res", layer)[category]
        fired = []
        with torch.inference_mode():
            for text in texts:
                _, cache = demo.model.run_with_cache(
                    demo.model.to_tokens(text), names_filter=sae.cfg.metadata.hook_name
                )
                acts = sae.encode(cache[sae.cfg.metadata.hook_name][0, 1:])[:, f]
                fired.append(float(acts.max()) > 5.0)
        assert fired == holds, layer

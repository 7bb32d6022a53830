"""Feature dashboards on the planted demo (tiny model + SAEs with planted features), run through
the real Snakefile with a small reference corpus: the dashboard data itself (top examples of
planted specialists, logit effects of the planted 'logit' feature, density, histogram, windows,
quantiles, profile), rerun scope, no model in the dashboard rules, and the pages in headless
Chromium with the network blocked."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from browser import open_offline
from conftest import demo_config, run_snakemake, scheduled_jobs, write_texts

from sae_specialists.core.tokens import text_spans

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
LAYERS = [1, 3]
CATEGORIES = ["formal", "python", "social"]
# Each category's texts carry only its own planted markers (checked by the marker test below).
TEXTS = {
    "python": [
        "def area(self): return self.width * self.height",
        "async def fetch(self):\n    await self.load()\n    return None",
        "class Stack:\n    def pop(self):\n        return None",
    ],
    "social": [
        "lol omg this is so good #blessed",
        "RT @friend: best day ever lol",
        "omg 😂🔥 cannot stop laughing #fun",
    ],
    "formal": [
        "The parties hereby agree, pursuant to the Agreement, to the following obligations.",
        "Whereas the Committee shall review the provisions thereof.",
        "Notwithstanding the aforementioned, each Party shall respectfully comply.",
    ],
}
CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "It was a bright cold day in April, and the clocks were striking thirteen.",
    "A small village lies by the river, with old stone houses and a quiet market.",
]
WINDOW = {"before": 3, "after": 2}


@pytest.fixture(scope="module")
def run(tmp_path_factory, demo_assets):
    work = tmp_path_factory.mktemp("dashboards_wf")
    texts = write_texts(work / "texts", TEXTS)
    corpus = work / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps({"text": t}) for t in CORPUS) + "\n\n")
    cfg = demo_config(
        demo_assets,
        texts,
        work / "results",
        layers=LAYERS,
        dashboards={
            "top_k_features": 3,
            "examples": 5,
            "window": WINDOW,
            "quantiles": 3,
            "quantile_examples": 2,
            "histogram_bins": 20,
            "corpus": str(corpus),
        },
        # one extraction job for every category (the same shards as per family:
        # test_comparison_workflow)
        extraction={"jobs": "single"},
    )
    # target `dashboards`: what the dashboards need (extraction, analysis tables, logit effects,
    # corpus, the causal check's specialist set), not the other stages' charts and reports
    run_snakemake(work, "--cores", "2", "dashboards", config=cfg)
    return work, cfg


def layer_dir(work: Path, layer: int) -> Path:
    return work / "results" / "dashboards" / "sae=res" / f"layer={layer}"


def tables(work: Path, layer: int) -> dict[str, pl.DataFrame]:
    d = layer_dir(work, layer)
    return {
        n: pl.read_parquet(d / f"{n}.parquet")
        for n in ("features", "examples", "histograms", "profiles")
    }


def all_tokens(work: Path) -> pl.DataFrame:
    res = work / "results"
    # one shard per category, or per extraction chunk of a category
    paths = sorted((res / "tokens").rglob("tokens.parquet")) + [res / "corpus/tokens.parquet"]
    return pl.concat([pl.read_parquet(p) for p in paths])


@pytest.fixture(scope="module")
def tokenizer(demo_assets):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(demo_assets / "model"))


def test_texts_carry_only_their_own_markers(tokenizer):
    from sae_specialists.demo import marker_categories

    for category, items in TEXTS.items():
        for text in items:
            raw = tokenizer.convert_ids_to_tokens(tokenizer(text)["input_ids"])
            found = set().union(*(marker_categories(t) for t in raw))
            assert found == {category}, (text, found)
    for text in CORPUS:
        raw = tokenizer.convert_ids_to_tokens(tokenizer(text)["input_ids"]) if text else []
        assert not set().union(set(), *(marker_categories(t) for t in raw)), text


@pytest.mark.parametrize("layer", LAYERS)
def test_top_example_of_planted_specialist(run, planted, tokenizer, layer):
    """The top example of each planted specialist is a text of its category, with the max at a
    planted marker token of that category."""
    from sae_specialists.demo import marker_categories

    work, _ = run
    t = tables(work, layer)
    tokens = all_tokens(work)
    for category in CATEGORIES:
        feature = planted["layers"][str(layer)][category]
        row = t["features"].filter(pl.col("feature") == feature)
        assert row.height == 1, (category, feature, t["features"])
        assert "specialist" in row["roles"][0].to_list()
        assert row["specialist_categories"][0].to_list() == [category]
        top = (
            t["examples"]
            .filter((pl.col("feature") == feature) & (pl.col("kind") == "top"))
            .sort("rank")
        )
        assert 3 <= top.height <= 5  # `examples` = 5, one per text
        first = top.row(0, named=True)
        assert first["source"] == "study" and first["category"] == category
        token_id = tokens.filter(
            (pl.col("text_id") == first["text_id"]) & (pl.col("token_pos") == first["token_pos"])
        )["token_id"].item()
        bpe = tokenizer.convert_ids_to_tokens([token_id])[0]
        assert category in marker_categories(bpe), (category, bpe)
        # the in-category texts come first: every planted marker text beats every other text
        assert top["category"].to_list()[:3] == [category] * 3
        assert first["activation"] == pytest.approx(row["max_activation"].item())


@pytest.mark.parametrize("layer", LAYERS)
def test_logit_effects_of_planted_logit_feature(run, planted, layer):
    work, _ = run
    logits = pl.read_parquet(work / "results" / "logits" / "sae=res" / f"layer={layer}.parquet")
    feature = planted["layers"][str(layer)]["logit"]
    mine = logits.filter(pl.col("feature") == feature)
    up = mine.filter(pl.col("direction") == "positive").sort("rank")
    down = mine.filter(pl.col("direction") == "negative").sort("rank")
    assert up.height == down.height == 10
    assert up["token_id"][0] == planted["logit_token"]["id"]
    assert up["token"][0] == planted["logit_token"]["token"] == " fox"
    assert up["token_display"][0] == "␣fox"  # the leading space is visible
    assert up["effect"].is_sorted(descending=True) and down["effect"].is_sorted()
    assert up["effect"][0] > up["effect"][1] and down["effect"][0] < 0
    assert logits["feature"].n_unique() == 128  # every feature of the SAE


def test_density_histogram_windows_profile(run):
    """Dashboard numbers recomputed independently from the shards."""
    work, cfg = run
    res = work / "results"
    tokens = all_tokens(work)
    counted = tokens.filter(~pl.col("bos"))
    for layer in LAYERS:
        t = tables(work, layer)
        acts = pl.concat(
            [
                pl.read_parquet(p)
                for p in sorted((res / f"activations/sae=res/layer={layer}").rglob("*.parquet"))
            ]
            + [pl.read_parquet(res / f"corpus/activations/sae=res/layer={layer}.parquet")]
        ).join(counted.select("text_id", "token_pos"), on=["text_id", "token_pos"], how="semi")
        per_text = pl.read_parquet(res / f"per_text/sae=res/layer={layer}.parquet")
        for row in t["features"].iter_rows(named=True):
            f = row["feature"]
            fa = acts.filter(pl.col("feature") == f)["activation"].to_numpy()
            assert row["n_counted"] == counted.height
            assert row["n_fire"] == fa.size
            assert row["density"] == pytest.approx(fa.size / counted.height)
            assert row["corpus_n_counted"] == counted.filter(pl.col("category") == "corpus").height
            hist = t["histograms"].filter(pl.col("feature") == f)
            assert hist.height == 20 and hist["count"].sum() == fa.size
            assert hist["hi"].max() == pytest.approx(fa.max())
            ex = t["examples"].filter(pl.col("feature") == f)
            for e in ex.iter_rows(named=True):
                pos = e["window_pos"]
                assert e["token_pos"] in pos
                assert pos == list(range(pos[0], pos[-1] + 1))
                # the requested window, widened only to keep a split character whole
                lo = max(0, e["token_pos"] - WINDOW["before"]) - pos[0]
                hi = e["token_pos"] + WINDOW["after"] - pos[0]
                spans = text_spans(e["window_token_bytes"])
                assert lo >= 0 and (lo == 0 or any(s.first == 0 < lo <= s.last for s in spans))
                assert hi >= len(pos) - 1 or any(
                    s.first <= hi < s.last == len(pos) - 1 for s in spans
                )
                assert e["window_acts"][pos.index(e["token_pos"])] == pytest.approx(e["activation"])
            top = ex.filter(pl.col("kind") == "top").sort("rank")
            assert top["activation"].is_sorted(descending=True)
            assert top["text_id"].n_unique() == top.height  # one example per text
            for q in ex.filter(pl.col("kind") == "quantile").iter_rows(named=True):
                assert q["interval_lo"] - 1e-9 <= q["activation"] <= q["interval_hi"] + 1e-9
            prof = t["profiles"].filter(pl.col("feature") == f).sort("category")
            assert prof["category"].to_list() == CATEGORIES
            assert prof["n_texts"].to_list() == [3, 3, 3]
            pt = per_text.filter(pl.col("feature") == f)
            for p in prof.iter_rows(named=True):
                vals = pt.filter(pl.col("category") == p["category"])["value"].to_numpy()
                assert p["mean_value"] == pytest.approx(vals.sum() / 3)
                assert p["frac_active"] == pytest.approx((vals > 0).sum() / 3)
                assert p["frac_above"] == pytest.approx((vals > 5.0).sum() / 3)


def test_selection_and_corpus_examples(run, planted):
    work, _ = run
    res = work / "results"
    strongest = pl.read_parquet(res / "tables" / "strongest.parquet")
    frequent = pl.read_parquet(res / "tables" / "frequent.parquet")
    spec = pl.read_parquet(res / "tables" / "specialists.parquet")
    for layer in LAYERS:
        t = tables(work, layer)
        expected = (
            set(spec.filter((pl.col("layer") == layer) & pl.col("has_specialist"))["feature"])
            | set(strongest.filter((pl.col("layer") == layer) & (pl.col("rank") <= 3))["feature"])
            | set(frequent.filter((pl.col("layer") == layer) & (pl.col("rank") <= 3))["feature"])
        )
        assert set(t["features"]["feature"]) == expected
        for f in expected:
            assert (layer_dir(work, layer) / f"feature={f}.html").is_file()
        # the planted frequent feature fires on every non-BOS token: corpus texts among its
        # examples, and the planted BOS feature never gets a dashboard (BOS is not counted)
        freq = planted["layers"][str(layer)]["frequent"]
        assert freq in expected
        assert "corpus" in t["examples"].filter(pl.col("feature") == freq)["source"].to_list()
        assert planted["layers"][str(layer)]["bos"] not in expected
    corpus_tokens = pl.read_parquet(res / "corpus" / "tokens.parquet")
    assert corpus_tokens["text_id"].n_unique() == 3
    assert set(corpus_tokens["category"]) == {"corpus"}


def test_index_lists_every_dashboard(run):
    work, _ = run
    index = (work / "results" / "dashboards" / "index.html").read_text()
    n = 0
    for layer in LAYERS:
        for page in layer_dir(work, layer).glob("feature=*.html"):
            assert f'href="sae=res/layer={layer}/{page.name}"' in index
            n += 1
    assert index.count("<tr data-family=") == n
    assert not re.search(
        r"""(src|href)=["']?https?:""", index.replace('href="https://www.neuronpedia.org', "")
    )


def test_dashboard_rules_never_load_the_model(run):
    """Dashboard modules import no torch; a dashboards setting reruns only the dashboard rules."""
    code = (
        "import sys, sae_specialists.dashboards.entry, sae_specialists.dashboards.corpus;"
        "bad=[m for m in ('torch','transformer_lens','sae_lens') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    work, cfg = run
    cfg = json.loads(json.dumps(cfg))
    cfg["dashboards"]["window"] = {"before": 5, "after": 1}
    dry = run_snakemake(work, "-n", "dashboards", config=cfg)
    assert scheduled_jobs(dry) == {"dashboards_layer": 2, "dashboards_index": 1, "dashboards": 1}
    cfg["dashboards"]["logit_top"] = 5
    dry = run_snakemake(work, "-n", "dashboards", config=cfg)
    assert scheduled_jobs(dry) == {
        "logit_effects": 1,  # one job per SAE family, for both layers
        "dashboards_layer": 2,
        "dashboards_index": 1,
        "dashboards": 1,
    }


# -- headless browser -------------------------------------------------------------------------

# the session's `browser` fixture (tests/conftest.py) and the offline loader (tests/browser.py)


def test_pages_render_offline(run, browser, planted):
    work, _ = run
    ARTIFACTS.mkdir(exist_ok=True)
    index = work / "results" / "dashboards" / "index.html"
    page, errors, blocked = open_offline(browser, index)
    rows = page.locator("#dashboards tbody tr")
    total = rows.count()
    assert total > 0
    page.select_option("#f-layer", "3")
    page.select_option("#f-category", "python")
    assert page.locator("#dashboards tbody tr:visible").count() == 1
    assert f"1 of {total}" in page.locator("#count").inner_text()
    page.select_option("#f-category", "")
    page.fill("#f-feature", str(planted["layers"]["3"]["frequent"]))
    assert page.locator("#dashboards tbody tr:visible").count() == 1
    page.fill("#f-feature", "")
    page.select_option("#f-layer", "")
    assert page.locator("#dashboards tbody tr:visible").count() == total
    page.screenshot(path=str(ARTIFACTS / "dashboards_index.png"), full_page=True)
    assert not errors and not blocked, (errors, blocked)
    page.close()

    feature = planted["layers"]["3"]["python"]
    dash = layer_dir(work, 3) / f"feature={feature}.html"
    page, errors, blocked = open_offline(browser, dash)
    assert f"Feature #{feature}" in page.locator("h1").inner_text()
    header = page.locator("#header").inner_text()
    assert "python" in header and "blocks.3.hook_resid_pre" in header and "density" in header
    tokens = page.locator("#top-examples .tok")
    assert tokens.count() > 10
    n_top = (
        tables(work, 3)["examples"]
        .filter((pl.col("feature") == feature) & (pl.col("kind") == "top"))
        .height
    )
    maxed = page.locator("#top-examples .tok.max")
    assert maxed.count() == n_top >= 3
    box = maxed.first.bounding_box()
    assert box and box["width"] > 0 and box["height"] > 0
    maxed.first.hover()
    assert "activation" in page.locator("#info").inner_text()
    bars = page.locator("#histogram rect.hbar")
    assert bars.count() == 20
    hbox = page.locator("#histogram").bounding_box()
    assert hbox and hbox["width"] > 100 and hbox["height"] > 50
    assert page.locator("#profile tbody tr").count() == 3
    assert page.locator("#logits-positive tbody tr").count() == 10
    assert page.locator(".examples.quantile").count() >= 1
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    assert not errors and not blocked, (errors, blocked)
    page.close()


def test_histogram_svg_and_readable_tokens():
    from sae_specialists.core.html import token_html
    from sae_specialists.core.tokens import readable_token
    from sae_specialists.dashboards.data import histogram

    counts, edges = histogram(np.array([1.0, 1.0, 2.0, 4.0]), 4)
    assert counts.tolist() == [0, 2, 1, 1] and edges[-1] == 4.0
    assert readable_token(" a\n\tb") == "␣a↵⇥b" and readable_token("") == "∅"
    assert token_html("<b>") == "&lt;b&gt;" and token_html("  ") == (
        '<span class="ws">␣</span><span class="ws">␣</span>'
    )


def test_planted_logit_feature_changes_only_its_decoder_row():
    from sae_specialists.demo import D_MODEL, build_sae

    direction = np.random.default_rng(1).normal(size=D_MODEL)
    plain, roles = build_sae(2, seed=0)
    with_logit, roles_logit = build_sae(2, seed=0, logit_direction=direction)
    f = roles_logit.pop("logit")
    assert roles_logit == roles and f not in roles.values()
    for name in ("W_enc", "b_enc", "b_dec"):
        assert np.array_equal(getattr(plain, name).detach(), getattr(with_logit, name).detach())
    diff = (plain.W_dec.detach() != with_logit.W_dec.detach()).any(dim=1).nonzero().ravel()
    assert diff.tolist() == [f]
    row = with_logit.W_dec.detach()[f].numpy()
    assert np.allclose(row, direction / np.linalg.norm(direction), atol=1e-6)

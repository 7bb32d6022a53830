"""The comparison stage on the shared demo run (config/demo.yaml, conftest.demo_run): every
table re-derived independently from the run's own files (specialists table, per-text files,
shards, the SAEs' weight files read with safetensors, not SAELens), the index and the dashboards
link it, and the planted structure comes out (planted.json)."""

from __future__ import annotations

import itertools
import re

import numpy as np
import polars as pl
import pytest
from safetensors.numpy import load_file

from sae_specialists.core.io import read_metadata


@pytest.fixture(scope="module")
def run(demo_run):
    return demo_run


@pytest.fixture(scope="module")
def comparison(run) -> dict[str, pl.DataFrame]:
    root = run.results / "comparison"
    return {p.stem: pl.read_parquet(p) for p in sorted(root.glob("*.parquet"))}


@pytest.fixture(scope="module")
def saes(run) -> dict[tuple[str, int], dict]:
    """(family, layer) -> the per-text file's metadata (hook_name, d_sae, ...)."""
    out = {}
    for path in sorted((run.results / "per_text").glob("sae=*/layer=*.parquet")):
        meta = read_metadata(path)
        out[(meta["sae"], int(meta["layer"]))] = meta
    return out


def decoder(run, family: str, layer: int) -> np.ndarray:
    template = run.config["saes"][family]["path"]
    path = run.work / template.format(layer=layer) / "sae_weights.safetensors"
    return load_file(str(path))["W_dec"].astype(np.float64)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


class Positions:
    """Dense per-token activations at the counted positions (every non-BOS position) of the
    study texts, built feature by feature from the shards: an independent reading."""

    def __init__(self, run):
        self.run = run
        tokens = pl.read_parquet(list((run.results / "tokens").rglob("tokens.parquet")))
        counted = tokens.filter(~pl.col("bos")).select("text_id", "token_pos")
        self.index = {k: i for i, k in enumerate(counted.iter_rows())}
        self.cache: dict[tuple[str, int], pl.DataFrame] = {}

    def column(self, family: str, layer: int, feature: int) -> np.ndarray:
        key = (family, layer)
        if key not in self.cache:
            root = self.run.results / "activations" / f"sae={family}" / f"layer={layer}"
            self.cache[key] = pl.read_parquet(list(root.rglob("activations.parquet")))
        rows = self.cache[key].filter(pl.col("feature") == feature)
        out = np.zeros(len(self.index))
        for text_id, pos, value in rows.select("text_id", "token_pos", "activation").iter_rows():
            i = self.index.get((text_id, pos))
            if i is not None:
                out[i] = value
        return out

    def correlation(self, a: tuple[str, int, int], b: tuple[str, int, int]) -> float | None:
        x, y = self.column(*a), self.column(*b)
        if x.std() == 0 or y.std() == 0:
            return None
        return float(np.corrcoef(x, y)[0, 1])


@pytest.fixture(scope="module")
def positions(run) -> Positions:
    return Positions(run)


def test_every_comparison_output_exists_and_is_linked_from_the_index(run):
    from sae_specialists.core.layout import COMPARISON_CHARTS, COMPARISON_TABLES

    root = run.results / "comparison"
    expected = [
        f"{n}.{ext}" for ns in COMPARISON_TABLES.values() for n in ns for ext in ("parquet", "csv")
    ]
    expected += [f"charts/{n}.{ext}" for n in COMPARISON_CHARTS for ext in ("html", "png")]
    index = (run.results / "index.html").read_text()
    for name in expected:
        assert (root / name).is_file(), name
        assert f"comparison/{name}" in index, f"index.html does not link comparison/{name}"
    for name in COMPARISON_CHARTS:
        html = (root / "charts" / f"{name}.html").read_text()
        assert "vegaEmbed" in html and not re.search(r"<script[^>]+src=[\"']?https?:", html)


def test_components_match_plain_python(run, comparison, saes):
    spec = pl.read_parquet(run.results / "tables" / "specialists.parquet")
    grid = comparison["components"]
    assert grid.height == spec.height
    stages = {
        "hook_resid_pre": 0,
        "attn.hook_z": 2,
        "hook_attn_out": 3,
        "hook_mlp_out": 7,
        "hook_resid_post": 8,
    }

    def position(family, layer):
        block, rest = re.match(r"blocks\.(\d+)\.(.+)", saes[(family, layer)]["hook_name"]).groups()
        return int(block), stages[rest]

    found = [r for r in spec.iter_rows(named=True) if r["has_specialist"]]
    for (category, layer), group in itertools.groupby(
        sorted(found, key=lambda r: (r["category"], r["layer"])),
        key=lambda r: (r["category"], r["layer"]),
    ):
        best = min(
            group, key=lambda r: (-r["score"], -r["n_in"], position(r["sae"], layer), r["sae"])
        )
        got = grid.filter(
            (pl.col("category") == category) & (pl.col("layer") == layer) & pl.col("strongest")
        )
        assert got["sae"].to_list() == [best["sae"]]
    first = comparison["component_first"]
    for category in spec["category"].unique().to_list():
        earliest = {}
        for r in found:
            if r["category"] == category:
                earliest[r["sae"]] = min(earliest.get(r["sae"], 99), r["layer"])
        pos = {f: position(f, layer) for f, layer in earliest.items()}
        ranks = sorted(set(pos.values()))
        rows = first.filter(pl.col("category") == category)
        for r in rows.iter_rows(named=True):
            if r["sae"] in earliest:
                assert r["first_layer"] == earliest[r["sae"]]
                assert r["order"] == ranks.index(pos[r["sae"]]) + 1
            else:
                assert r["order"] is None and not r["first"]


def test_links_match_decoders_and_shards(run, comparison, saes, positions):
    links = comparison["specialist_links"]
    members = comparison["specialist_members"]
    for category, group in members.group_by("category"):
        n = group.height
        assert links.filter(pl.col("category") == category[0]).height == n * (n - 1) // 2
    for r in links.iter_rows(named=True):
        a = (r["sae_a"], r["layer_a"], r["feature_a"])
        b = (r["sae_b"], r["layer_b"], r["feature_b"])
        residual = all(
            not saes[k[:2]]["hook_name"].endswith(("hook_z", "hook_pre", "hook_post"))
            for k in (a, b)
        )
        if residual:
            want = cosine(decoder(run, *a[:2])[a[2]], decoder(run, *b[:2])[b[2]])
            assert r["cosine"] == pytest.approx(want, abs=1e-6)
        else:
            assert r["cosine"] is None and r["cosine_note"]
        want_r = positions.correlation(a, b)
        assert (r["correlation"] is None) == (want_r is None)
        if want_r is not None:
            assert r["correlation"] == pytest.approx(want_r, abs=1e-6)


def test_related_features_match_decoders_and_shards(run, comparison, positions):
    related = comparison["related_features"]
    assert set(related["relation"].unique()) >= {"same_sae", "next_layer"}
    # every dashboard feature has its related features
    for d in (run.results / "dashboards").glob("sae=*/layer=*"):
        family = d.parent.name.removeprefix("sae=")
        layer = int(d.name.removeprefix("layer="))
        features = pl.read_parquet(d / "features.parquet")["feature"].to_list()
        here = related.filter((pl.col("sae") == family) & (pl.col("layer") == layer))
        assert set(features) <= set(here["feature"].to_list())
    k = int(run.config["comparison"]["neighbours"])
    floor = float(run.config["comparison"].get("related_min_cosine", 0.1))
    assert read_metadata(run.results / "comparison/related_features.parquet") == {
        "min_cosine": floor
    }
    n_empty = 0
    for (family, layer, feature, relation, other, other_layer), group in related.group_by(
        "sae", "layer", "feature", "relation", "other_sae", "other_layer"
    ):
        w = decoder(run, family, layer)[feature]
        pool = decoder(run, other, other_layer)
        cos = pool @ w / np.linalg.norm(pool, axis=1) / np.linalg.norm(w)
        if relation == "same_sae":
            cos[feature] = -np.inf
        order = np.lexsort((np.arange(cos.size), -np.round(cos, 9)))[:k]
        order = order[cos[order] > floor]  # only neighbours above the floor
        if order.size == 0:  # none: one row that says so
            assert group.select("rank", "other_feature", "cosine").rows() == [(None, None, None)]
            n_empty += 1
            continue
        group = group.sort("rank")
        assert group["rank"].to_list() == list(range(1, order.size + 1))
        assert np.allclose(group["cosine"].to_numpy(), cos[order], atol=1e-6)
        assert set(group["other_feature"].to_list()) <= set(
            np.flatnonzero(np.round(cos, 6) >= np.round(cos[order[-1]], 6)).tolist()
        )
    assert n_empty > 0  # the demo has searches with nothing above the floor: said, not padded
    assert related.filter(pl.col("cosine") <= floor).height == 0
    sample = related.filter(pl.col("rank") == 1).head(12)  # (rank null: none above the floor)
    for r in sample.iter_rows(named=True):
        want = positions.correlation(
            (r["sae"], r["layer"], r["feature"]),
            (r["other_sae"], r["other_layer"], r["other_feature"]),
        )
        if want is None:
            assert r["correlation"] is None
        else:
            assert r["correlation"] == pytest.approx(want, abs=1e-6)


def test_dashboards_show_and_link_related_features(run, comparison):
    pages = sorted((run.results / "dashboards").glob("sae=*/layer=*/feature=*.html"))
    assert pages
    linked = 0
    for page in pages:
        html = page.read_text()
        assert 'id="related"' in html, page
        for href in re.findall(r'<table class="data related"[^>]*>.*?</table>', html, re.S):
            for target in re.findall(r'href="([^"]+)"', href):
                assert (page.parent / target).resolve().is_file(), (page, target)
                linked += 1
    assert linked > 0


def test_splits_match_plain_python(run, comparison, saes, positions):
    ladders = comparison["ladders"]
    # ladders: families with one hook at one layer and several widths
    by_hook: dict[tuple[str, int], set[int]] = {}
    for (_family, layer), meta in saes.items():
        by_hook.setdefault((meta["hook_name"], layer), set()).add(int(meta["d_sae"]))
    expected = {k for k, widths in by_hook.items() if len(widths) >= 2}
    assert set(zip(ladders["ladder"], ladders["layer"], strict=True)) == expected
    splits = comparison["splits"]
    if splits.height == 0:
        return
    threshold = float(run.config["analysis"]["threshold"])
    min_r = float(run.config["comparison"]["split_min_correlation"])
    min_cos = float(run.config["comparison"]["split_min_cosine"])

    def values(family, layer, feature):
        pt = pl.read_parquet(run.results / "per_text" / f"sae={family}" / f"layer={layer}.parquet")
        rows = pt.filter(pl.col("feature") == feature)
        return dict(zip(rows["text_id"], rows["value"], strict=True)), dict(
            zip(rows["text_id"], rows["category"], strict=True)
        )

    for (category, parent_sae, layer, parent, child_sae), group in splits.group_by(
        "category", "parent_sae", "layer", "parent_feature", "child_sae"
    ):
        pv, pcat = values(parent_sae, layer, parent)
        parent_texts = [t for t, v in pv.items() if v > threshold and pcat[t] == category]
        assert group["n_parent_texts"].unique().to_list() == [len(parent_texts)]
        w_parent = decoder(run, parent_sae, layer)[parent]
        children = {}
        for r in group.iter_rows(named=True):
            c = r["child_feature"]
            want_cos = cosine(w_parent, decoder(run, child_sae, layer)[c])
            assert r["cosine"] == pytest.approx(want_cos, abs=1e-6)
            want_r = positions.correlation((parent_sae, layer, parent), (child_sae, layer, c))
            assert r["correlation"] == pytest.approx(want_r, abs=1e-6)
            assert want_r >= min_r or want_cos >= min_cos
            children[c] = values(child_sae, layer, c)
        owner = {}
        for t in parent_texts:
            firing = [
                (cv.get(t, 0.0), -c)
                for c, (cv, _) in children.items()
                if cv.get(t, 0.0) > threshold
            ]
            if firing:
                owner[t] = -max(firing)[1]
        for r in group.iter_rows(named=True):
            c = r["child_feature"]
            cv, ccat = children[c]
            assert r["n_covered"] == sum(cv.get(t, 0.0) > threshold for t in parent_texts)
            assert r["n_assigned"] == sum(o == c for o in owner.values())
            assert r["share"] == pytest.approx(r["n_assigned"] / len(parent_texts))
            assert r["n_out"] == sum(v > threshold and ccat[t] != category for t, v in cv.items())


def test_a_threshold_change_never_reruns_extraction_or_the_related_features(run, tmp_path):
    from conftest import scheduled_jobs

    copy = run.copy(tmp_path / "copy")
    config = {**copy.config, "analysis": {**copy.config["analysis"], "threshold": 4.0}}
    jobs = scheduled_jobs(copy.snakemake("-n", config=config))
    assert {"comparison_components", "comparison_tracking", "comparison_splits"} <= set(jobs)
    assert "comparison_related" not in jobs  # nor, through it, anything the dashboards read
    assert not [job for job in jobs if job.startswith("extract")]


# -- the planted structure (planted.json, sae_specialists/demo) ---------------------------------


@pytest.fixture(scope="module")
def planted(run) -> dict:
    return run.planted


def test_planted_attention_and_mlp_categories_come_out_in_their_family_first(comparison, planted):
    first = comparison["component_first"]
    expected = planted["expected"]["comparison"]["first_family"]
    assert set(expected) == {"conversational", "non_english"}
    for category, want in expected.items():
        rows = first.filter(pl.col("category") == category)
        winner = rows.filter(pl.col("first"))
        assert winner["sae"].to_list() == [want["sae"]], category
        assert winner["first_layer"].to_list() == [want["layer"]]
        role = planted["families"][want["sae"]][str(want["layer"])][category]
        assert winner["feature"].to_list() == [role]
        other = "mlp" if want["sae"] == "attn" else "attn"
        assert rows.filter(pl.col("sae") == other)["order"].to_list() == [None]  # never
        res = rows.filter(pl.col("sae") == "res")
        assert res["first_layer"].to_list() == [1] and res["order"].to_list()[0] > 1


def test_planted_cross_layer_chain_is_linked_with_cosine_one(comparison, planted):
    exp = planted["expected"]["comparison"]
    links = comparison["specialist_links"]
    res_next = links.filter(
        (pl.col("sae_a") == "res")
        & (pl.col("sae_b") == "res")
        & (pl.col("relation") == "next_layer")
    )
    chain = exp["chain"]
    lo, hi = chain["layers"]
    row = res_next.filter(
        (pl.col("category") == chain["category"])
        & (pl.col("layer_a") == lo)
        & (pl.col("layer_b") == hi)
    )
    assert row.height == 1
    assert row["cosine"].item() >= 0.9
    assert row["correlation"].item() > 0.9  # the same feature, read at two layers
    members = {
        (r["category"], r["layer"])
        for r in comparison["specialist_members"].iter_rows(named=True)
        if r["sae"] == "res"
    }
    compared = []
    for category, pairs in exp["layer_cosines"].items():
        for pair, want in pairs.items():
            a, b = map(int, pair.split("-"))
            if not {(category, a), (category, b)} <= members:
                continue  # e.g. conversational at layer 0: no res specialist to link
            got = res_next.filter(
                (pl.col("category") == category)
                & (pl.col("layer_a") == a)
                & (pl.col("layer_b") == b)
            )
            assert got["cosine"].to_list() == [pytest.approx(want, abs=1e-5)], (category, pair)
            compared.append((category, pair))
    assert len(compared) >= 15 and ("math", "1-2") in compared
    for key, want in exp["cross_family_cosines"].items():
        (fa, la, ca), (fb, lb, cb) = (part.split("/") for part in key.split("~"))
        assert ca == cb
        got = links.filter(
            (pl.col("category") == ca)
            & (pl.col("sae_a") == fa)
            & (pl.col("layer_a") == int(la))
            & (pl.col("sae_b") == fb)
            & (pl.col("layer_b") == int(lb))
        )
        assert got["cosine"].to_list() == [pytest.approx(want, abs=1e-5)], key
    # the chain's next-layer neighbour is the next layer's math specialist, at cosine 1
    nxt = comparison["next_layer"].filter(
        (pl.col("category") == chain["category"]) & (pl.col("sae") == "res") & (pl.col("rank") == 1)
    )
    assert nxt.height == 3 and nxt["next_is_specialist"].all()
    assert nxt["cosine"].to_list() == pytest.approx([1.0] * 3, abs=1e-6)


def test_planted_split_is_found_with_the_recorded_shares(comparison, planted):
    split = planted["expected"]["comparison"]["split"]
    layer = split["layer"]
    narrow = planted["families"]["res_narrow"][str(layer)][split["parent"]]
    wide = planted["families"]["res_wide"][str(layer)]
    ladders = comparison["ladders"].filter(pl.col("layer") == layer).sort("rung")
    assert ladders["sae"].to_list()[0] == "res_narrow" and "res_wide" in ladders["sae"].to_list()
    rows = comparison["splits"].filter(
        (pl.col("category") == split["category"]) & (pl.col("child_sae") == "res_wide")
    )
    assert rows["parent_sae"].unique().to_list() == ["res_narrow"]
    assert rows["parent_feature"].unique().to_list() == [narrow]
    assert rows["n_parent_texts"].unique().to_list() == [split["n_parent_texts"]]
    children = {wide[role]: want for role, want in split["children"].items()}
    assert set(rows["child_feature"].to_list()) == set(children)
    for r in rows.iter_rows(named=True):
        want = children[r["child_feature"]]
        assert r["n_assigned"] == want["n_assigned"]
        assert r["n_covered"] == want["n_covered"]
        assert r["share"] == pytest.approx(want["share"])
        assert r["cosine"] == pytest.approx(want["cosine"], abs=1e-5)
        assert r["n_out"] == 0
    assert sum(rows["share"].to_list()) == pytest.approx(1.0)  # every parent text covered


def test_written_into_links_what_block0_writes_to_the_residual_sae_that_reads_it(
    run, comparison, planted
):
    """The attention-out (conversational) and MLP-out (non_english) specialists of block 0 write
    a direction the residual SAE of block 1 reads: their ``written_into`` nearest feature is the
    res layer-1 specialist of the same category, at the planted cosine, firing on the same
    tokens; the dashboard of the writer links it."""
    related = comparison["related_features"].filter(pl.col("relation") == "written_into")
    families = planted["families"]
    for family, category in (("attn", "conversational"), ("mlp", "non_english")):
        writer = families[family]["0"][category]
        reader = families["res"]["1"][category]
        rows = related.filter(
            (pl.col("sae") == family) & (pl.col("layer") == 0) & (pl.col("feature") == writer)
        )
        to_res = rows.filter((pl.col("other_sae") == "res") & (pl.col("other_layer") == 1))
        top = to_res.filter(pl.col("rank") == 1).row(0, named=True)
        want = planted["expected"]["comparison"]["cross_family_cosines"]
        assert top["other_feature"] == reader
        assert top["cosine"] == pytest.approx(want[f"{family}/0/{category}~res/1/{category}"])
        assert top["correlation"] > 0.9
        # one reader per residual family: res at block 1, the width pair at block 2
        readers = set(rows.select("other_sae", "other_layer").unique().iter_rows())
        assert readers == {("res", 1), ("res_narrow", 2), ("res_wide", 2)}
        page = run.results / f"dashboards/sae={family}/layer=0/feature={writer}.html"
        if page.exists():
            html = page.read_text()
            block = html.split('data-relation="written_into"')[1].split("</table>")[0]
            assert f"sae=res/layer=1/feature={reader}.html" in block or f"#{reader}<" in block
    # block 3 writes into nothing the demo reads (no block 4): no rows for it
    assert related.filter(pl.col("layer") == 3).height == 0


def test_the_demo_section_of_the_docs_holds_the_runs_numbers(comparison, planted):
    """docs/comparison.md, "The demo": no placeholder; its first-family and width-split tables
    and the written_into cosine are the run's."""
    from conftest import REPO

    demo = (REPO / "docs" / "comparison.md").read_text("utf-8").split("## The demo", 1)[1]
    assert "filled in" not in demo
    first = comparison["component_first"].filter(pl.col("first"))
    rows = re.findall(
        r"^\| (\w+) \| (\w+) \| (\d+) \| ([\w.]+) \| (\d+) \| (\d+) \((\d+) − (\d+)\) \|$",
        demo,
        re.M,
    )
    assert [r[0] for r in rows] == ["conversational", "non_english"]
    for category, family, layer, hook, feature, score, n_in, n_out in rows:
        got = first.filter(pl.col("category") == category).row(0, named=True)
        assert (got["sae"], got["first_layer"], got["hook_name"]) == (family, int(layer), hook)
        assert (got["feature"], got["score"], got["n_in"], got["n_out"]) == tuple(
            map(int, (feature, score, n_in, n_out))
        )
    splits = comparison["splits"].filter(
        (pl.col("category") == "math") & (pl.col("child_sae") == "res_wide")
    )
    rows = re.findall(
        r"^\| `(math_\w+)` #(\d+) \| ([\d.]+) \| ([\d.]+) \| (\d+) \| (\d+) "
        r"\(([\d.]+)\) \| (\d+) \|$",
        demo,
        re.M,
    )
    assert len(rows) == 2
    for role, feature, cos, r, covered, assigned, share, outside in rows:
        assert int(feature) == planted["families"]["res_wide"]["2"][role]
        got = splits.filter(pl.col("child_feature") == int(feature)).row(0, named=True)
        assert f"{got['cosine']:.3f}" == cos and f"{got['correlation']:.2f}" == r
        assert (got["n_covered"], got["n_assigned"], got["n_out"]) == (
            int(covered),
            int(assigned),
            int(outside),
        )
        assert f"{got['share']:.3f}" == share
    written = comparison["related_features"].filter(
        (pl.col("relation") == "written_into") & (pl.col("rank") == 1) & (pl.col("layer") == 0)
    )
    for family, category in (("attn", "conversational"), ("mlp", "non_english")):
        writer = planted["families"][family]["0"][category]
        reader = planted["families"]["res"]["1"][category]
        prose = " ".join(demo.split())  # line breaks of the paragraph as spaces
        assert f"{family} layer-0 {category} feature (#{writer})" in prose
        assert f"#{reader}" in prose
        got = written.filter(
            (pl.col("sae") == family)
            & (pl.col("feature") == writer)
            & (pl.col("other_sae") == "res")
        ).row(0, named=True)
        assert f"**{got['cosine']:.3f}**" in prose and f"**{got['correlation']:.3f}**" in prose

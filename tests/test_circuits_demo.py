"""Circuits stage on the shared demo run (config/demo.yaml): the planted chain, path and dead end
come out of the tables; the tables agree with the model jobs' raw sums; graph.json, the pages
and the findings board's records are well formed. The values themselves are checked against
run_with_hooks in test_circuits_units.py."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from sae_specialists.demo.vocab import D_MODEL


@pytest.fixture(scope="module")
def circuits(demo_run):
    results = demo_run.results / "circuits"
    raw = {
        name: pl.concat(
            [pl.read_parquet(p) for p in sorted(results.glob(f"layers/*/*/{name}.parquet"))],
            how="diagonal_relaxed",
        )
        for name in ("roots", "downstream", "upstream", "verified")
    }
    return {
        "dir": results,
        "summary": pl.read_parquet(results / "specialists.parquet"),
        "edges": pl.read_parquet(results / "edges.parquet"),
        "nodes": pl.read_parquet(results / "nodes.parquet"),
        "raw": raw,
        "res": demo_run.planted["families"]["res"],
    }


def row(circuits, layer: int, category: str) -> dict:
    s = circuits["summary"].filter(
        (pl.col("family") == "res") & (pl.col("layer") == layer) & (pl.col("category") == category)
    )
    assert s.height == 1, (layer, category)
    return s.row(0, named=True)


def top_edge_into_layer1(circuits, a: int) -> dict:
    """The rank-1 downstream edge of res layer 0's feature ``a`` into res layer 1."""
    down = circuits["edges"].filter(
        (pl.col("root") == f"res/0/{a}")
        & (pl.col("direction") == "downstream")
        & pl.col("target").str.starts_with("res/1/")
    )
    return down.filter(pl.col("rank") == 1).row(0, named=True)


def test_every_residual_specialist_is_a_root(circuits, demo_run):
    specialists = (
        pl.read_parquet(demo_run.results / "tables/specialists.parquet")
        .filter(pl.col("has_specialist") & (pl.col("sae") == "res"))
        .select(pl.col("sae").alias("family"), "layer", "category", "feature")
        .sort("family", "layer", "category")
    )
    got = (
        circuits["summary"]
        .select("family", "layer", "category", "feature")
        .sort("family", "layer", "category")
    )
    assert got.to_dicts() == specialists.to_dicts()


def test_the_planted_chain(circuits, demo_run):
    """math layer 0 -> math layer 1 (planted.json["circuits"]["chain"]): A gives back 0.48 of
    the math dimension B reads, so ablating A lowers B by 0.96 of B's peak where A peaks,
    linearly. A -> B is A's top edge into layer 1, B <- A B's top upstream feature, attribution
    and ablation agree, Spearman over B's verified upstream >= 0.9, and B's completeness >= 0.9
    (the values themselves against run_with_hooks: test_circuits_units.py)."""
    chain = demo_run.planted["circuits"]["chain"]
    a, b = chain["a"]["feature"], chain["b"]["feature"]
    res = circuits["res"]
    assert (a, b) == (res["0"]["math"], res["1"]["math"])
    top = top_edge_into_layer1(circuits, a)
    assert top["target"] == f"res/1/{b}" and top["target_is_specialist"]
    rb = row(circuits, 1, "math")
    assert rb["top_upstream"] == f"res/0/{a}"
    # the same ratio both ways: B's drop over B's clean activation on the math texts; below the
    # planted 0.96 of B's peak since block 0 adds a little to the math dimension
    assert top["relative"] == pytest.approx(rb["top_upstream_measured_share"], rel=1e-3)
    assert 0.9 <= rb["top_upstream_measured_share"] <= chain["drop_share_at_peak"]
    assert rb["top_upstream_attributed_share"] == pytest.approx(
        rb["top_upstream_measured_share"], rel=0.02
    )
    assert rb["spearman"] >= 0.9
    assert rb["completeness"] >= chain["completeness_at_least"]


def test_the_detector_chain_runs_through_the_error_node(circuits, demo_run):
    """urls layer 0 -> urls layer 1: B falls by 2/sqrt(d_model) = a quarter of its peak where A
    peaks, exactly linearly (the all-ones row, which the LayerNorms ignore); B is mostly built
    from the urls marker that no layer-0 feature decodes (the error node), so its completeness
    stays low."""
    chain = demo_run.planted["circuits"]["detector_chain"]
    res = circuits["res"]
    a, b = chain["a"]["feature"], chain["b"]["feature"]
    assert (a, b) == (res["0"]["urls"], res["1"]["urls"])
    share = 2 / np.sqrt(D_MODEL)
    assert chain["drop_share_at_peak"] == pytest.approx(share)
    top = top_edge_into_layer1(circuits, a)
    assert top["target"] == f"res/1/{b}" and top["target_is_specialist"]
    # every marker token has A and B at their peaks up to block 0's small writes
    assert top["relative"] == pytest.approx(share, abs=0.01)
    rb = row(circuits, 1, "urls")
    assert rb["top_upstream"] == f"res/0/{a}"
    assert rb["top_upstream_attributed_share"] == pytest.approx(
        rb["top_upstream_measured_share"], rel=1e-3
    )
    assert rb["top_upstream_measured_share"] == pytest.approx(share, abs=0.01)
    assert rb["spearman"] >= 0.9
    assert rb["pearson"] >= 0.99
    assert rb["completeness"] < 0.5


def test_the_math_chain_is_a_path_through_every_layer(circuits):
    """Ablating math at layer L moves the next layer's math specialist most: by the planted
    chain's share from layer 0, silencing it from layers 1 and 2 (their rows give back the whole
    dimension)."""
    res = circuits["res"]
    for layer in range(3):
        r = row(circuits, layer, "math")
        assert r["next_layer_top"] == f"res/{layer + 1}/{res[str(layer + 1)]['math']}"
        assert r["next_layer_is_specialist"]
        if layer == 0:
            assert 0.9 <= r["next_layer_relative"] < 0.97
        else:
            assert r["next_layer_relative"] == pytest.approx(1.0)
    for layer in range(1, 4):
        r = row(circuits, layer, "math")
        assert r["completeness"] >= 0.9
        assert r["spearman"] >= 0.9


def test_the_dead_end(circuits):
    """urls at the last layer: nothing after its hook reads its direction; python at the same
    layer feeds block 3's attention and MLP features."""
    dead, live = row(circuits, 3, "urls"), row(circuits, 3, "python")
    assert dead["dead_end"] and dead["n_above_floor"] == 0
    assert dead["max_downstream_effect"] < 1e-5
    assert not live["dead_end"] and live["n_above_floor"] > 0


def test_edges_are_the_raw_sums_ranked(circuits):
    """Every downstream edge is -change_sum / n_tokens of its raw row and the top k by |effect|
    per root and later SAE (float noise below 1e-6 per token left out); every upstream edge
    attribution_sum / n_tokens."""
    raw = circuits["raw"]["downstream"]
    k = 10
    edges = circuits["edges"].filter(pl.col("direction") == "downstream")
    for root in edges["root"].unique().sort().to_list()[:6]:
        family, layer, feature = root.split("/")
        mine = raw.filter(
            (pl.col("family") == family)
            & (pl.col("layer") == int(layer))
            & (pl.col("feature") == int(feature))
        )
        for (tf, tl), group in mine.group_by(["target_family", "target_layer"]):
            effect = -group["change_sum"].to_numpy() / group["n_tokens"].to_numpy()
            order = np.lexsort((group["target_feature"].to_numpy(), -np.abs(effect)))[:k]
            order = order[np.abs(effect[order]) >= 1e-6]  # float noise is no edge
            expected = [f"{tf}/{tl}/{f}" for f in group["target_feature"].to_numpy()[order]]
            got = edges.filter(
                (pl.col("root") == root) & pl.col("target").str.starts_with(f"{tf}/{tl}/")
            ).sort("rank")
            assert got["target"].to_list() == expected
            np.testing.assert_allclose(got["weight"].to_numpy(), effect[order], rtol=1e-9)
    up = circuits["edges"].filter(
        (pl.col("direction") == "upstream") & ~pl.col("source").str.ends_with("/error")
    )
    joined = up.join(
        circuits["raw"]["upstream"].with_columns(
            pl.concat_str(
                ["source_family", pl.col("source_layer").cast(pl.String), "source_feature"],
                separator="/",
            ).alias("source"),
            pl.concat_str(
                ["family", pl.col("layer").cast(pl.String), "feature"], separator="/"
            ).alias("root"),
        ),
        on=["root", "category", "source"],
    )
    assert joined.height == up.height > 0
    np.testing.assert_allclose(
        joined["weight"].to_numpy(),
        (joined["attribution_sum"] / joined["n_tokens"]).to_numpy(),
        rtol=1e-9,
    )


def test_graph_json_is_the_documented_format(circuits):
    doc = json.loads((circuits["dir"] / "graph.json").read_text("utf-8"))
    assert doc["format"] == "sae-specialists circuits graph v1"
    ids = {n["node_id"] for n in doc["nodes"]}
    assert {n["jsNodeId"] for n in doc["nodes"]} == ids
    for link in doc["links"]:
        assert link["source"] in ids and link["target"] in ids
        assert {"weight", "kind", "root"} <= set(link)
    for n in doc["nodes"]:
        assert n["ctx_idx"] is None
        assert n["feature_type"] == ("sae error" if n["feature"] is None else "sae feature")
    roots = {f"{r['family']}/{r['layer']}/{r['feature']}" for r in doc["specialists"]}
    assert set(doc["qParams"]["pinnedIds"]) == roots <= ids


def test_findings_records(circuits, demo_run):
    from sae_specialists.core.verdicts import read_verdicts

    v = read_verdicts(demo_run.results / "circuits/verdicts.parquet")
    assert v.height == circuits["summary"].height
    dead = v.filter((pl.col("layer") == 3) & (pl.col("category") == "urls")).row(0, named=True)
    assert (dead["verdict"], dead["ok"]) == ("dead_end", False)
    math0 = v.filter((pl.col("layer") == 0) & (pl.col("category") == "math")).row(0, named=True)
    assert (math0["verdict"], math0["ok"]) == ("feeds_specialist", True)


def test_graph_pages_render_offline_and_link_dashboards(circuits, browser):
    """The urls layer-1 page: an SVG with the planted edge, node links to dashboards that exist."""
    res = circuits["res"]
    page_path = circuits["dir"] / "pages/sae=res/layer=1/urls.html"
    page = browser.new_page()
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(page_path.as_uri())
    assert page.locator("svg.graph path").count() > 0
    titles = page.locator("svg.graph path title").all_text_contents()
    assert any(t.startswith(f"res/0/{res['0']['urls']} → res/1/{res['1']['urls']}") for t in titles)
    hrefs = page.locator("svg.graph a").evaluate_all("els => els.map(e => e.getAttribute('href'))")
    assert hrefs  # the specialists have dashboards
    for href in hrefs:
        assert (page_path.parent / href).resolve().is_file(), href
    assert all(u.startswith(("file:", "data:", "about:")) for u in requests)
    page.close()


def test_top_k_floor_and_display_rerun_no_model_job(demo_run):
    """A dry run with new ranking and display settings schedules the tables job only."""
    from conftest import scheduled_jobs

    dry = demo_run.snakemake(
        "-n",
        "--config",
        "circuits={enabled: true, families: [res], top_k: 3, floor: 0.05, "
        "display: {edges_per_node: 2, error_nodes: false}}",
    )
    jobs = scheduled_jobs(dry)
    assert jobs.get("circuits_tables") == 1
    assert "circuits_layer" not in jobs and "circuits_roots" not in jobs

"""The surface stage on the shared demo run (docs/surface.md): the planted token specialists and
the planted context-gated one get their verdicts, and the numbers equal an independent
computation from the raw shards (pyarrow, plain loops, scikit-learn)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
import yaml
from sklearn.metrics import r2_score
from test_surface_units import loop_outside, loop_predictions

from sae_specialists.validation.folds import category_folds

TOKEN_PLANTS = ("python", "urls", "social")  # read a marker dimension of the embedding
CONTEXT_PLANT = "conversational"  # reads the direction block 0's attention writes after a cue
MEANING_PLANT = "math"  # reads the dimension its markers and the spelled-out words both write


@pytest.fixture(scope="module")
def surface(demo_run) -> pl.DataFrame:
    return pl.read_parquet(demo_run.results / "surface" / "specialists.parquet")


def row_of(surface: pl.DataFrame, layer: int, category: str) -> dict:
    rows = surface.filter(
        (pl.col("sae") == "res") & (pl.col("layer") == layer) & (pl.col("category") == category)
    )
    assert rows.height == 1, (layer, category)
    return rows.row(0, named=True)


@pytest.mark.parametrize("layer", [0, 1, 2, 3])
@pytest.mark.parametrize("category", TOKEN_PLANTS)
def test_planted_token_specialists_are_token_detectors(demo_run, surface, layer, category):
    r = row_of(surface, layer, category)
    assert r["feature"] == demo_run.planted["families"]["res"][str(layer)][category]
    # the marker dimension is in the embedding: at layer 0 the activation is a function of the
    # token id (float32 rounding only); later layers add the blocks' small context noise
    assert r["token_r2_seen"] > (0.9999 if layer == 0 else 0.99)
    assert r["outside_ratio"] == pytest.approx(1.0, abs=0.1) and r["n_trigger_out"] > 0
    assert r["markers_fired"] >= 0.8 * r["markers_n"] and r["markers_auroc"] > 0.85
    assert r["meaning_fired"] == 0
    assert r["verdict"] == "token_detector"


@pytest.mark.parametrize("layer", [0, 1, 2, 3])
def test_planted_meaning_specialist_reads_meaning(demo_run, surface, layer):
    """math reads a dimension that its markers and the words plus, equals, squared... both write
    (planted.json["surface"]["meaning"]): on the demo's texts it is a function of the token (the
    words never occur there), yet it fires on the meaning-only probe texts that spell
    arithmetic out, exactly those holding one of the words (counted here from the tokenizer;
    their activations: tests/test_demo.py), and on the markers-only texts too."""
    plant = demo_run.planted["surface"]["meaning"]
    assert plant["category"] == MEANING_PLANT
    r = row_of(surface, layer, MEANING_PLANT)
    assert r["feature"] == demo_run.planted["families"]["res"][str(layer)][MEANING_PLANT]
    assert r["token_r2_seen"] > (0.9999 if layer == 0 else 0.99)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(demo_run.assets / "model"))
    words = set(tokenizer.convert_tokens_to_ids(plant["tokens"]))
    probe_dir = Path(demo_run.config["surface"]["probe_texts"])
    texts = yaml.safe_load((probe_dir / MEANING_PLANT / "meaning.yaml").read_text("utf-8"))
    with_words = sum(bool(words & set(tokenizer(t)["input_ids"])) for t in texts)
    assert with_words >= 0.5 * len(texts)
    assert (r["meaning_n"], r["meaning_fired"]) == (len(texts), with_words)
    assert r["meaning_auroc"] >= 0.75 and r["markers_fired"] >= 0.8 * r["markers_n"]
    assert r["verdict"] == "meaning"
    assert r["verdict_label"].startswith("meaning (")
    assert f"; {with_words}/{len(texts)} meaning-only" in r["verdict_detail"]


@pytest.mark.parametrize("layer", [1, 2, 3])
def test_planted_context_specialist_is_context_gated(demo_run, surface, layer):
    r = row_of(surface, layer, CONTEXT_PLANT)
    assert r["feature"] == demo_run.planted["families"]["res"][str(layer)][CONTEXT_PLANT]
    assert r["token_r2_seen"] < 0.1
    assert r["outside_ratio"] < 0.01 and r["n_trigger_out"] > 1000
    assert r["meaning_fired"] == 0
    assert r["verdict"] == "context_gated"


def raw_texts(results, layer: int, feature: int):
    """(texts as (tokens, activations) over counted positions, category index per text, the
    category names) read with pyarrow from the shards, texts in the text list's order."""
    order = pl.read_parquet(results / "per_text" / "texts.parquet").sort("text_order")
    tokens, acts = {}, {}
    for path in sorted((results / "tokens").rglob("tokens.parquet")):
        t = pq.read_table(path).to_pydict()
        for tid, pos, tok, bos in zip(
            t["text_id"], t["token_pos"], t["token_id"], t["bos"], strict=True
        ):
            if not bos:
                tokens.setdefault(tid, []).append((pos, tok))
    for path in sorted((results / "activations" / "sae=res" / f"layer={layer}").rglob("*.parquet")):
        a = pq.read_table(path).to_pydict()
        for tid, pos, f, v in zip(
            a["text_id"], a["token_pos"], a["feature"], a["activation"], strict=True
        ):
            if f == feature:
                acts[(tid, pos)] = v
    texts = []
    for tid in order["text_id"].to_list():
        toks = sorted(tokens[tid])
        texts.append(([x for _, x in toks], [acts.get((tid, p), 0.0) for p, _ in toks]))
    names = sorted(set(order["category"].to_list()))
    cats = np.array([names.index(c) for c in order["category"].to_list()])
    return texts, cats, names


@pytest.mark.parametrize("category", ["python", CONTEXT_PLANT])
def test_numbers_equal_an_independent_computation(demo_run, surface, category):
    layer = 2
    r = row_of(surface, layer, category)
    texts, cats, names = raw_texts(demo_run.results, layer, r["feature"])
    c = names.index(category)
    folds = category_folds(cats, c, demo_run.config["validation"]["folds"], 0)
    y, pred, seen = loop_predictions(texts, folds, lambda t, i: texts[t][0][i])
    assert r["n_positions"] == len(y)
    assert r["token_r2"] == pytest.approx(r2_score(y, pred), abs=1e-9)
    assert r["token_r2_seen"] == pytest.approx(r2_score(y[seen], pred[seen]), abs=1e-9)
    triggers = set(
        pl.read_parquet(demo_run.results / "surface" / "tokens.parquet")
        .filter((pl.col("layer") == layer) & (pl.col("category") == category) & pl.col("trigger"))[
            "token_id"
        ]
        .to_list()
    )
    n_in, n_out, mean_in, mean_out = loop_outside(texts, cats == c, triggers)
    assert (r["n_trigger_in"], r["n_trigger_out"]) == (n_in, n_out)
    assert r["outside_ratio"] == pytest.approx(mean_out / mean_in, rel=1e-9)


def test_probe_counts_equal_the_raw_probe_shards(demo_run, surface):
    """Per probe text, the largest activation over its non-BOS positions, from the probe
    shards; the counts above the threshold equal the table's."""
    layer, category = 2, "python"
    r = row_of(surface, layer, category)
    probe = demo_run.results / "surface" / "probe"
    index = pl.read_parquet(probe / "index.parquet")
    bos = set()
    for path in (probe / "tokens").rglob("tokens.parquet"):
        t = pq.read_table(path).to_pydict()
        bos |= {(i, p) for i, p, b in zip(t["text_id"], t["token_pos"], t["bos"], strict=True) if b}
    top: dict[str, float] = {}
    for path in (probe / "activations" / "sae=res" / f"layer={layer}").rglob("*.parquet"):
        a = pq.read_table(path).to_pydict()
        for tid, pos, f, v in zip(
            a["text_id"], a["token_pos"], a["feature"], a["activation"], strict=True
        ):
            if f == r["feature"] and (tid, pos) not in bos:
                top[tid] = max(top.get(tid, 0.0), v)
    threshold = demo_run.config["analysis"]["threshold"]
    for name in ("meaning", "markers"):
        ids = index.filter((pl.col("category") == category) & (pl.col("set") == name))["text_id"]
        assert r[f"{name}_n"] == ids.len()
        assert r[f"{name}_fired"] == sum(top.get(t, 0.0) > threshold for t in ids.to_list())


def test_board_records_and_dashboard_block(demo_run, surface):
    board = pl.read_parquet(demo_run.results / "surface" / "verdicts.parquet")
    assert board.height == surface.height and set(board["stage"]) == {"surface"}
    assert board["ok"].null_count() == board.height  # a characterisation, never for or against
    assert set(board["label"]) <= {"token detector", "context-gated", "meaning", "mixed"}
    r = row_of(surface, 2, "python")
    page = (
        demo_run.results / "dashboards" / "sae=res" / "layer=2" / f"feature={r['feature']}.html"
    ).read_text(encoding="utf-8")
    assert "What it detects" in page and "token detector" in page


def split_design(results, tmp_path):
    """The demo's texts relabelled into a topic x form design: the python texts split in two
    forms of topic *code* (both carry the python markers: they share the python specialist),
    urls and social the two forms of topic *web* (different markers: no shared specialist).
    Returns (texts path, design, labels per text)."""
    txt = pl.read_parquet(results / "per_text" / "texts.parquet").sort("text_order")
    python = txt.filter(pl.col("category") == "python")["text_id"].to_list()
    first = set(python[: len(python) // 2])
    relabel = {t: ("python_a" if t in first else "python_b") for t in python}
    out = txt.with_columns(
        pl.col("text_id").replace_strict(relabel, default=pl.col("category")).alias("category")
    )
    path = tmp_path / "texts.parquet"
    out.write_parquet(path)
    design = {"python_a": "code/a", "python_b": "code/b", "urls": "web/a", "social": "web/b"}
    return path, design, out


def test_topic_form_design_on_the_demo_shards(demo_run, tmp_path):
    check_topic_design(demo_run.results, demo_run.planted, 2, tmp_path)


def check_topic_design(results, planted, layer, tmp_path):
    """Against every category the shared python feature scores ~0 in each half (it fires in the
    other half too); against the other topics it is both halves' specialist: Jaccard 1; urls
    and social share none: Jaccard 0. Numbers equal a direct computation from the raw
    per-text values and pooled residuals."""
    from sae_specialists.surface.design import design_tables

    texts, design, labels = split_design(results, tmp_path)
    spec = {
        "sae": "res",
        "layer": layer,
        "per_text": str(results / "per_text" / "sae=res" / f"layer={layer}.parquet"),
        "activations": sorted(
            str(p)
            for p in (results / "activations" / "sae=res" / f"layer={layer}").rglob("*.parquet")
        ),
        "pooled": sorted(
            str(p) for p in (results / "pooled" / "sae=res" / f"layer={layer}").rglob("*.parquet")
        ),
    }
    forms, topics = design_tables(
        [spec],
        tokens=sorted(str(p) for p in (results / "tokens").rglob("tokens.parquet")),
        texts=str(texts),
        specialists=pl.read_parquet(results / "tables" / "specialists.parquet"),
        design=design,
        markers={},
        threshold=5.0,
        candidates=5,
        topk=3,
        permutations=199,
        seed=0,
        include_bos=False,
    )
    python = planted["families"]["res"][str(layer)]["python"]
    other = forms.filter(pl.col("against") == "other_topics")
    code = other.filter(pl.col("topic") == "code")
    assert code["feature"].to_list() == [python, python] and code["has_specialist"].all()
    everyone = forms.filter((pl.col("against") == "all") & (pl.col("topic") == "code"))
    assert not everyone["has_specialist"].any()  # the topic feature is never found that way
    by_topic = {r["topic"]: r for r in topics.iter_rows(named=True)}
    assert by_topic["code"]["jaccard_specialists"] == 1.0
    assert by_topic["web"]["jaccard_specialists"] == 0.0
    assert by_topic["code"]["jaccard_specialists_all"] is None  # neither half has one
    # independent: the per-text values and pooled rows read with pyarrow
    order = labels["text_id"].to_list()
    cats = labels["category"].to_list()
    values = {}
    for row in pq.read_table(spec["per_text"]).to_pylist():
        if row["feature"] == python:
            values[row["text_id"]] = row["value"]
    v = np.array([values.get(t, 0.0) for t in order])
    for half, rest in (("python_a", "python_b"), ("python_b", "python_a")):
        inside = np.array([c == half for c in cats])
        out_all = np.array([c != half for c in cats])
        out_topics = np.array([c not in (half, rest) for c in cats])
        n_in = int((v[inside] > 5).sum())
        row = code.filter(pl.col("category") == half).row(0, named=True)
        assert row["score"] == n_in - int((v[out_topics] > 5).sum())
        assert n_in - int((v[out_all] > 5).sum()) <= 0
    pooled = {}
    for path in spec["pooled"]:
        for row in pq.read_table(path).to_pylist():
            pooled[row["text_id"]] = np.array(row["resid_mean"], dtype=np.float64)
    names = {
        "python_a": ("code", "a"),
        "python_b": ("code", "b"),
        "urls": ("web", "a"),
        "social": ("web", "b"),
    }
    keep = [i for i, c in enumerate(cats) if c in names]
    x = np.array([pooled[order[i]] for i in keep])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    tf = [names[cats[i]] for i in keep]
    within, across = [], []
    for i in range(len(keep)):
        for j in range(i + 1, len(keep)):
            if tf[i][0] == tf[j][0] and tf[i][1] != tf[j][1]:
                within.append(x[i] @ x[j])
            elif tf[i][0] != tf[j][0] and tf[i][1] != tf[j][1]:
                across.append(x[i] @ x[j])
    assert by_topic["code"]["within_topic"] == pytest.approx(np.mean(within))
    assert by_topic["code"]["across"] == pytest.approx(np.mean(across))
    assert by_topic["code"]["within_topic"] > by_topic["code"]["across"]  # clusters by topic


# -- cross-links and the depth sentence in the report (docs/surface.md, "Cross-links") --------


def _md_rows(text: str, first_header: str, after: str = "") -> tuple[list[str], list[list[str]]]:
    """The header and rows of the first Markdown table after the line ``after`` whose first
    column is ``first_header``."""
    lines = text.splitlines()
    begin = lines.index(after) if after else 0
    start = next(
        i for i, line in enumerate(lines) if i > begin and line.startswith(f"| {first_header} |")
    )
    split = lambda line: [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]  # noqa: E731
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(split(line))
    return split(lines[start]), rows


def _linked(cell: str) -> tuple[str, str]:
    """(text, href) of a Markdown link cell."""
    match = re.fullmatch(r"\[(.*)\]\(([^)]*)\)", cell)
    assert match, cell
    return match.group(1).replace("\\", ""), match.group(2)


def _labels(path) -> dict:
    board = pl.read_parquet(path)
    return {(r["family"], r["layer"], r["category"]): r for r in board.iter_rows(named=True)}


def test_summaries_are_cross_linked(demo_run, surface):
    """validation/summary.md and the causal pages show each specialist's surface verdict linked
    to surface/summary.md; surface/summary.md shows its validation and causal verdicts linked
    to theirs; every link's target exists (relative to the page)."""
    results = demo_run.results
    surface_labels = _labels(results / "surface" / "verdicts.parquet")
    validation = _labels(results / "validation" / "verdicts.parquet")
    causal = _labels(results / "causal" / "verdicts.parquet")

    # surface/summary.md: validation and causal columns
    text = (results / "surface" / "summary.md").read_text(encoding="utf-8")
    header, rows = _md_rows(text, "sae", "## Every specialist")
    v_col, c_col = header.index("validation"), header.index("causal check")
    checked = {"validation": 0, "causal": 0}
    for row in rows:
        key = (row[0], int(row[1]), row[2].replace("\\", ""))
        for col, labels, stage in ((v_col, validation, "validation"), (c_col, causal, "causal")):
            record = labels.get(key)
            if record is None or record["feature"] != int(row[3]):
                assert row[col] == "–", (stage, row)
                continue
            label, href = _linked(row[col])
            assert label == record["label"]
            assert (results / "surface" / href).resolve().is_file(), href
            checked[stage] += 1
    assert checked["validation"] > 0 and checked["causal"] > 0
    assert len(rows) == surface.height

    # validation/summary.md and its page: a "what it detects" column
    text = (results / "validation" / "summary.md").read_text(encoding="utf-8")
    header, rows = _md_rows(text, "SAE")
    col = header.index("what it detects")
    linked = 0
    for row in rows:
        record = surface_labels.get((row[0], int(row[1]), row[2].replace("\\", "")))
        if record is None or row[3] == "–" or record["feature"] != int(row[3]):
            assert row[col] == "–", row
            continue
        label, href = _linked(row[col])
        assert label == record["label"] and href == "../surface/summary.md"
        assert (results / "validation" / href).resolve().is_file()
        linked += 1
    assert linked == surface.filter(pl.col("sae") == "res").height  # validation: res only
    page = (results / "validation" / "summary.html").read_text(encoding="utf-8")
    assert page.count('href="../surface/summary.md"') == linked

    # the causal pages: index and each cell's page
    pages = results / "causal" / "pages"
    index = (pages / "index.html").read_text(encoding="utf-8")
    shown = re.findall(r"<td class='l'><a href='([^']+)'>([^<]+)</a></td></tr>", index)
    expected = [
        surface_labels[k]["label"]
        for k in sorted(causal)
        if k in surface_labels and surface_labels[k]["feature"] == causal[k]["feature"]
    ]
    assert sorted(label for _, label in shown) == sorted(expected) and expected
    assert {href for href, _ in shown} == {"../../surface/summary.md"}
    assert (pages / "../../surface/summary.md").resolve().is_file()
    for (family, layer, category), record in surface_labels.items():
        cell = pages / f"sae={family}" / f"layer={layer}" / f"{category}.html"
        if not cell.is_file():
            continue
        page = cell.read_text(encoding="utf-8")
        href = re.search(r"What it detects \(surface stage\): <a href='([^']+)'>([^<]+)</a>", page)
        assert href and href.group(2) == record["label"], cell
        assert (cell.parent / href.group(1)).resolve() == (
            results / "surface" / "summary.md"
        ).resolve()


def test_depth_sentence_reaches_the_report(demo_run, surface):
    """The depth sentence (surface/depth.md, the stage's headline): its numbers recomputed from
    the specialists table; on index.html under the board; in summary.md and analysis.html a
    pointer to surface/summary.md (the demo's probe texts need the model, and `snakemake
    analysis` never runs it)."""
    import html

    results = demo_run.results
    sentence = (results / "surface" / "depth.md").read_text(encoding="utf-8").strip()
    res = surface.filter(pl.col("sae") == "res")
    first, last = min(res["layer"]), max(res["layer"])
    for layer in (first, last):
        part = res.filter(pl.col("layer") == layer)
        r2 = np.mean([v for v in part["token_r2_seen"].to_list() if v is not None])
        tokens = np.mean([v == "token_detector" for v in part["verdict"].to_list()])
        assert f"{r2:.2f} at layer {layer}" in sentence
        assert f"{tokens:.0%}" in sentence
    index = (results / "index.html").read_text(encoding="utf-8")
    assert html.escape(sentence) in index
    assert '<a href="surface/summary.md">' in index
    summary = (results / "summary.md").read_text(encoding="utf-8")
    assert "## What specialists detect, by depth" in summary
    assert "[surface/summary.md](surface/summary.md)" in summary
    analysis = (results / "analysis.html").read_text(encoding="utf-8")
    assert "What specialists detect, by depth" in analysis
    assert 'href="surface/summary.md"' in analysis


def test_depth_sentence_in_summary_when_the_stage_needs_no_model(demo_run, tmp_path):
    """Without probe texts the surface stage reads shards only: `snakemake analysis` puts its
    verdicts on analysis.html's board and the depth sentence itself in summary.md and
    analysis.html, and runs no model job."""
    import html

    from conftest import md_escaped, scheduled_jobs

    copy = demo_run.copy(tmp_path / "demo")
    config = {**copy.config, "surface": {**copy.config["surface"], "probe_texts": None}}
    dry = copy.snakemake("-n", "analysis", config=config)
    jobs = scheduled_jobs(dry)
    assert "surface_verdicts" in jobs and "analysis_report" in jobs
    assert not [j for j in jobs if j.startswith(("extract", "causal", "surface_probe"))], jobs
    copy.snakemake("--cores", "2", "analysis", config=config, timeout=1200)
    sentence = (copy.results / "surface" / "depth.md").read_text(encoding="utf-8").strip()
    assert sentence.startswith("SAE res: mean token R²")
    summary = (copy.results / "summary.md").read_text(encoding="utf-8")
    assert "## What specialists detect, by depth" in summary
    assert md_escaped(sentence) in summary
    analysis = (copy.results / "analysis.html").read_text(encoding="utf-8")
    assert html.escape(sentence) in analysis

"""The findings board on the shared demo run (issue 26 items 1-2, issue 28 item 3).

- index.html and analysis.html open with every family's board on the first screen (1300 x 900
  in headless Chromium); every cell's shown verdict is recomputed here from the stages'
  verdict tables (``<stage>/verdicts.parquet``); analysis.html shows only the stages that need
  no model (never the causal check's);
- the no-signal ``recipes`` specialists read "chance" on the boards, in analysis.html's tables
  and on their dashboards-index badges (never the orange badge of a validated specialist);
- (``snakemake analysis`` after a threshold change runs no job that imports torch:
  test_analysis_demo.py, with tests/torch_watch.py);
- files of another configuration in the same results_dir are listed apart on index.html and
  deleted by ``snakemake clean_foreign``.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import quote

import polars as pl
import pytest
import yaml
from browser import open_offline
from conftest import REPO, SNAKEMAKE

from sae_specialists.core.layout import Layout
from sae_specialists.report.findings import REGISTRY, source

MARKS_AGAINST = ("✗", "⊘")


def verdict_tables(results: Path) -> dict[str, pl.DataFrame]:
    """stage -> its verdict table as the stage wrote it, for every registered stage that
    wrote one."""
    layout = Layout.of(str(results), [], [], [])
    paths = {s.stage: Path(s.path(layout)) for s in REGISTRY}
    return {stage: pl.read_parquet(p) for stage, p in paths.items() if p.is_file()}


def expected_label(cell: dict, stages: list[str], tables: dict[str, pl.DataFrame]) -> str:
    """The combined verdict of one board cell, from the tables: the verdicts against it (with
    their stage's mark), else the supporting ones, else "not tested"."""
    against, support = [], []
    for stage in stages:
        rows = tables[stage].filter(
            (pl.col("family") == cell["family"])
            & (pl.col("layer") == int(cell["layer"]))
            & (pl.col("category") == cell["category"])
            & (pl.col("feature").is_null() | (pl.col("feature") == int(cell["feature"])))
        )
        if rows.height == 0:
            continue
        r = rows.row(0, named=True)
        if r["ok"] is False:
            against.append(f"{source(stage).mark} {r['label']}")
        elif r["ok"] is True:
            support.append(r["label"])
    return " · ".join(against or support) or "not tested"


READ_BOARD = """() => [...document.querySelectorAll('#findings .board')].map(b => ({
  family: b.dataset.family,
  bottom: b.getBoundingClientRect().bottom,
  right: b.getBoundingClientRect().right,
  cells: [...b.querySelectorAll('td.cell[data-feature]')].map(td => ({
    family: td.dataset.family, layer: td.dataset.layer, category: td.dataset.category,
    feature: td.dataset.feature, status: td.dataset.status,
    verdicts: JSON.parse(td.dataset.verdicts), shown: td.querySelector('.v').textContent,
    href: td.querySelector('a') && td.querySelector('a').getAttribute('href')}))}))"""


def read_board(browser, page_path: Path):
    page, errors, blocked = open_offline(browser, page_path, viewport=(1300, 900))
    try:
        boards = page.evaluate(READ_BOARD)
    finally:
        page.close()
    assert not errors and not blocked
    return boards


@pytest.mark.parametrize("name", ["index.html", "analysis.html"])
def test_board_on_first_screen_matches_the_verdict_tables(demo_run, browser, name):
    results = demo_run.results
    tables = verdict_tables(results)
    assert {"validation", "causal"} <= set(tables)
    boards = read_board(browser, results / name)
    specialists = pl.read_parquet(results / "tables" / "specialists.parquet")
    assert sorted(b["family"] for b in boards) == sorted(specialists["sae"].unique().to_list())
    for board in boards:  # every family's board on the first screen
        assert board["bottom"] <= 900 and board["right"] <= 1300, board["family"]
    cells = [c for b in boards for c in b["cells"]]
    with_specialist = specialists.filter(pl.col("has_specialist"))
    assert len(cells) == with_specialist.height
    shown_stages = {s for c in cells for s in c["verdicts"]}
    assert shown_stages <= set(tables)  # a stage on the board has written its table
    if name == "index.html":
        assert {"validation", "causal"} <= shown_stages
    else:  # the stages that need no model: never the causal check (needs_model)
        assert "causal" not in shown_stages and "validation" in shown_stages
    checked = 0
    for c in cells:
        stages = sorted(c["verdicts"], key=lambda s: source(s).order)
        assert c["shown"] == expected_label(c, stages, tables), c
        assert (results / c["href"]).is_file(), c["href"]  # the specialist's dashboard
        checked += 1
    assert checked > 20


def test_recipes_is_marked_chance_everywhere(demo_run, browser):
    results = demo_run.results
    val = pl.read_parquet(results / "validation" / "verdicts.parquet")
    recipes = val.filter(pl.col("category") == "recipes")
    assert recipes.height and set(recipes["verdict"]) == {"chance"}
    assert set(recipes["ok"]) == {False}
    for name in ("index.html", "analysis.html"):
        cells = [c for b in read_board(browser, results / name) for c in b["cells"]]
        shown = {
            (c["family"], int(c["layer"])): c["shown"]
            for c in cells
            if c["category"] == "recipes" and c["family"] == "res"
        }
        assert shown and all("✗ chance" in s for s in shown.values()), shown
    analysis = (results / "analysis.html").read_text(encoding="utf-8")
    # the summary's specialist table and the token-view grid mark every recipes specialist
    rows = re.findall(r"<tr><td>recipes</td>(.*?)</tr>", analysis, re.S)
    assert sum(r.count("✗ chance") for r in rows) >= 2 * recipes.height
    index = (results / "dashboards" / "index.html").read_text(encoding="utf-8")
    badges = re.findall(r'<span class="badge specialist[^"]*"[^>]*>[^<]*recipes[^<]*</span>', index)
    res_badges = [b for b in badges if "against" in b]
    assert len(res_badges) >= recipes.height
    assert all("chance" in b for b in res_badges)
    assert "✗" in index and "<th>validation</th>" in index


def run(work: Path, config: Path, *args, env=None, timeout=900):
    cmd = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(work)]
    return subprocess.run(
        cmd + ["--configfile", str(config), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_another_configurations_files_are_listed_apart_and_cleaned(demo_run, tmp_path):
    copy = demo_run.copy(tmp_path / "demo")
    res = copy.results
    foreign = [
        "per_text/sae=res/layer=7.parquet",
        "per_text/sae=ghost/layer=0.parquet",
        "tokens/category=gone/chunk=00000/tokens.parquet",
        "logits/sae=res/layer=7.parquet",
    ]
    for rel in foreign:
        (res / rel).parent.mkdir(parents=True, exist_ok=True)
        (res / rel).write_bytes(b"PAR1")
    cfg = copy.work / "config.yaml"
    cfg.write_text(yaml.safe_dump(copy.config, allow_unicode=True))
    proc = run(
        copy.work,
        cfg,
        "--cores",
        "1",
        "--forcerun",
        "report_index",
        f"{copy.config['results_dir']}/index.html",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    page = (res / "index.html").read_text(encoding="utf-8")
    ours, _, apart = page.partition('id="foreign"')
    for rel in foreign:
        assert rel not in ours and rel in apart
    assert quote("per_text/sae=res/layer=1.parquet") in ours
    proc = run(copy.work, cfg, "--cores", "1", "clean_foreign")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not any((res / rel).exists() for rel in foreign)
    assert not (res / "per_text" / "sae=ghost").exists()
    assert (res / "per_text" / "sae=res" / "layer=1.parquet").is_file()
    assert (res / "tables" / "specialists.parquet").is_file()


def test_dashboards_index_filters_and_sorts_by_verdict(demo_run, browser):
    results = demo_run.results
    val = pl.read_parquet(results / "validation" / "verdicts.parquet")
    chance = {
        (r["family"], r["layer"], r["feature"])
        for r in val.iter_rows(named=True)
        if r["verdict"] == "chance"
    }
    page, errors, blocked = open_offline(browser, results / "dashboards" / "index.html")
    try:
        page.select_option('select[data-stage="validation"]', "chance")
        shown = page.evaluate(
            """() => [...document.querySelectorAll('#dashboards tbody tr')]
                .filter(tr => tr.style.display !== 'none')
                .map(tr => [tr.dataset.family, +tr.dataset.layer, +tr.dataset.feature])"""
        )
        assert {tuple(r) for r in shown} == chance and len(shown) == len(chance)
        page.select_option('select[data-stage="validation"]', "")
        heads = page.locator("#dashboards thead th")
        column = [heads.nth(i).inner_text() for i in range(heads.count())].index("validation")
        heads.nth(column).click()
        values = page.evaluate(
            f"""() => [...document.querySelectorAll('#dashboards tbody tr')]
                .map(tr => tr.children[{column}].textContent)"""
        )
        assert values == sorted(values)
        heads.nth(column).click()
        again = page.evaluate(
            f"""() => [...document.querySelectorAll('#dashboards tbody tr')]
                .map(tr => tr.children[{column}].textContent)"""
        )
        assert again == sorted(values, reverse=True)
    finally:
        page.close()
    assert not errors and not blocked

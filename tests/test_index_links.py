"""index.html links everything the run produced, by stage (issue 16, item 4): checked on a
hand-made results tree (a stage the index has never heard of included) and by walking the
shared demo run's results directory."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

from sae_specialists.report.overview import STAGES, run_files, write_index

CHECKED = (".html", ".png", ".csv", ".parquet")


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.targets: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src") and value:
                self.targets.append(value)


def reachable(start: Path, root: Path) -> set[Path]:
    """Files under ``root`` reached from ``start`` by following links through HTML pages."""
    seen: set[Path] = set()
    todo = [start.resolve()]
    while todo:
        page = todo.pop()
        if page in seen:
            continue
        seen.add(page)
        if page.suffix != ".html" or not page.is_file():
            continue
        parser = Links()
        parser.feed(page.read_text(encoding="utf-8"))
        for target in parser.targets:
            url = urlparse(target)
            if url.scheme or target.startswith("#"):
                continue
            path = (page.parent / unquote(url.path)).resolve()
            if path.is_relative_to(root.resolve()) and path not in seen:
                todo.append(path)
    return seen


def outputs(root: Path, exclude: tuple[Path, ...] = ()) -> set[Path]:
    out = set()
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if (
            path.is_file()
            and path.suffix in CHECKED
            and rel.parts[0] != "logs"
            and not any(part.startswith(".") for part in rel.parts)
            and not any(path.resolve().is_relative_to(e.resolve()) for e in exclude)
        ):
            out.add(path.resolve())
    return out


def make(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")


def test_every_file_of_every_stage_is_linked(tmp_path):
    root = tmp_path / "results"
    make(
        root,
        "analysis.html",
        "summary.md",
        "tables/specialists.parquet",
        "tables/specialists.csv",
        "tables/specialists_stability.parquet",
        "charts/peak_by_layer.html",
        "charts/peak_by_layer.png",
        "charts/specialist_stability_sae=res.png",
        "token_views/sae=res/layer=1/math.html",
        "dashboards/index.html",
        "dashboards/sae=res/layer=1/feature=7.html",
        "dashboards/sae=res/layer=1/examples.parquet",
        "methodology/summary.md",
        "methodology/charts/auroc.png",
        "tokens/category=math/chunk=00000/tokens.parquet",
        "novel_stage/results table.csv",  # a stage added later, a space in a name
        "logs/extract/x.log",
        ".snakemake/state.parquet",
        "demo/assets/model/model.safetensors",
        "demo/assets/planted.json",
    )
    index = root / "index.html"
    n = write_index(root, index, exclude=(str(root / "demo/assets"),))
    text = index.read_text(encoding="utf-8")
    assert outputs(root, (root / "demo/assets",)) - reachable(index, root) == set()
    assert n == len(run_files(root, (str(root / "demo/assets"), str(index))))
    assert "planted.json" not in text and "state.parquet" not in text and "x.log" not in text
    # one section per stage, in reading order, each with its "read this first" line
    sections = re.findall(r'<section class="stage" id="stage-([^"]+)">', text)
    assert sections == ["analysis", "dashboards", "methodology", "extraction", "novel_stage"]
    assert text.count("Read this first:") == len(sections)
    assert STAGES["methodology"].first in text
    methodology = text[text.index('id="stage-methodology"') : text.index('id="stage-extraction"')]
    assert "specialist_stability_sae=res.png" in methodology  # charts/ file, methodology's
    assert "Outputs of the novel_stage stage" in text and "results%20table.csv" in text


def test_demo_run_index_reaches_every_output(demo_run):
    root = demo_run.results
    index = root / "index.html"
    assert index.is_file()
    demo_dir = Path(demo_run.config["demo"]["dir"])
    assets = demo_dir if demo_dir.is_absolute() else demo_run.work / demo_dir
    missing = outputs(root, (assets,)) - reachable(index, root)
    assert not missing, sorted(str(p.relative_to(root)) for p in missing)[:20]
    text = index.read_text(encoding="utf-8")
    for stage in ("analysis", "dashboards", "methodology"):
        assert f'id="stage-{stage}"' in text

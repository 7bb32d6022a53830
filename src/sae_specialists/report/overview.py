"""results/index.html: the map of everything a run produced, grouped by stage.

Built last (rule ``report_index`` depends on every output of ``rule all``) by walking the
results directory, so whatever a stage writes is linked without the index knowing about it: a
new stage's directory appears as a group of its own. Each stage starts with a short "read this
first" line and its main pages; then every table (CSV and Parquet side by side), chart (HTML and
PNG), page and other file, by directory. Extraction shards are listed in a collapsed block.
Logs, hidden files and the demo's model files are left out (docs/troubleshooting.md: logs).
"""

from __future__ import annotations

import html
import os
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..core.html import page

LINKED = (".html", ".png", ".csv", ".parquet", ".md", ".json", ".svg", ".jsonl", ".gz")
SKIPPED_DIRS = {"logs"}
LONG_LIST = 12  # a directory with more entries is listed collapsed


@dataclass(frozen=True)
class Stage:
    title: str
    first: str  # the "read this first" line
    main: tuple[str, ...] = ()  # results-relative paths shown first, when they exist


# Top-level directories (or files) of results_dir -> stage; anything else is a stage of its own.
STAGE_OF = {
    "tokens": "extraction",
    "activations": "extraction",
    "pooled": "extraction",
    "analysis.html": "analysis",
    "summary.md": "analysis",
    "per_text": "analysis",
    "tables": "analysis",
    "charts": "analysis",
    "token_views": "analysis",
    "logits": "dashboards",
    "dashboards": "dashboards",
    "corpus": "dashboards",
    "export": "export",
}
STAGES = {
    "analysis": Stage(
        "Analysis",
        "Start here: the run's summary, the charts and the specialist of each category at each "
        "layer, with token views showing where it fires.",
        ("analysis.html", "summary.md"),
    ),
    "dashboards": Stage(
        "Feature dashboards",
        "One page per specialist and per strongest / most frequent feature: examples, "
        "histogram, per-category profile and logit effects (docs/dashboards.md).",
        ("dashboards/index.html",),
    ),
    "methodology": Stage(
        "Methodology study",
        "How the pitfalls of the original study change its numbers (padding, averaging before "
        "encoding, threshold, top-k candidates) and how stable each specialist is under "
        "bootstrap (docs/methodology.md).",
        ("methodology/summary.md",),
    ),
    "validation": Stage(
        "Validation",
        "Whether each specialist survives held-out texts, a shuffled-label null and probe "
        "baselines; failing cells are marked everywhere (docs/validation.md).",
        ("validation/summary.html", "validation/summary.md"),
    ),
    "causal": Stage(
        "Causal check",
        "What ablating or steering each specialist does to the model's predictions "
        "(docs/causal.md).",
        ("causal/pages/index.html",),
    ),
    "circuits": Stage(
        "Specialist circuits",
        "What feeds each specialist and what it feeds: later features its ablation moves, "
        "earlier features that build it (attribution verified by ablation), as layered graphs "
        "(docs/circuits.md).",
        ("circuits/pages/index.html", "circuits/specialists.csv"),
    ),
    "comparison": Stage(
        "Comparison across SAE families",
        "Residual vs attention vs MLP SAEs, cross-layer tracking and splitting across widths "
        "(docs/comparison.md).",
        (
            "comparison/charts/components.html",
            "comparison/charts/specialist_links.html",
            "comparison/charts/splits.html",
        ),
    ),
    "surface": Stage(
        "What each specialist detects",
        "Token detector, context-gated or meaning: held-out token R², trigger tokens outside "
        "the category and probe texts without markers, per specialist and by depth "
        "(docs/surface.md).",
        ("surface/summary.md", "surface/charts/token_r2_by_layer.html"),
    ),
    "export": Stage(
        "Neuronpedia export",
        "The dashboards in the layout of SAEDashboard's Neuronpedia runner, per SAE family and "
        "layer, ready for upload (docs/dashboards.md).",
    ),
    "datasets": Stage(
        "Categories from datasets",
        "Where each category drawn from a dataset came from: dataset, configuration, split, "
        "filter, seed, n, revision or fingerprint, and the drawn texts' digest "
        "(docs/configuration.md, 'Categories from datasets').",
        ("datasets/provenance.md",),
    ),
    "extraction": Stage(
        "Extraction shards",
        "Token and activation shards every later stage reads (docs/data-contract.md); for "
        "your own analyses.",
    ),
}
ORDER = [
    "analysis",
    "dashboards",
    "methodology",
    "validation",
    "causal",
    "circuits",
    "comparison",
    "export",
    "datasets",
    "extraction",
]
# a file elsewhere that belongs to another stage (the methodology's stability chart and table)
FILE_STAGE_PREFIXES = {
    "charts/specialist_stability": "methodology",
    "tables/specialists_stability": "methodology",
}

CSS = """
section.stage{margin:1.2em 0 1.8em}
p.first{background:#f1f8ff;border-left:4px solid #1c7ed6;padding:.35em .7em}
ul.files{columns:2 22em;margin:.3em 0}
ul.files li{break-inside:avoid}
.kind{color:#777;font-size:.85em}
details summary{cursor:pointer;color:#555}
h3{font-size:1em;margin:.8em 0 .2em;color:#444}
"""


def stage_of(rel: str) -> str:
    for prefix, stage in FILE_STAGE_PREFIXES.items():
        if rel.startswith(prefix):
            return stage
    top = rel.split("/", 1)[0]
    return STAGE_OF.get(top, top)


def run_files(results_dir: str | os.PathLike, exclude: tuple[str, ...] = ()) -> list[str]:
    """Results-relative paths (POSIX) of every file worth linking, sorted; ``exclude``: paths
    left out (e.g. the index itself, the demo's model files)."""
    root = Path(results_dir)
    skip = {Path(e).resolve() for e in exclude}
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith(".")
            and not (rel_dir == Path(".") and d in SKIPPED_DIRS)
            and (Path(dirpath) / d).resolve() not in skip
        )
        for name in filenames:
            path = Path(dirpath) / name
            if name.startswith(".") or not name.endswith(LINKED) or path.resolve() in skip:
                continue
            out.append((rel_dir / name).as_posix())
    return sorted(out)


def _kind(name: str) -> str:
    return {
        ".parquet": "table",
        ".csv": "table",
        ".png": "chart",
        ".html": "page",
        ".md": "text",
    }.get(Path(name).suffix, "file")


def _group(files: list[str]) -> list[tuple[str, list[tuple[str, list[str]]]]]:
    """By directory: [(dir, [(stem, [files of that stem])])]; a table's CSV and Parquet and a
    chart's HTML and PNG share a line."""
    by_dir: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for f in files:
        d, _, name = f.rpartition("/")
        stem = name.split(".", 1)[0]
        by_dir[d][stem].append(f)
    return [(d, sorted(stems.items())) for d, stems in sorted(by_dir.items())]


@dataclass(frozen=True)
class RunKeys:
    """What this configuration produces, to tell its files from another configuration's in
    the same results_dir: each family's layers, the categories and their number of chunks, and
    the stage directories of the stages it has off."""

    families: Mapping[str, tuple[int, ...]]
    categories: tuple[str, ...]
    n_chunks: Mapping[str, int]
    off: tuple[str, ...] = ()


KEY_SEGMENT = re.compile(r"^(sae|layer|category|chunk)=([^/]*?)(_histograms)?(\.[a-z]+)?$")
CONTRACT_TREES = ("tokens", "activations", "pooled")  # the study's shards (data contract)
# directories whose files are named after a category: token views, causal pages
CATEGORY_PAGES = ("token_views", "causal/pages", "circuits/pages")


def foreign_reason(rel: str, keys: RunKeys, *, stages: bool = True) -> str | None:
    """Why ``rel`` (results-relative) is not an output of this configuration, or None: a
    family, layer, category or chunk it does not have, or (with ``stages``) a stage it has off
    (whose target, e.g. `snakemake causal`, may still have built it from this configuration)."""
    parts = rel.split("/")
    if stages and parts[0] in keys.off:
        return f"stage {parts[0]} is off in this configuration (`snakemake {parts[0]}` builds it)"
    family = None
    # categories and chunks: of the study's shard trees only (a stage's own shard tree, e.g.
    # validation/test_set or surface/probe, has its own texts); families and layers: anywhere
    study_tree = parts[0] in CONTRACT_TREES
    for i, part in enumerate(parts):
        m = KEY_SEGMENT.match(part)
        if not m:
            continue
        key, value = m.group(1), m.group(2)
        if key == "sae":
            family = value
            if value not in keys.families:
                return f"SAE family {value} is not in this configuration"
        elif key == "layer" and family is not None:
            if not value.isdigit() or int(value) not in keys.families[family]:
                return f"layer {value} of SAE family {family} is not in this configuration"
        elif key == "category" and study_tree and value not in keys.categories:
            return f"category {value} is not in this configuration"
        elif key == "chunk" and parts[i - 1].startswith("category=") and study_tree:
            category = parts[i - 1].removeprefix("category=")
            if value.isdigit() and int(value) >= keys.n_chunks.get(category, 1):
                return f"chunk {value} of category {category}: this configuration has fewer texts"
    if any(rel.startswith(d + "/") for d in CATEGORY_PAGES) and family is not None:
        category = parts[-1].removesuffix(".html")
        if parts[-1].endswith(".html") and category != "index" and category not in keys.categories:
            return f"category {category} is not in this configuration"
    return None


def build_overview(
    files: list[str],
    descriptions: Mapping[str, Stage] | None = None,
    title: str = "",
    *,
    board: str = "",
    foreign: Mapping[str, str] | None = None,
    css: str = "",
) -> str:
    """The index page for ``files`` (results-relative, the page sits in the results root):
    ``board`` (the findings board) first, then the map of the files by stage, then
    ``foreign`` (file -> why it is not from this configuration), listed apart."""
    stages = dict(STAGES, **(descriptions or {}))
    esc = html.escape
    by_stage: dict[str, list[str]] = defaultdict(list)
    for f in files:
        by_stage[stage_of(f)].append(f)
    order = [s for s in ORDER if s in by_stage] + sorted(s for s in by_stage if s not in ORDER)
    heading = title or "sae-specialists results"
    parts = [f"<h1>{esc(heading)}</h1>", board]
    parts.append(
        '<h2 id="files">Files</h2><p>Everything this run produced, by stage. '
        + ('<a href="#foreign">Not from this configuration</a> · ' if foreign else "")
        + " · ".join(
            f'<a href="#stage-{esc(s, quote=True)}">{esc(stages.get(s, _generic(s)).title)}</a>'
            for s in order
        )
        + "</p>"
    )
    for s in order:
        info = stages.get(s, _generic(s))
        present = set(by_stage[s])
        parts.append(f'<section class="stage" id="stage-{esc(s, quote=True)}">')
        parts.append(f"<h2>{esc(info.title)}</h2>")
        parts.append(f'<p class="first"><strong>Read this first:</strong> {esc(info.first)}')
        main = [m for m in info.main if m in present]
        if main:
            parts.append(" → " + " · ".join(_link(m, m) for m in main))
        parts.append("</p>")
        groups = _group(by_stage[s])
        collapse = s == "extraction"
        if collapse:
            parts.append(f"<details><summary>{len(by_stage[s])} files</summary>")
        for directory, stems in groups:
            parts.append(f"<h3>{esc(directory or 'results')}/</h3>")
            long = not collapse and len(stems) > LONG_LIST
            if long:
                parts.append(f"<details><summary>{len(stems)} entries</summary>")
            parts.append('<ul class="files">')
            for stem, members in stems:
                parts.append(f"<li>{_entry(stem, members)}</li>")
            parts.append("</ul>" + ("</details>" if long else ""))
        if collapse:
            parts.append("</details>")
        parts.append("</section>")
    if foreign:
        parts.append(_foreign_section(foreign))
    return page(heading, parts, CSS + css)


def _foreign_section(foreign: Mapping[str, str]) -> str:
    """The files of another configuration in the same results_dir, apart, with the reason."""
    esc = html.escape
    items = "".join(
        f'<li>{_link(f, f)} <span class="kind">{esc(why)}</span></li>'
        for f, why in sorted(foreign.items())
    )
    return (
        '<section class="stage" id="foreign"><h2>Not from this configuration</h2>'
        '<p class="first">These files are in results_dir but this configuration does not '
        "produce them (another configuration was run into the same results_dir). No page of "
        "this run links them. <code>snakemake --cores 1 clean_foreign</code> with the same "
        "configuration deletes those of families, layers, categories or chunks it lacks "
        "(a stage that is off keeps its directory: delete it by hand); "
        "docs/troubleshooting.md.</p>"
        f'<details><summary>{len(foreign)} files</summary><ul class="files">{items}</ul>'
        "</details></section>"
    )


def _link(path: str, text: str) -> str:
    return f'<a href="{html.escape(quote(path), quote=True)}">{html.escape(text)}</a>'


def _entry(stem: str, members: list[str]) -> str:
    """One line: ``name`` alone, or ``stem csv · parquet`` / ``stem html · png``."""
    kinds = {_kind(m) for m in members}
    kind = f' <span class="kind">{"chart" if "chart" in kinds else kinds.pop()}</span>'
    if len(members) == 1:
        return _link(members[0], members[0].rsplit("/", 1)[-1]) + kind
    links = " · ".join(_link(m, m.rsplit(".", 1)[-1]) for m in members)
    return f"{html.escape(stem)} {links}{kind}"


def _generic(stage: str) -> Stage:
    return Stage(stage.replace("_", " ").capitalize(), f"Outputs of the {stage} stage (docs/).")


def split_foreign(
    files: list[str], keys: RunKeys | None, *, stages: bool = True
) -> tuple[list[str], dict[str, str]]:
    """(this configuration's files, {another configuration's file: why})."""
    if keys is None:
        return files, {}
    ours, foreign = [], {}
    for f in files:
        why = foreign_reason(f, keys, stages=stages)
        if why is None:
            ours.append(f)
        else:
            foreign[f] = why
    return ours, foreign


def write_index(
    results_dir: str | os.PathLike,
    output: str | os.PathLike,
    exclude=(),
    *,
    keys: RunKeys | None = None,
    board: str = "",
    css: str = "",
) -> int:
    """Write the index of ``results_dir`` to ``output`` (with ``keys``: another
    configuration's files listed apart); returns the number of files linked as this run's."""
    from ..core.io import write_text

    files = run_files(results_dir, tuple(exclude) + (str(output),))
    ours, foreign = split_foreign(files, keys)
    write_text(build_overview(ours, board=board, foreign=foreign, css=css), output)
    return len(ours)


def run_keys_of(settings: Any, layout: Any) -> dict:
    """The plain-value form of :class:`RunKeys` for a rule's params (report.smk): each
    family's layers, the categories and their chunks, the stages this configuration has off
    (a settings section whose ``enabled`` is false; their results directories) and
    ``corpus`` without a reference corpus."""
    import dataclasses

    off = [
        f.name
        for f in dataclasses.fields(settings)
        if getattr(getattr(settings, f.name), "enabled", True) is False
    ]
    if not settings.dashboards.corpus:
        off.append("corpus")
    return {
        "families": {f: list(layout.layers_of(f)) for f in layout.families},
        "categories": list(layout.categories),
        "n_chunks": {c: layout.n_chunks.get(c, 1) for c in layout.categories},
        "off": off,
    }


def run_keys(params: Any) -> RunKeys:
    k = dict(params.run_keys)
    return RunKeys(
        families={f: tuple(int(x) for x in ls) for f, ls in dict(k["families"]).items()},
        categories=tuple(k["categories"]),
        n_chunks=dict(k["n_chunks"]),
        off=tuple(k["off"]),
    )


def foreign_files(smk: Any, stages: bool = False) -> list[str]:
    """Absolute paths of the files of another configuration (rule clean_foreign): those of a
    family, layer, category or chunk this configuration lacks. The directories of stages it
    has off are kept (listed apart on index.html; delete them by hand if unwanted)."""
    p = smk.params
    files = run_files(p.results_dir, tuple(p.exclude))
    _, foreign = split_foreign(files, run_keys(p), stages=stages)
    return [str(Path(p.results_dir) / f) for f in sorted(foreign)]


def index(smk: Any) -> None:
    """Rule report_index: the findings board of every enabled verdict stage, then the map."""
    import logging

    import polars as pl

    from .entry import dashboard_linker
    from .findings import (
        BOARD_CSS,
        board_cells,
        board_html,
        headline_inputs,
        headlines_html,
        load_verdicts,
    )

    i, p = smk.input, smk.params
    stages = list(p.verdict_stages)
    tables = dict(zip(stages, list(i.verdicts), strict=True))
    cells = board_cells(pl.read_parquet(i.specialists), load_verdicts(tables), stages)
    board = board_html(
        cells, stages, dashboard_href=dashboard_linker(dict(p.dashboard_dirs), smk.output[0])
    )
    # each stage's headline (the surface stage's depth sentence) under the board
    board += headlines_html(
        *headline_inputs(p.headline_stages, i.headlines, p.headline_summaries, smk.output[0])
    )
    keys = run_keys(p)
    n = write_index(
        p.results_dir, smk.output[0], tuple(p.exclude), keys=keys, board=board, css=BOARD_CSS
    )
    n_foreign = len(foreign_files(smk, stages=True))
    logging.getLogger("sae_specialists").info(
        "index: %d files linked, %d of another configuration listed apart", n, n_foreign
    )


def clean_foreign(smk: Any) -> None:
    """Rule clean_foreign: delete the files another configuration left in results_dir (those
    index.html lists as "not from this configuration"), then the directories left empty."""
    import logging

    log = logging.getLogger("sae_specialists")
    paths = foreign_files(smk)
    for path in paths:
        Path(path).unlink()
    root = Path(smk.params.results_dir)
    for dirpath, _, _ in sorted(os.walk(root), key=lambda t: -len(t[0])):
        d = Path(dirpath)
        if d != root and not any(d.iterdir()):
            d.rmdir()
    log.info("removed %d files of another configuration from %s", len(paths), root)

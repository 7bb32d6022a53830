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
        ("validation/summary.md",),
    ),
    "causal": Stage(
        "Causal check",
        "What ablating or steering each specialist does to the model's predictions "
        "(docs/causal.md).",
        ("causal/pages/index.html",),
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
    "export": Stage(
        "Neuronpedia export",
        "The dashboards in the layout of SAEDashboard's Neuronpedia runner, per SAE family and "
        "layer, ready for upload (docs/dashboards.md).",
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
    "comparison",
    "export",
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


def build_overview(
    files: list[str], descriptions: Mapping[str, Stage] | None = None, title: str = ""
) -> str:
    """The index page for ``files`` (results-relative, the page sits in the results root)."""
    stages = dict(STAGES, **(descriptions or {}))
    esc = html.escape
    by_stage: dict[str, list[str]] = defaultdict(list)
    for f in files:
        by_stage[stage_of(f)].append(f)
    order = [s for s in ORDER if s in by_stage] + sorted(s for s in by_stage if s not in ORDER)
    heading = title or "sae-specialists results"
    parts = [f"<h1>{esc(heading)}</h1>"]
    parts.append(
        "<p>Everything this run produced, by stage. "
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
    return page(heading, parts, CSS)


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


def write_index(results_dir: str | os.PathLike, output: str | os.PathLike, exclude=()) -> int:
    """Write the index of ``results_dir`` to ``output``; returns the number of files linked."""
    from ..core.io import write_text

    files = run_files(results_dir, tuple(exclude) + (str(output),))
    write_text(build_overview(files), output)
    return len(files)


def index(smk: Any) -> None:
    """Rule report_index."""
    n = write_index(smk.params.results_dir, smk.output[0], tuple(smk.params.exclude))
    import logging

    logging.getLogger("sae_specialists").info("index: %d files linked", n)

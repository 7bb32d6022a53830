"""Import directions of the package (docs/architecture.md), checked on the source's syntax trees:
every import counts, also those inside functions.

core <- extraction, analysis <- methodology, dashboards, validation, causal, comparison, circuits
<- report
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = "sae_specialists"
LATER_STAGES = (
    "methodology",
    "dashboards",
    "validation",
    "causal",
    "comparison",
    "surface",
    "circuits",
    "report",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name: str) -> bool:
    path = SRC.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported_modules(path: Path, name: str) -> set[str]:
    """Every sae_specialists module ``path`` imports (relative imports resolved; ``from a import
    b`` counts ``a.b`` when that is a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found |= {f"{target}.{a.name}" for a in node.names if is_module(f"{target}.{a.name}")}
    return {m for m in found if m == PACKAGE or m.startswith(PACKAGE + ".")}


def graph(root: Path) -> dict[str, set[str]]:
    return {
        module_name(path): imported_modules(path, module_name(path))
        for path in sorted(root.rglob("*.py"))
    }


def stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


GRAPH = graph(SRC / PACKAGE)


def imports_of(stage_name: str) -> dict[str, set[str]]:
    return {m: deps for m, deps in GRAPH.items() if stage(m) == stage_name}


def violations(stage_name: str, forbidden) -> list[str]:
    return sorted(
        f"{module} imports {dep}"
        for module, deps in imports_of(stage_name).items()
        for dep in deps
        if stage(dep) != stage_name and forbidden(stage(dep))
    )


def test_the_walk_sees_the_package():
    # the checks below would pass vacuously on an empty or misread tree
    assert {"core", "extraction", "analysis", "report"} <= {stage(m) for m in GRAPH}
    assert f"{PACKAGE}.core.io" in GRAPH[f"{PACKAGE}.analysis.pertext"]
    assert f"{PACKAGE}.analysis.selection" in GRAPH[f"{PACKAGE}.analysis.tables"]


def test_core_imports_no_stage():
    assert violations("core", lambda dep: True) == []


def test_extraction_imports_only_core():
    assert violations("extraction", lambda dep: dep != "core") == []


def test_analysis_imports_no_extraction_and_no_later_stage():
    forbidden = ("extraction", *LATER_STAGES, "demo", "startup")
    assert violations("analysis", lambda dep: dep in forbidden) == []


@pytest.mark.parametrize("stage_name", LATER_STAGES[:-1])
def test_no_stage_imports_the_report(stage_name):
    assert violations(stage_name, lambda dep: dep == "report") == []


def test_only_the_demo_rule_imports_the_demo_builder():
    in_src = sorted(
        f"{m} imports {d}"
        for m, deps in GRAPH.items()
        for d in deps
        if stage(d) == "demo" and stage(m) != "demo"
    )
    assert in_src == []
    scripts = {
        path.name
        for path in (ROOT / "scripts").glob("*.py")
        if any(stage(d) == "demo" for d in imported_modules(path, f"scripts.{path.stem}"))
    }
    assert scripts <= {"build_demo.py"}


def test_no_import_cycles():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for dep in GRAPH.get(node, ()):
            if dep not in GRAPH:
                continue
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in GRAPH[node]:
                cycles.append(sorted(component))

    for node in sorted(GRAPH):
        if node not in index:
            visit(node)
    assert cycles == []


def test_the_checks_catch_a_violation(tmp_path):
    """The same walk flags an analysis module importing the methodology (inside a function)."""
    pkg = tmp_path / PACKAGE
    (pkg / "analysis").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "analysis" / "__init__.py").write_text("")
    bad = pkg / "analysis" / "bad.py"
    bad.write_text("def f():\n    from ..methodology import sweep\n")
    found = imported_modules(bad, f"{PACKAGE}.analysis.bad")
    assert f"{PACKAGE}.methodology" in found and stage(f"{PACKAGE}.methodology") in LATER_STAGES


ISSUE_REFERENCE = re.compile(r"\bissues? #?\d+", re.IGNORECASE)


def test_code_and_docs_say_what_a_stage_does_not_which_issue_built_it():
    """An issue number means nothing to a reader of the code: docstrings, comments and the
    docs describe what a stage does instead."""
    paths = [*SRC.rglob("*.py"), *(ROOT / "docs").glob("*.md")]
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in paths
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if ISSUE_REFERENCE.search(line)
    ]
    assert found == []


# What the light jobs and the Snakefile's parse may import, checked in a fresh interpreter (the
# suite's time: each avoided import is seconds per process, bench/RESULTS.md)
LIGHT_PATHS = {
    "snakefile parse": (
        "import sae_specialists.report.findings, sae_specialists.surface.probe, "
        "sae_specialists.startup",
        ("polars", "torch", "transformer_lens", "sae_lens"),
    ),
    "tokens job of a local model": (
        "from sae_specialists.extraction.models import load_local_tokenizer; "
        "load_local_tokenizer({assets!r} + '/model')",
        ("transformer_lens", "sae_lens"),
    ),
    "decoder of a local SAE": (
        "from sae_specialists.comparison.decoders import load_decoder; "
        "load_decoder('res', 1, {{'path': {assets!r} + '/saes/res/layer1'}})",
        ("torch", "transformer_lens", "sae_lens"),
    ),
}


@pytest.mark.parametrize("path", sorted(LIGHT_PATHS))
def test_light_paths_import_no_model_library(path, demo_assets):
    import subprocess
    import sys

    code, forbidden = LIGHT_PATHS[path]
    check = f"import sys; {code.format(assets=str(demo_assets))}; " + (
        f"print([m for m in {forbidden!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", (path, out.stdout, out.stderr[-2000:])

"""The findings board (docs/architecture.md, "Findings board: the verdict interface").

Per SAE family, a category x layer grid at the top of index.html and analysis.html: each cell
shows the category's specialist (linked to its dashboard), its score and one combined verdict
from every stage that judged it. Stages write per-cell verdict records (core/verdicts.py); this
module reads them through one registry, :data:`REGISTRY`. A new stage adds one
:class:`VerdictSource` there and needs no other report code: the rules take their inputs from
:func:`verdict_tables`, the board, the analysis page's marks and the dashboards index's columns
read whatever is registered.

Which board shows what:

- index.html (rule ``report_index``, built last): every enabled stage;
- analysis.html (rule ``analysis_report``, part of ``snakemake analysis``): the enabled stages
  that need no model under this configuration (``needs_model`` false), so that
  ``snakemake analysis`` never runs a model job; its legend names the stages shown on
  index.html only.

A record is shown only when its feature is the cell's current specialist (or null): after a
threshold change, a stage that has not rerun yet says nothing about the new specialist ("not
tested"), never the old one's verdict.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the Snakefile imports this module: polars only where a table is read
    import polars as pl

esc = html.escape


@dataclass(frozen=True)
class VerdictSource:
    """One stage's entry in the registry.

    stage: the ``stage`` value of its records (and the heading of its column);
    path: its verdict table's path, from the layout (``lambda L: L.verdicts("<stage>")``);
    enabled: whether the stage runs under these settings;
    needs_model: whether its table needs a job that loads the model under these settings
        (such a table is left off analysis.html's board: ``snakemake analysis`` is model-free);
    order: the column order (ascending) on the board, in the legend and the dashboards index;
    mark: the sign drawn before the label of a verdict against the specialist (ok false);
    legend: the verdicts it gives, for the one-line legend;
    headline: the path of the stage's headline, a Markdown paragraph it writes (the surface
        stage's depth sentence), or None. summary.md and analysis.html show it under
        ``headline_title`` when the stage needs no model, else a link to ``summary`` (the
        stage's own summary) saying where it is; index.html's board shows every enabled one.
    """

    stage: str
    title: str
    path: Callable[[Any], str]
    enabled: Callable[[Any], bool]
    needs_model: Callable[[Any], bool]
    order: int
    mark: str = "✗"
    legend: str = ""
    headline: Callable[[Any], str] | None = None
    headline_title: str = ""
    summary: Callable[[Any], str] | None = None


# The registry: one entry per stage that judges specialists (keep sorted by ``order``).
REGISTRY: tuple[VerdictSource, ...] = (
    VerdictSource(
        stage="validation",
        title="validation",
        path=lambda L: L.verdicts("validation"),
        enabled=lambda S: S.validation.enabled,
        # the optional test set is extracted with the model
        needs_model=lambda S: S.validation.test_texts is not None,
        order=10,
        mark="✗",
        legend="validated; ✗ chance, does not generalise, loses to probe",
    ),
    VerdictSource(
        stage="learning_curve",
        title="texts needed",
        path=lambda L: L.learning_curve("verdicts"),
        enabled=lambda S: S.validation.enabled and S.validation.learning_curve_enabled,
        needs_model=lambda S: False,  # per-text tables only (validation/learning_curve.py)
        order=15,
        mark="∅",
        legend="passes from n texts; ∅ not reached with every text",
    ),
    VerdictSource(
        stage="causal",
        title="causal check",
        path=lambda L: L.verdicts("causal"),
        enabled=lambda S: S.causal.enabled,
        needs_model=lambda S: True,  # ablation runs the model
        order=20,
        mark="⊘",
        legend="specific, unspecific; ⊘ detector only",
    ),
    VerdictSource(
        stage="surface",
        title="what it detects",
        path=lambda L: L.verdicts("surface"),
        enabled=lambda S: S.surface.enabled,
        # shards and per-text tables, but the probe texts (surface.probe_texts) are extracted
        # with the model (surface_probe_extract)
        needs_model=lambda S: S.surface.probe_texts is not None,
        order=30,
        mark="",  # a characterisation, never a verdict against the specialist (ok is null)
        legend="token detector, context-gated, meaning, mixed",
        # the depth sentence: do deeper layers have more semantic specialists?
        headline=lambda L: L.surface_headline,
        headline_title="What specialists detect, by depth",
        summary=lambda L: L.surface_summary,
    ),
    VerdictSource(
        stage="circuits",
        title="circuits",
        path=lambda L: L.verdicts("circuits"),
        enabled=lambda S: S.circuits.enabled,
        needs_model=lambda S: True,  # ablations and gradients run the model
        order=40,
        mark="⊣",  # not ∅: the learning curve's mark, and the empty token's
        legend="feeds next specialist, feeds / ⊣ dead end (nothing later reads it)",
    ),
)


def source(stage: str) -> VerdictSource:
    """The registry entry of ``stage``."""
    for s in REGISTRY:
        if s.stage == stage:
            return s
    raise KeyError(f"no verdict stage {stage!r} in report.findings.REGISTRY")


def sources(settings, *, model_free: bool = False) -> list[VerdictSource]:
    """The registered stages enabled under ``settings`` (with ``model_free``: only those that
    need no model), in column order."""
    out = [s for s in REGISTRY if s.enabled(settings)]
    if model_free:
        out = [s for s in out if not s.needs_model(settings)]
    return sorted(out, key=lambda s: s.order)


def verdict_tables(settings, layout, *, model_free: bool = False) -> dict[str, str]:
    """stage -> verdict table path of :func:`sources` (a rule's named input)."""
    return {s.stage: s.path(layout) for s in sources(settings, model_free=model_free)}


def left_out(settings, *, model_free: bool) -> list[str]:
    """The enabled stages a model-free board leaves out (named in its legend)."""
    if not model_free:
        return []
    shown = {s.stage for s in sources(settings, model_free=True)}
    return [s.stage for s in sources(settings) if s.stage not in shown]


def headline_files(settings, layout, *, model_free: bool = False) -> dict[str, str]:
    """stage -> headline path of the :func:`sources` that write one (a rule's named input)."""
    return {
        s.stage: s.headline(layout)
        for s in sources(settings, model_free=model_free)
        if s.headline is not None
    }


def headline_links(settings, layout, *, model_free: bool) -> dict[str, str]:
    """stage -> its own summary's path, for the enabled stages with a headline that a
    model-free report leaves out (their headline is linked, not shown)."""
    left = set(left_out(settings, model_free=model_free))
    return {
        s.stage: s.summary(layout)
        for s in sources(settings)
        if s.stage in left and s.headline is not None and s.summary is not None
    }


def headline_inputs(
    stages: Sequence[str], paths: Sequence[str], summaries: Mapping[str, str], page: str
) -> tuple[dict[str, str], dict[str, str]]:
    """(stage -> its headline's text, stage -> its summary relative to ``page``): what
    :func:`add_headlines` and :func:`headlines_html` show, from a rule's ``headlines`` input
    (in ``stages`` order) and its summaries parameter."""
    from pathlib import Path

    from ..core.crosslinks import relative

    texts = {
        stage: Path(path).read_text(encoding="utf-8")
        for stage, path in zip(stages, paths, strict=True)
    }
    return texts, {stage: relative(path, page) for stage, path in dict(summaries).items()}


def add_headlines(doc, headlines: Mapping[str, str], links: Mapping[str, str]) -> None:
    """A section of ``doc`` (summary.md, analysis.html) per stage: its headline text
    (``headlines``: stage -> the text), or, for a stage left to index.html (``links``: stage ->
    its summary relative to the doc), where to read it."""
    from .doc import link

    for stage, text in headlines.items():
        doc.h(2, source(stage).headline_title)
        doc.p(" ".join(text.split()))
    for stage, href in links.items():
        src = source(stage)
        doc.h(2, src.headline_title)
        doc.p(
            f"The {src.stage} stage runs the model under this configuration, so `snakemake "
            "analysis` never reruns it: its sentence is on the findings board of index.html and "
            "in ",
            link(href, href),
            ".",
        )


def headlines_html(headlines: Mapping[str, str], links: Mapping[str, str]) -> str:
    """index.html: each stage's headline under the board, its summary linked (``links``:
    stage -> the summary relative to index.html)."""
    parts = []
    for stage, text in headlines.items():
        src = source(stage)
        more = (
            f' (<a href="{esc(links[stage], quote=True)}">{esc(links[stage])}</a>)'
            if stage in links
            else ""
        )
        parts.append(
            f'<p class="headline" data-stage="{esc(stage, quote=True)}"><strong>'
            f"{esc(src.headline_title)}</strong>: {esc(' '.join(text.split()))}{more}</p>"
        )
    return "".join(parts)


def load_verdicts(tables: Mapping[str, str]) -> pl.DataFrame:
    """Every registered table (stage -> path) stacked; each record's stage must be its
    table's."""
    import polars as pl

    from ..core.verdicts import VERDICT_SCHEMA, read_verdicts

    frames = []
    for stage, path in tables.items():
        df = read_verdicts(path)
        wrong = df.filter(pl.col("stage") != stage)
        if wrong.height:
            raise ValueError(f"{path}: records of stage {wrong['stage'][0]!r} in {stage}'s table")
        frames.append(df)
    if not frames:
        return pl.DataFrame(schema=VERDICT_SCHEMA)
    return pl.concat(frames)


# -- the combined verdict of one cell -------------------------------------------------------
HOLDS, FAILS, UNTESTED, NONE = "holds", "fails", "untested", "none"


@dataclass
class Cell:
    family: str
    layer: int
    category: str
    feature: int | None
    score: int | None
    has_specialist: bool
    # stage -> its record (a dict of the verdict columns) or None (not tested)
    verdicts: dict[str, dict | None] = field(default_factory=dict)

    @property
    def status(self) -> str:
        if not self.has_specialist:
            return NONE
        oks = [r["ok"] for r in self.verdicts.values() if r is not None]
        if any(ok is False for ok in oks):
            return FAILS
        if any(ok is True for ok in oks):
            return HOLDS
        return UNTESTED

    def parts(self) -> list[tuple[str, str]]:
        """(stage, shown text) of every stage, in column order: its label, the stage's mark
        before a verdict against the specialist, "not tested" without a record."""
        out = []
        for stage, record in self.verdicts.items():
            if record is None:
                out.append((stage, "not tested"))
            elif record["ok"] is False:
                out.append((stage, f"{source(stage).mark} {record['label']}"))
            else:
                out.append((stage, record["label"]))
        return out

    @property
    def label(self) -> str:
        """The combined verdict shown in the cell: the verdicts against it, else the
        supporting ones, else "not tested"; "" without a specialist."""
        status = self.status
        if status == NONE:
            return ""
        parts = dict(self.parts())
        against = [parts[s] for s, r in self.verdicts.items() if r is not None and r["ok"] is False]
        support = [parts[s] for s, r in self.verdicts.items() if r is not None and r["ok"]]
        if against:
            return " · ".join(against)
        if support:
            return " · ".join(support)
        return "not tested"

    @property
    def title(self) -> str:
        """The tooltip: every stage's verdict with its numbers."""
        lines = [f"{self.family} layer {self.layer} {self.category}: feature #{self.feature}"]
        for stage, record in self.verdicts.items():
            if record is None:
                lines.append(f"{source(stage).title}: not tested")
            else:
                lines.append(f"{source(stage).title}: {record['label']} ({record['detail']})")
        return "\n".join(lines)


def board_cells(
    specialists: pl.DataFrame, verdicts: pl.DataFrame, stages: Sequence[str]
) -> list[Cell]:
    """One cell per row of the specialists table, each with the records of ``stages`` whose
    feature is the cell's (or null)."""
    by_key: dict[tuple, dict] = {}
    for r in verdicts.iter_rows(named=True):
        by_key[(r["family"], int(r["layer"]), r["category"], r["stage"])] = r
    cells = []
    for r in specialists.sort("sae", "layer", "category").iter_rows(named=True):
        feature = r.get("feature")
        has = bool(r.get("has_specialist")) and feature is not None
        cell = Cell(r["sae"], int(r["layer"]), r["category"], feature, r.get("score"), has)
        for stage in stages:
            rec = by_key.get((cell.family, cell.layer, cell.category, stage))
            if rec is not None and rec["feature"] is not None and rec["feature"] != feature:
                rec = None  # a verdict on another feature (a stage not rerun yet): stale
            cell.verdicts[stage] = rec if has else None
        cells.append(cell)
    return cells


def against_marks(cells: Iterable[Cell]) -> dict[tuple[str, int, str], str]:
    """(family, layer, category) -> the cell's verdicts against its specialist (e.g.
    "✗ chance"), for the cells that have one: the marks of the analysis page's tables."""
    return {(c.family, c.layer, c.category): c.label for c in cells if c.status == FAILS}


def _layers_text(layers: list[int]) -> str:
    layers = sorted(layers)
    if len(layers) > 2 and layers == list(range(layers[0], layers[-1] + 1)):
        return f"layers {layers[0]}–{layers[-1]}"
    return ("layer " if len(layers) == 1 else "layers ") + ", ".join(map(str, layers))


def family_sentence(cells: Iterable[Cell], stages: Sequence[str]) -> str:
    """E.g. "3 of 8 specialists hold up: python (layers 0–3), conversational (layer 1). 4 do
    not: ✗ chance 2, ⊘ detector only 3. 1 not tested." (cells of one family; a cell against
    which two stages speak counts once in the total, once per verdict in the breakdown)."""
    specs = [c for c in cells if c.status != NONE]
    n = len(specs)
    if n == 0:
        return "No specialist (no candidate scores above 0)."
    if not stages:
        return f"{n} specialist{'s' * (n != 1)}; no verdict stage ran on this run."
    holds = [c for c in specs if c.status == HOLDS]
    fails = [c for c in specs if c.status == FAILS]
    untested = [c for c in specs if c.status == UNTESTED]
    text = f"{len(holds)} of {n} specialist{'s' * (n != 1)} hold{'s' * (n == 1)} up"
    if holds:
        by_cat: dict[str, list[int]] = {}
        for c in holds:
            by_cat.setdefault(c.category, []).append(c.layer)
        text += ": " + ", ".join(f"{cat} ({_layers_text(ls)})" for cat, ls in by_cat.items())
    text += "."
    if fails:
        counts: dict[str, int] = {}
        for c in fails:
            for stage, record in c.verdicts.items():
                if record is not None and record["ok"] is False:
                    key = f"{source(stage).mark} {record['label']}".strip()
                    counts[key] = counts.get(key, 0) + 1
        text += f" {len(fails)} do{'es' * (len(fails) == 1)} not: " + ", ".join(
            f"{k} {v}" for k, v in counts.items()
        )
        text += "."
    if untested:
        text += f" {len(untested)} not tested by any stage."
    return text


BOARD_CSS = """
#findings h2{margin:.2em 0 0}
.boards{display:flex;flex-wrap:wrap;gap:.3em 1.2em;align-items:flex-start}
.board{font-size:11px;line-height:1.15}
.board caption{caption-side:top;text-align:left}
.board h3{margin:.25em 0 .1em;font-size:12px}
.board p.sentence{margin:0 0 .2em;color:#333;min-width:16em}
.board table{border-collapse:collapse;margin:0}
.board td,.board th{border:1px solid #ddd;padding:1px 3px;text-align:left;vertical-align:top}
.board th{background:#f4f4f4;font-weight:600}
.board p.empty{margin:0 0 .2em;color:#888}
.board .v{font-size:10.5px;white-space:nowrap}
.board .v span.sep{display:block;height:0;overflow:hidden}
.board td.holds{background:#ebfbee}.board td.holds .v{color:#2b8a3e}
.board td.fails{background:#fff0f0}.board td.fails .v{color:#c92a2a;font-weight:600}
.board td.untested .v{color:#777}
.board td.none{color:#aaa}
.board .score{color:#555}
p.board-legend{font-size:11.5px;color:#444;margin:.1em 0 .3em}
"""


def board_html(
    cells: Sequence[Cell],
    stages: Sequence[str],
    *,
    dashboard_href: Callable[[str, int, int], str | None],
    left_out_stages: Sequence[str] = (),
    heading: str = "Findings",
) -> str:
    """The boards of every family (``<section id="findings">``), legend first.
    ``dashboard_href(family, layer, feature)``: the link of a specialist's dashboard."""
    legend = ["Cell: #feature (dashboard) and score, then the verdicts"]
    legend.append("green: holds up · red: a stage speaks against it · grey: not tested")
    legend += [f"{source(s).title}: {source(s).legend}" for s in stages if source(s).legend]
    if left_out_stages:
        names = ", ".join(source(s).title for s in left_out_stages)
        legend.append(f"{names} (needs the model): on the board of index.html")
    parts = [
        f'<section id="findings"><h2>{esc(heading)}</h2>',
        f'<p class="board-legend">{esc(" · ".join(legend))}</p>',
        '<div class="boards">',
    ]
    # the families with the most specialists first (the widest boards lead the rows)
    count = {
        f: sum(c.status != NONE for c in cells if c.family == f) for f in {c.family for c in cells}
    }
    for family in sorted(count, key=lambda f: (-count[f], f)):
        fam = [c for c in cells if c.family == family]
        layers = sorted({c.layer for c in fam})
        # a category without a specialist at any layer: one line under the grid, not a row
        cats = sorted({c.category for c in fam if c.status != NONE})
        empty = sorted({c.category for c in fam} - set(cats))
        grid = {(c.category, c.layer): c for c in fam}
        # the heading and sentence as the table's caption: they wrap to the grid's width
        none_line = (
            f'<p class="empty">no specialist at any layer: {esc(", ".join(empty))}</p>'
            if empty
            else ""
        )
        parts.append(
            f'<div class="board" data-family="{esc(family, quote=True)}"><table><caption>'
            f"<h3>SAE <code>{esc(family)}</code></h3>"
            f'<p class="sentence">{esc(family_sentence(fam, stages))}</p>{none_line}</caption>'
            "<thead><tr><th>category</th>"
            + "".join(f"<th>layer {layer}</th>" for layer in layers)
            + "</tr></thead><tbody>"
        )
        for cat in cats:
            parts.append(f"<tr><th>{esc(cat)}</th>")
            for layer in layers:
                c = grid.get((cat, layer))
                parts.append(_cell_html(c, dashboard_href) if c else "<td></td>")
            parts.append("</tr>")
        parts.append("</tbody></table></div>")
    parts.append("</div></section>")
    return "".join(parts)


def _cell_html(c: Cell, dashboard_href) -> str:
    attrs = (
        f'data-family="{esc(c.family, quote=True)}" data-layer="{c.layer}" '
        f'data-category="{esc(c.category, quote=True)}" data-status="{c.status}"'
    )
    if c.status == NONE:
        return (
            f'<td class="cell none" {attrs} title="no specialist (no candidate scores > 0)">–</td>'
        )
    verdicts = {s: (r["verdict"] if r is not None else "not_tested") for s, r in c.verdicts.items()}
    attrs += f' data-feature="{c.feature}" data-verdicts="{esc(_json(verdicts), quote=True)}"'
    href = dashboard_href(c.family, c.layer, int(c.feature))
    feat = f"#{c.feature}"
    feat_html = f'<a href="{esc(href, quote=True)}">{feat}</a>' if href else feat
    return (
        f'<td class="cell {c.status}" {attrs} title="{esc(c.title, quote=True)}">'
        f'{feat_html} <span class="score">{c.score}</span> '
        f'<span class="v">{_label_html(c.label)}</span></td>'
    )


def _label_html(label: str) -> str:
    """The first part after the feature and score, each other one on its own line; the
    " · " between them stays in the text (hidden)."""
    return '<span class="sep"> · </span>'.join(
        f"<span>{esc(part)}</span>" for part in label.split(" · ")
    )


def _json(obj) -> str:
    import json

    return json.dumps(obj, sort_keys=True, ensure_ascii=False)

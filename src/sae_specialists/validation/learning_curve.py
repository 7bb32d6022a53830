"""How many texts a finding needs: the validation of every cell with only n texts per category.

For each rung n of ``validation.learning_curve.ladder`` below the largest category, and for
``draws`` seeded draws per rung, every category contributes min(n, its size) texts drawn without
replacement (``numpy.random.default_rng([seed, n, draw])``). On that subsample the stage's own
procedure runs for every category:

- the study's selection on all the subsample's texts (``analysis.selection.select``): the
  specialist *that a study with n texts per category would report* (it may differ from the
  full corpus' one: ``same_feature`` says whether it is the same);
- the held-out AUROC and fold agreement of ``heldout.heldout_category`` (stratified folds of the
  subsample, ``validation.folds`` or leave-one-text-out below that);
- the shuffled-label p-value of ``null.null_category`` (``learning_curve.permutations``
  permutations of the subsample's labels, all categories at once, vectorised like the null).

The top rung is every text (one draw: the corpus itself), and there the stage has already run
that procedure: its row of every category is the stage's own cell (``validation_heldout``'s
specialist, held-out AUROC and fold agreement, ``validation_null``'s p-value with
``validation.permutations`` permutations), read from those jobs' cell tables instead of being
computed a second time (``stage_cells`` computes them in process the same way).

A draw *passes* when the subsample has a specialist (score > 0), its held-out AUROC is at least
``validation.min_auroc`` and its p-value at most ``validation.alpha`` (the random-feature floor
and the probes are left out: they answer other questions and would multiply the cost). A rung
passes when at least ``pass_share`` of its draws pass. ``n_needed`` is the smallest rung from
which every larger rung passes ("passes from n"); ``n_first_pass`` the smallest rung that
passes at all. A cell whose top rung does not pass is "not reached with N texts".

Everything runs from the per-text tables (the dense layer of ``analysis.dense``); no model.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from ..analysis.dense import LayerData
from ..analysis.selection import select
from .cells import heldout_layer, null_layer_rows
from .folds import category_folds
from .heldout import heldout_category
from .null import null_category, null_layer, p_value, permutations, top_entries
from .table import HELDOUT_SCHEMA, NULL_CELL_SCHEMA, frame, join_cells
from .verdict import format_p

DRAW_SCHEMA = {
    "sae": pl.String,
    "layer": pl.Int64,
    "category": pl.String,
    "n": pl.Int64,  # the rung: texts per category asked for
    "n_category": pl.Int64,  # texts of this category in the subsample (min(n, its size))
    "draw": pl.Int64,
    "feature": pl.Int64,  # the subsample's specialist (null: nothing active)
    "score": pl.Int64,
    "has_specialist": pl.Boolean,
    "same_feature": pl.Boolean,  # the full corpus' specialist
    "heldout_auroc": pl.Float64,
    "fold_agreement": pl.Float64,
    "p_value": pl.Float64,
    "passes": pl.Boolean,
}
RUNG_SCHEMA = {
    "sae": pl.String,
    "layer": pl.Int64,
    "category": pl.String,
    "n": pl.Int64,
    "n_category": pl.Int64,
    "draws": pl.Int64,
    "pass_share": pl.Float64,
    "passes": pl.Boolean,
    "heldout_auroc": pl.Float64,  # median over draws
    "heldout_auroc_min": pl.Float64,
    "heldout_auroc_max": pl.Float64,
    "p_value": pl.Float64,  # median over draws
    "fold_agreement": pl.Float64,  # mean over draws
    "same_feature_share": pl.Float64,
    "specialist_share": pl.Float64,  # draws whose subsample has a specialist (score > 0)
}
CELL_SCHEMA = {
    "sae": pl.String,
    "layer": pl.Int64,
    "category": pl.String,
    "feature": pl.Int64,  # the full corpus' specialist (null: none)
    "has_specialist": pl.Boolean,
    "n_texts": pl.Int64,  # the category's texts in the corpus
    "n_needed": pl.Int64,  # null: not reached
    "n_first_pass": pl.Int64,
    "reached": pl.Boolean,
    "sentence": pl.String,
}


@dataclass(frozen=True)
class CurveSettings:
    ladder: tuple[int, ...]
    draws: int
    permutations: int
    pass_share: float
    folds: int
    seed: int
    threshold: float
    candidates: int | None
    alpha: float
    min_auroc: float


def rungs(sizes: Iterable[int], ladder: Sequence[int]) -> list[int]:
    """The ladder's values below the largest category, then the largest category's size (every
    text)."""
    top = int(max(sizes))
    return sorted({int(n) for n in ladder if 0 < n < top} | {top})


def draw_rows(cat_index: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Row indices (ascending) of min(n, size) texts of every category, without replacement."""
    picked = []
    for c in np.unique(cat_index):
        rows = np.flatnonzero(cat_index == c)
        picked.append(rows if len(rows) <= n else rng.choice(rows, n, replace=False))
    return np.sort(np.concatenate(picked))


def subsample(
    data: LayerData, rows: np.ndarray, top_mask: np.ndarray
) -> tuple[LayerData, np.ndarray]:
    """The layer restricted to ``rows`` and to the columns of their texts' top-k entries
    (``top_mask``: ``null.top_entries`` of the full layer), and its rows of ``top_mask``.

    No selection on these texts can choose another column, so every result is the one on all
    the columns active on them: a candidate of a category (one of the k highest in-category
    peaks, present texts only) is among the k largest values, ties included, of the text where
    it peaks -- else k features beat it on that text, hence on peak -- and the columns keep
    their order (the tie-breaks) and their values (the counts). This holds for every weighting
    of the texts (the folds, each permutation of the null), and the null already works on
    these columns alone. ``top_mask`` = every positive value when the candidates are not
    limited (k None): then the columns are the active ones."""
    mask = top_mask[rows]
    keep = np.flatnonzero(mask.any(axis=0))
    sub = LayerData(
        data.sae,
        data.layer,
        data.values[np.ix_(rows, keep)],
        data.features[keep],
        [data.text_ids[r] for r in rows],
        data.categories,
        data.cat_index[rows],
    )
    return sub, mask[:, keep]


def _draw_seeds(seed: int, n: int, draw: int) -> tuple[np.random.Generator, int, int]:
    rng = np.random.default_rng([seed, n, draw])
    fold_seed, perm_seed = (int(s) for s in rng.integers(0, 2**31 - 1, size=2))
    return rng, fold_seed, perm_seed


def evaluate_draw(
    sub: LayerData,
    s: CurveSettings,
    fold_seed: int,
    perm_seed: int,
    full_features: list[int],
    mask: np.ndarray | None = None,
) -> list[dict]:
    """One subsample: every category's specialist, held-out AUROC, fold agreement, p-value.
    ``mask``: the subsample's rows and columns of the full layer's ``top_entries`` mask."""
    labels = sub.cat_index[permutations(sub.n_texts, s.permutations, perm_seed)]
    nl = null_layer(sub, s.threshold, s.candidates, mask) if s.permutations else None
    sizes = sub.category_sizes()
    out = []
    for c in range(len(sub.categories)):
        auc = agreement = None
        folds = category_folds(sub.cat_index, c, s.folds, fold_seed)
        if folds is not None:  # its full-data selection is the subsample's specialist
            held = heldout_category(sub, c, folds, s.threshold, s.candidates)
            feature, score = held.full_feature, held.full_score
            summary = held.summary()
            auc, agreement = summary["heldout_auroc"], summary["fold_agreement"]
        else:
            sel = select(sub, c, None, s.threshold, s.candidates)
            feature, score = int(sel.feature[0]), int(sel.score[0])
        p = None
        if nl is not None:
            p = p_value(
                null_category(nl, labels, c, s.candidates).score, score if feature >= 0 else 0
            )
        out.append(
            draw_row(sub, c, int(sizes[c]), feature, score, auc, agreement, p, full_features[c], s)
        )
    return out


def draw_row(
    data: LayerData,
    c: int,
    n_category: int,
    feature: int,
    score: int,
    auc: float | None,
    agreement: float | None,
    p: float | None,
    full_feature: int,
    s: CurveSettings,
) -> dict:
    """One category's DRAW_SCHEMA values but n and draw (feature -1: nothing active)."""
    score = score if feature >= 0 else 0
    has = feature >= 0 and score > 0
    passes = has and auc is not None and auc >= s.min_auroc and p is not None and p <= s.alpha
    return {
        "sae": data.sae,
        "layer": data.layer,
        "category": data.categories[c],
        "n_category": n_category,
        "feature": feature if feature >= 0 else None,
        "score": score if feature >= 0 else None,
        "has_specialist": bool(has),
        "same_feature": bool(feature >= 0 and feature == full_feature),
        "heldout_auroc": auc,
        "fold_agreement": agreement,
        "p_value": p,
        "passes": bool(passes),
    }


def stage_cells(data: LayerData, s: CurveSettings, n_permutations: int) -> pl.DataFrame:
    """The stage's cells of one layer (``table.join_cells`` of ``validation_heldout``'s and
    ``validation_null``'s rows, without the random-feature floor), computed in process as
    those jobs compute them: folds and permutations from ``s.seed``, ``n_permutations``
    permutations."""
    common = {"threshold": s.threshold, "candidates": s.candidates, "seed": s.seed}
    _, held = heldout_layer(data, n_folds=s.folds, draws=0, **common)
    labels = data.cat_index[permutations(data.n_texts, n_permutations, s.seed)]
    _, null = null_layer_rows(data, labels, **common)
    return join_cells(frame(held, HELDOUT_SCHEMA), frame(null, NULL_CELL_SCHEMA))


def layer_cells(stage: pl.DataFrame, data: LayerData) -> list[dict]:
    """The stage's cell of every category of ``data``'s layer, in category order."""
    mine = stage.filter((pl.col("sae") == data.sae) & (pl.col("layer") == data.layer))
    by_category = {r["category"]: r for r in mine.iter_rows(named=True)}
    missing = [c for c in data.categories if c not in by_category]
    if missing:
        raise ValueError(
            f"{data.sae} layer {data.layer}: the held-out and null cells lack {missing}: they "
            "were computed from other per-text tables; rerun snakemake."
        )
    return [by_category[c] for c in data.categories]


def full_specialists(cells: list[dict]) -> list[int]:
    """The full corpus' specialist of every category (-1: none), from its stage cells."""
    return [r["feature"] if r["has_specialist"] else -1 for r in cells]


def top_rung_rows(data: LayerData, s: CurveSettings, cells: list[dict]) -> list[dict]:
    """The top rung (every text): each category's stage cell as a draw."""
    sizes = data.category_sizes()
    out = []
    for c, r in enumerate(cells):
        feature = -1 if r["feature"] is None else r["feature"]
        auc, agreement, p = r["heldout_auroc"], r["fold_agreement"], r["p_value"]
        full = full_specialists([r])[0]
        out.append(
            draw_row(data, c, int(sizes[c]), feature, r["score"], auc, agreement, p, full, s)
        )
    return out


def curve_layer(
    data: LayerData, s: CurveSettings, stage: pl.DataFrame | None = None, progress=None
) -> pl.DataFrame:
    """DRAW_SCHEMA rows of one layer: every rung, draw and category. ``stage``: the stage's
    cells (``join_cells`` of the held-out and null jobs' tables; None: ``stage_cells`` with
    the curve's own number of permutations)."""
    stage = stage_cells(data, s, s.permutations) if stage is None else stage
    cells = layer_cells(stage, data)
    full = full_specialists(cells)
    ladder = rungs(data.category_sizes(), s.ladder)
    # a text's top-k entries do not depend on the other texts: one mask for every subsample
    top_mask = top_entries(data.values, s.candidates)
    rows = []
    for n in ladder[:-1]:
        for draw in range(s.draws):
            rng, fold_seed, perm_seed = _draw_seeds(s.seed, n, draw)
            sub, mask = subsample(data, draw_rows(data.cat_index, n, rng), top_mask)
            for row in evaluate_draw(sub, s, fold_seed, perm_seed, full, mask):
                rows.append({**row, "n": n, "draw": draw})
            if progress is not None:
                progress()
    rows += [{**row, "n": ladder[-1], "draw": 0} for row in top_rung_rows(data, s, cells)]
    if progress is not None:
        progress()
    return pl.DataFrame(rows, schema=DRAW_SCHEMA).select(list(DRAW_SCHEMA))


def n_jobs(sizes: Iterable[int], s: CurveSettings) -> int:
    """Subsamples one layer evaluates (for progress reports)."""
    return (len(rungs(sizes, s.ladder)) - 1) * s.draws + 1


def rung_table(draws: pl.DataFrame, pass_share: float) -> pl.DataFrame:
    """RUNG_SCHEMA: per cell and rung, the share of passing draws and the medians."""
    keys = ["sae", "layer", "category", "n"]
    out = draws.group_by(keys).agg(
        pl.col("n_category").max(),
        pl.len().cast(pl.Int64).alias("draws"),
        pl.col("passes").cast(pl.Float64).mean().alias("pass_share"),
        pl.col("heldout_auroc").median(),
        pl.col("heldout_auroc").min().alias("heldout_auroc_min"),
        pl.col("heldout_auroc").max().alias("heldout_auroc_max"),
        pl.col("p_value").median(),
        pl.col("fold_agreement").mean(),
        pl.col("same_feature").cast(pl.Float64).mean().alias("same_feature_share"),
        pl.col("has_specialist").cast(pl.Float64).mean().alias("specialist_share"),
    )
    out = out.with_columns((pl.col("pass_share") >= pass_share - 1e-12).alias("passes"))
    return out.select(list(RUNG_SCHEMA)).sort(keys)


def n_needed(ns: Sequence[int], passes: Sequence[bool]) -> tuple[int | None, int | None]:
    """(smallest rung from which every larger rung passes, smallest rung that passes)."""
    needed = None
    for n, ok in sorted(zip(ns, passes, strict=True), reverse=True):
        if not ok:
            break
        needed = n
    first = next((n for n, ok in sorted(zip(ns, passes, strict=True)) if ok), None)
    return needed, first


def _why_not(r: dict, s: CurveSettings) -> str:
    """Why a rung does not pass, in the words of the validation verdicts."""
    auc, p = r["heldout_auroc"], r["p_value"]
    if r["specialist_share"] < 0.5:
        return "no specialist"
    if p is None or p > s.alpha:
        return "not better than chance"
    if auc is None or auc < s.min_auroc:
        return "does not generalise"
    return f"passes in {r['pass_share']:.0%} of draws only"


def _numbers(r: dict) -> str:
    auc = "n/a" if r["heldout_auroc"] is None else f"{r['heldout_auroc']:.2f}"
    return f"held-out AUROC {auc}, {format_p(r['p_value'])}"


def sentence(category: str, rung_rows: list[dict], needed: int | None, s: CurveSettings) -> str:
    """E.g. "urls: not better than chance at 10 texts; passes from 40 (held-out AUROC 0.86,
    p < 0.001)"."""
    by_n = {r["n"]: r for r in rung_rows}
    ns = sorted(by_n)
    top = by_n[ns[-1]]
    if needed is None:
        why = _why_not(top, s)
        if why == "no specialist":  # no feature with n_in - n_out > 0: no numbers to show
            why = "no feature fires on more of its texts than of the others"
            return f"{category}: not reached with {top['n_category']} texts ({why})"
        return (
            f"{category}: not reached with {top['n_category']} texts "
            f"({why} at {top['n_category']}: {_numbers(top)})"
        )
    below = [n for n in ns if n < needed]
    at = by_n[needed]
    head = f"{category}: "
    if below:
        last = by_n[below[-1]]
        head += f"{_why_not(last, s)} at {last['n_category']} texts; "
    return head + f"passes from {at['n_category']} texts ({_numbers(at)})"


def cell_table(rungs_df: pl.DataFrame, full: pl.DataFrame, s: CurveSettings) -> pl.DataFrame:
    """CELL_SCHEMA: n_needed and the sentence of every cell. ``full``: sae, layer, category,
    feature (the full corpus' specialist, null: none)."""
    rows = []
    for (sae, layer, category), group in rungs_df.group_by(
        ["sae", "layer", "category"], maintain_order=True
    ):
        rr = group.sort("n").to_dicts()
        needed, first = n_needed([r["n"] for r in rr], [r["passes"] for r in rr])
        spec = full.filter(
            (pl.col("sae") == sae) & (pl.col("layer") == layer) & (pl.col("category") == category)
        )
        feature = spec["feature"][0] if spec.height else None
        rows.append(
            {
                "sae": sae,
                "layer": layer,
                "category": category,
                "feature": feature,
                "has_specialist": feature is not None,
                "n_texts": rr[-1]["n_category"],
                "n_needed": None if needed is None else by_category_n(rr, needed),
                "n_first_pass": None if first is None else by_category_n(rr, first),
                "reached": needed is not None,
                "sentence": sentence(category, rr, needed, s),
            }
        )
    return pl.DataFrame(rows, schema=CELL_SCHEMA).sort("sae", "layer", "category")


def by_category_n(rung_rows: list[dict], n: int) -> int:
    """The category's own text count at rung n (min(n, its size))."""
    return next(r["n_category"] for r in rung_rows if r["n"] == n)


def full_frame(stage: pl.DataFrame) -> pl.DataFrame:
    """sae, layer, category, feature: the full corpus' specialists (null: none) of the
    stage's cells."""
    return stage.select(
        "sae",
        "layer",
        "category",
        pl.when(pl.col("has_specialist")).then(pl.col("feature")).alias("feature"),
    )


# -- what the summary, the findings board and the charts show ----------------------------------

STAGE = "learning_curve"


def best_layers(cells: pl.DataFrame) -> pl.DataFrame:
    """Per (family, category): the layer whose finding needs the fewest texts (ties: the layer
    whose full-corpus specialist exists, then the deeper layer); not reached anywhere: the
    deepest layer."""
    return (
        cells.with_columns(
            pl.col("n_needed").fill_null(np.iinfo(np.int64).max).alias("_need"),
        )
        .sort(
            ["sae", "category", "_need", "has_specialist", "layer"],
            descending=[False, False, False, True, True],
        )
        .group_by(["sae", "category"], maintain_order=True)
        .first()
        .drop("_need")
        .sort("sae", "category")
    )


def summary_markdown(cells: pl.DataFrame, s: CurveSettings) -> str:
    """The section validation/summary.md ends with: one sentence per category and family."""
    lines = [
        "## How many texts a finding needs (learning curve)",
        "",
        f"Each cell validated again with n texts per category (n: {', '.join(map(str, s.ladder))}"
        f" below the largest category, then every text), {s.draws} seeded draws per n; a draw "
        f"passes when its specialist's held-out AUROC is >= {s.min_auroc:g} and its "
        f"shuffled-label p <= {s.alpha:g} ({s.permutations} permutations; with every text, the "
        "stage's own held-out AUROC and p-value), a rung when at least "
        f"{s.pass_share:.0%} of its draws pass. Per category, the layer that needs the fewest "
        "texts (tables: validation/learning_curve/; charts: "
        "validation/charts/learning_curve_sae=<family>.html).",
        "",
    ]
    for sae, group in best_layers(cells).group_by("sae", maintain_order=True):
        lines.append(f"**SAE {sae[0]}**")
        lines.append("")
        for r in group.iter_rows(named=True):
            where = f"{r['category']} (layer {r['layer']}):"
            lines.append("- " + r["sentence"].replace(f"{r['category']}:", where, 1))
        lines.append("")
    return "\n".join(lines)


def verdict_records(cells: pl.DataFrame) -> list[dict]:
    """The findings board's records (core/verdicts.py): one per cell whose full corpus has a
    specialist. ``reached`` (ok true) when the study's procedure validates a specialist from
    n_needed texts on; ``not_reached`` (ok false) when it does not even with every text."""
    out = []
    for r in cells.filter(pl.col("has_specialist")).iter_rows(named=True):
        reached = bool(r["reached"])
        out.append(
            {
                "family": r["sae"],
                "layer": int(r["layer"]),
                "category": r["category"],
                "feature": int(r["feature"]),
                "stage": STAGE,
                "verdict": "reached" if reached else "not_reached",
                "label": (
                    f"passes from {r['n_needed']} texts"
                    if reached
                    else f"not reached with {r['n_texts']} texts"
                ),
                "ok": reached,
                "detail": r["sentence"],
            }
        )
    return out


def curve_chart(rungs_df: pl.DataFrame, sae: str, alpha: float, min_auroc: float):
    """Held-out AUROC and p-value (medians over draws) by texts per category, one line per
    category, one column per layer (SAE ``sae``); dotted rules: min_auroc and alpha."""
    import altair as alt

    data = (
        rungs_df.filter(pl.col("sae") == sae)
        .select("layer", "category", "n", "n_category", "heldout_auroc", "p_value", "passes")
        .sort("layer", "category", "n")
    )
    ns = data["n"].to_list() or [1]
    x = alt.X(
        "n:Q",
        title="texts per category",
        scale=alt.Scale(type="log", domain=[min(ns), max(ns)], nice=False),
        axis=alt.Axis(values=sorted(set(ns))),
    )
    color = alt.Color("category:N", scale=alt.Scale(scheme="tableau10"))
    tooltip = [
        "layer",
        "category",
        "n",
        "n_category",
        alt.Tooltip("heldout_auroc:Q", format=".3f"),
        alt.Tooltip("p_value:Q", format=".4f"),
        "passes",
    ]

    def panel(field: str, title: str, rule: float, log: bool):
        scale = alt.Scale(type="log", domainMax=1) if log else alt.Scale(domain=[0, 1])
        lines = (
            alt.Chart()
            .mark_line(point=True)
            .encode(
                x=x, y=alt.Y(f"{field}:Q", title=title, scale=scale), color=color, tooltip=tooltip
            )
        )
        level = alt.Chart().mark_rule(color="#555", strokeDash=[2, 2]).encode(y=alt.datum(rule))
        return (
            alt.layer(lines, level, data=data)
            .properties(width=170, height=140)
            .facet(column=alt.Column("layer:O", title="layer"))
        )

    return alt.vconcat(
        panel("heldout_auroc", "held-out AUROC (median of draws)", min_auroc, False),
        panel("p_value", "shuffled-label p (median)", alpha, True),
    ).properties(title=f"How many texts a finding needs, SAE {sae}")

"""results/summary.md: the study's headline findings for this run, in words and numbers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from ..analysis.tables import specialists_found
from .doc import Doc, code, link


def _fmt(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _feat(row: Mapping[str, Any]) -> Any:
    if row.get("feature") is None:
        return "none"
    return link(f"#{row['feature']}", row.get("neuronpedia_url"))


def _row(df: pl.DataFrame, **eq: Any) -> dict[str, Any] | None:
    for key, value in eq.items():
        df = df.filter(pl.col(key) == value)
    return df.row(0, named=True) if df.height else None


def _trend(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "changes"
    return "rises" if b > a else "falls" if b < a else "stays"


# The original study (docs/analyses.md): GPT-2 small with the gpt2-small-res-jb SAEs.
STUDY_MODELS = ("gpt2", "gpt2-small")
STUDY_RELEASE = "gpt2-small-res-jb"
STUDY_FINDINGS = (
    "peak ≈13 at layer 6 → ≈37 at layer 11 (≈3×); top-feature coverage ≈98% → ≈87%; "
    "7/7 specialists at every layer (70 texts, layers 6, 8, 10, 11)"
)


def study_families(model_name: str | None, releases: Mapping[str, str | None]) -> list[str]:
    """The SAE families of this run that are the original study's model and SAEs: only their
    sections compare with the study's numbers."""
    if model_name not in STUDY_MODELS:
        return []
    return sorted(name for name, release in releases.items() if release == STUDY_RELEASE)


def build_summary(
    *,
    strongest: pl.DataFrame,
    frequent: pl.DataFrame,
    selective: pl.DataFrame,
    specialists: pl.DataFrame,
    texts: pl.DataFrame,
    settings: Mapping[str, Any],
    marks: Mapping[tuple[str, int, str], str] | None = None,
) -> Doc:
    """The run's summary; ``marks``: (sae, layer, category) -> the verdicts against a cell's
    specialist (findings board, report/findings.py), shown after its score."""
    marks = marks or {}
    doc = Doc()
    doc.h(1, "Summary of this run")
    sizes = texts.group_by("category").len().sort("category")
    doc.p(
        f"{texts.height} texts in {sizes.height} categories (",
        ", ".join(f"{c} {n}" for c, n in sizes.iter_rows()),
        "). Per-text value: ",
        code(str(settings["aggregation"])),
        " over counted positions (BOS ",
        "included" if settings["include_bos"] else "excluded",
        f"); a text fires when its value > {settings['threshold']}; "
        f"{settings['candidates']} specialist candidates per category.",
    )
    comparable = set(settings.get("study_families") or ())
    found = specialists_found(specialists)
    families = sorted(set(specialists["sae"].to_list()) | set(strongest["sae"].to_list()))
    for sae in families:
        layers = sorted(
            set(specialists.filter(pl.col("sae") == sae)["layer"].to_list())
            | set(strongest.filter(pl.col("sae") == sae)["layer"].to_list())
        )
        if not layers:
            continue
        first, last = layers[0], layers[-1]
        doc.h(2, "SAE family ", code(sae))
        bullets = []
        s_first = _row(strongest, sae=sae, layer=first, rank=1)
        s_last = _row(strongest, sae=sae, layer=last, rank=1)
        p_first = s_first["peak"] if s_first else None
        p_last = s_last["peak"] if s_last else None
        f_first = _row(frequent, sae=sae, layer=first, rank=1)
        f_last = _row(frequent, sae=sae, layer=last, rank=1)
        c_first = f_first["coverage"] if f_first else None
        c_last = f_last["coverage"] if f_last else None
        if first == last:  # one layer: no trend to state (it read "stays from x ... to x")
            bullets.append(
                [
                    f"One layer ({first}): peak activation {_fmt(p_first)} (feature ",
                    _feat(s_first or {}),
                    f"); coverage of the most frequent feature {_pct(c_first)} (feature ",
                    _feat(f_first or {}),
                    ").",
                ]
            )
        else:
            ratio = f" ({p_last / p_first:.2f}×)" if p_first and p_last is not None else ""
            bullets.append(
                [
                    f"Peak activation {_trend(p_first, p_last)} from {_fmt(p_first)} "
                    f"at layer {first} (feature ",
                    _feat(s_first or {}),
                    f") to {_fmt(p_last)} at layer {last} (feature ",
                    _feat(s_last or {}),
                    f"){ratio}.",
                ]
            )
            delta = (
                f" ({100 * (c_last - c_first):+.1f} percentage points)"
                if c_first is not None and c_last is not None
                else ""
            )
            trend = _trend(c_first, c_last)
            bullets.append(
                [
                    f"Coverage of the most frequent feature {trend} "
                    + ("at " if trend == "stays" else "from ")
                    + f"{_pct(c_first)} at layer {first} (feature ",
                    _feat(f_first or {}),
                    (") and " if trend == "stays" else ") to ")
                    + f"{_pct(c_last)} at layer {last} (feature ",
                    _feat(f_last or {}),
                    f"){delta}.",
                ]
            )
        parts = []
        for layer in layers:
            r = _row(found, sae=sae, layer=layer)
            missing = specialists.filter(
                (pl.col("sae") == sae) & (pl.col("layer") == layer) & ~pl.col("has_specialist")
            )["category"].to_list()
            txt = f"layer {layer}: {r['found']}/{r['n_categories']}" if r else f"layer {layer}: 0"
            if missing:
                txt += " (none for " + ", ".join(missing) + ")"
            parts.append(txt)
        bullets.append(["Specialists found per layer: " + "; ".join(parts) + "."])
        sel_parts: list[Any] = ["Most selective feature per layer: "]
        for i, layer in enumerate(layers):
            r = _row(selective, sae=sae, layer=layer, rank=1)
            sel_parts.append(("; " if i else "") + f"layer {layer}: ")
            if r is None:
                sel_parts.append(f"no feature exceeds {settings['threshold']}")
            else:
                sel_parts += [
                    "feature ",
                    _feat(r),
                    f" (above threshold in {r['n_above']} text{'s' * (r['n_above'] != 1)}, "
                    f"peak {_fmt(r['peak'])})",
                ]
        sel_parts.append(".")
        bullets.append(sel_parts)
        if sae in comparable:
            bullets.append(
                f"Comparison with the original study (the same model and SAEs, GPT-2 small with "
                f"{STUDY_RELEASE}): it found {STUDY_FINDINGS}."
            )
        doc.ul(bullets)

        rows = []
        for layer in layers:
            s = _row(strongest, sae=sae, layer=layer, rank=1)
            f = _row(frequent, sae=sae, layer=layer, rank=1)
            r = _row(found, sae=sae, layer=layer)
            rows.append(
                [
                    str(layer),
                    _fmt(s["peak"] if s else None),
                    [_feat(s or {})],
                    _pct(f["coverage"] if f else None),
                    [_feat(f or {})],
                    f"{r['found']}/{r['n_categories']}" if r else "0",
                ]
            )
        doc.table(
            [
                "layer",
                "peak",
                "strongest feature",
                "top coverage",
                "most frequent feature",
                "specialists found",
            ],
            rows,
        )
        doc.p(
            "Specialist per category and layer (feature, score = n_in − n_out; * = no "
            "specialist, best candidate shown"
            + ("; ✗ / ⊘ and a label: a verdict against it, see the findings board" if marks else "")
            + "):"
        )
        spec = specialists.filter(pl.col("sae") == sae)
        cats = sorted(set(spec["category"].to_list()))
        rows = []
        for cat in cats:
            row: list[Any] = [cat]
            for layer in layers:
                r = _row(spec, category=cat, layer=layer)
                if r is None or r["feature"] is None:
                    row.append("–")
                else:
                    mark = "" if r["has_specialist"] else "*"
                    verdict = marks.get((sae, int(layer), cat))
                    mark += f" {verdict}" if verdict else ""
                    row.append([_feat(r), f" ({r['score']}){mark}"])
            rows.append(row)
        doc.table(["category"] + [f"layer {layer}" for layer in layers], rows)
    return doc

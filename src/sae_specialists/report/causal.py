"""The causal check's part of the report (docs/causal.md): a section of summary.md /
analysis.html and the marks of the analysis page's specialist table, from causal/verdicts.json's
content ("family/layer/category" -> feature, verdict, detector_only, in_mean, out_mean, ratio,
control_in_mean, vs_control_low, vs_control_high)."""

from __future__ import annotations

from collections.abc import Mapping

from .doc import Doc, link

VERDICTS = ("specific", "unspecific", "detector only", "no control")


def _key(k: str):
    sae, layer, category = k.split("/", 2)
    return (sae, int(layer), category)


def _num(x) -> str:
    return "–" if x is None else f"{x:.3g}"


def headline(verdicts: Mapping[str, Mapping]) -> str:
    counts = {v: sum(r["verdict"] == v for r in verdicts.values()) for v in VERDICTS}
    return (
        f"{len(verdicts)} specialists ablated at their hook: {counts['specific']} specific "
        "(removing it raises the next-token loss on its category more than a random feature "
        f"of similar density does, and more than on other texts), {counts['unspecific']} "
        "unspecific (above the control, not more on its category), "
        f"{counts['detector only']} detector only (no clear effect on its category beyond "
        "the random control's and zero)."
        + (
            f" {counts['no control']} with a clear effect but no density-matched random "
            "feature to compare it with (no control)."
            if counts["no control"]
            else ""
        )
    )


def mark(verdict: Mapping | None) -> str | None:
    """The analysis page's mark of a cell (None: nothing to mark)."""
    if verdict and verdict.get("detector_only"):
        return "⊘"
    return None


def mark_title(verdict: Mapping) -> str:
    return (
        f"causal check: {verdict['verdict']} (Δloss on its category {_num(verdict['in_mean'])}, "
        f"elsewhere {_num(verdict['out_mean'])}, random control {_num(verdict['control_in_mean'])})"
    )


def add_summary_section(doc: Doc, verdicts: Mapping[str, Mapping], pages_index: str) -> None:
    """Headline counts, the table of every checked specialist, a link to the causal pages
    (``pages_index``: causal/pages/index.html relative to the summary)."""
    doc.h(2, "Causal check")
    if not verdicts:
        doc.p("No specialist to check.")
        return
    doc.p(headline(verdicts))
    rows = []
    for k in sorted(verdicts, key=_key):
        v = verdicts[k]
        sae, layer, category = _key(k)
        rows.append(
            [
                [sae],
                [str(layer)],
                [category],
                [str(v["feature"])],
                [_num(v["in_mean"])],
                [_num(v["out_mean"])],
                [_num(v["ratio"])],
                [_num(v["control_in_mean"])],
                [v["verdict"]],
            ]
        )
    doc.table(
        [
            "SAE",
            "layer",
            "category",
            "feature",
            "Δloss in",
            "Δloss out",
            "in / out",
            "control in",
            "verdict",
        ],
        rows,
    )
    doc.p(
        "Δloss: change in mean next-token cross-entropy (nats) per text when the feature is "
        "zero-ablated, on the category's texts (in) and the others (out). Per cell: effects of "
        "both ablations with bootstrap intervals, the tokens whose loss rises most and steering "
        "samples: ",
        link("causal/pages/index.html", pages_index),
        "; how to read them: docs/causal.md.",
    )

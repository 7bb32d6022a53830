"""summary.md of the methodology study: each pitfall with the numbers of this run."""

from __future__ import annotations

import polars as pl

from .ablation import method_id


def _found(summary: pl.DataFrame, sae: str, key: tuple) -> dict[int, str]:
    d = summary.filter((pl.col("sae") == sae) & (pl.col("method") == method_id(*key)))
    return {
        int(r["layer"]): f"{r['specialists_found']}/{r['n_categories']}"
        for r in d.iter_rows(named=True)
    }


def _md_table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def build_report(
    *,
    ablation: pl.DataFrame | None,
    sweep: pl.DataFrame,
    auroc: pl.DataFrame,
    allfeat: pl.DataFrame,
    boot: pl.DataFrame,
    settings: dict,
) -> str:
    thr, k = settings["threshold"], settings["candidates"]
    agg, bos = settings["aggregation"], settings["include_bos"]
    lines = [
        "# Methodology study",
        "",
        f"Analysis settings: aggregation `{agg}`, BOS {'included' if bos else 'excluded'}, "
        f"threshold {thr:g}, top-{k} candidates by in-category peak. Bootstrap: "
        f"{settings['bootstrap_resamples']} resamples of texts within categories, seed "
        f"{settings['seed']}, {settings['ci']:.0%} percentile intervals.",
        "",
    ]
    saes = sorted(boot["sae"].unique().to_list()) if boot.height else []
    ref = ("encode_then_aggregate", False, bool(bos), agg)
    if ablation is not None and ablation.height:
        lines += ["## 1. Method ablation (specialists found per layer)", ""]
        methods = ablation.select(
            "method", "encoding", "padding", "include_bos", "aggregation", "reference"
        ).unique(maintain_order=True)
        for sae in saes:
            layers = sorted(ablation.filter(pl.col("sae") == sae)["layer"].unique().to_list())
            rows = []
            for m in methods.iter_rows(named=True):
                key = (m["encoding"], m["padding"], m["include_bos"], m["aggregation"])
                f = _found(ablation, sae, key)
                rows.append(
                    [("**" + m["method"] + "** (reference)") if m["reference"] else m["method"]]
                    + [f.get(layer, "–") for layer in layers]
                )
            lines += [f"SAE `{sae}`:", ""]
            lines += _md_table(["method"] + [f"layer {layer}" for layer in layers], rows)
            lines.append("")
            pitfalls = {
                "padding only": ("encode_then_aggregate", True, bool(bos), agg),
                "averaging before encoding only": ("aggregate_then_encode", False, bool(bos), agg),
                "both (the naive notebook)": ("aggregate_then_encode", True, bool(bos), agg),
                "BOS included": ("encode_then_aggregate", False, not bos, agg),
                "the other aggregation": (
                    "encode_then_aggregate",
                    False,
                    bool(bos),
                    "max" if agg == "mean" else "mean",
                ),
            }
            r = _found(ablation, sae, ref)
            mine = ablation.filter(pl.col("sae") == sae)
            n_ref = int(mine.filter(pl.col("reference"))["specialists_found"].sum())
            for name, key in pitfalls.items():
                f = _found(ablation, sae, key)
                if f:
                    pairs = ", ".join(
                        f"layer {layer}: {r.get(layer, '–')} → {f[layer]}" for layer in sorted(f)
                    )
                    same = int(
                        mine.filter(pl.col("method") == method_id(*key))[
                            "n_same_as_reference"
                        ].sum()
                    )
                    lines.append(
                        f"- {name} ({method_id(*key)}): {pairs}; the reference's "
                        f"specialist kept in {same} of {n_ref} (layer, category) cells"
                    )
            lines.append("")
    lines += ["## 2. Threshold sensitivity", ""]
    top = sweep.filter(pl.col("rule") == "top_k")
    for sae in saes:
        s = (
            top.filter(pl.col("sae") == sae)
            .group_by("layer", "threshold")
            .agg(pl.col("specialists_found").first(), pl.col("n_categories").first())
            .sort("layer", "threshold")
        )
        thresholds = sorted(s["threshold"].unique().to_list())
        rows = []
        for layer in sorted(s["layer"].unique().to_list()):
            d = {
                r["threshold"]: f"{r['specialists_found']}/{r['n_categories']}"
                for r in s.filter(pl.col("layer") == layer).iter_rows(named=True)
            }
            rows.append([f"layer {layer}"] + [d.get(t, "–") for t in thresholds])
        lines += [f"SAE `{sae}`, specialists found (top-{k} rule) by threshold:", ""]
        lines += _md_table([""] + [f"{t:g}" for t in thresholds], rows)
        lines.append("")
    lines += [
        "AUROC of each specialist's per-text value, in vs out of its category "
        "(threshold-free; 1 = perfect separation):",
        "",
    ]
    for sae in saes:
        a = auroc.filter(pl.col("sae") == sae)
        layers = sorted(a["layer"].unique().to_list())
        rows = []
        for cat in sorted(a["category"].unique().to_list()):
            d = {
                r["layer"]: ("–" if r["auroc"] is None else f"{r['auroc']:.2f}")
                for r in a.filter(pl.col("category") == cat).iter_rows(named=True)
            }
            rows.append([cat] + [d.get(layer, "–") for layer in layers])
        lines += [f"SAE `{sae}`:", ""]
        lines += _md_table(["category"] + [f"layer {layer}" for layer in layers], rows)
        lines.append("")
    lines += ["## 3. Bootstrap stability", ""]
    reported = boot.filter(pl.col("has_specialist"))
    if reported.height:
        st = reported["stability"]
        unstable = reported.filter(pl.col("stability") < 0.9).sort("stability")
        lines.append(
            f"{reported.height} reported specialists; the same feature wins in a median "
            f"{st.median():.1%} of resamples (min {st.min():.1%}); {unstable.height} below "
            "90%" + (":" if unstable.height else ".")
        )
        for r in unstable.iter_rows(named=True):
            lines.append(
                f"- {r['sae']} layer {r['layer']} {r['category']}: feature {r['feature']} wins "
                f"{r['stability']:.1%}, score {r['score']} [{r['score_ci_low']}, "
                f"{r['score_ci_high']}]; runner-up {r['runner_up_feature']} "
                f"({(r['runner_up_share'] or 0):.1%})"
            )
    else:
        lines.append("No category has a specialist.")
    lines.append("")
    lines += ["## 4. Candidate restriction (top-k vs all features)", ""]
    missed = allfeat.filter(pl.col("missed"))
    lines.append(
        f"The top-{k} rule misses a better-scoring feature in {missed.height} of "
        f"{allfeat.height} (SAE, layer, category) cells; {int(allfeat['gained_specialist'].sum())}"
        " categories have a specialist only when every feature is scored."
    )
    for r in missed.sort("sae", "layer", "category").iter_rows(named=True):
        lines.append(
            f"- {r['sae']} layer {r['layer']} {r['category']}: top-{k} winner "
            f"{r['topk_feature']} (score {r['topk_score']}) vs feature {r['all_feature']} "
            f"(score {r['all_score']}, {r['all_n_in']} in / {r['all_n_out']} out, peak rank "
            f"{r['all_peak_rank']} in the category)"
        )
    lines.append("")
    return "\n".join(lines)

"""The findings board and its verdict interface (issue 26 item 1, issue 28 items 3-4), on
small hand-made tables: the record schema, the validation and causal records (never a test that
did not run), the combined verdict of a cell, the family sentence, the dashboards index's
verdict columns and badges, and the files of another configuration listed apart."""

from __future__ import annotations

import polars as pl
import pytest

from sae_specialists.causal.board import cell_record as causal_record
from sae_specialists.core.verdicts import VERDICT_COLUMNS, verdict_frame, write_verdicts
from sae_specialists.dashboards.index import build_index as dashboards_index
from sae_specialists.report.findings import (
    FAILS,
    HOLDS,
    REGISTRY,
    UNTESTED,
    board_cells,
    board_html,
    family_sentence,
    load_verdicts,
)
from sae_specialists.report.overview import RunKeys, build_overview, foreign_reason
from sae_specialists.validation.board import cell_record as validation_record


def rec(category, layer, stage, verdict, label, ok, feature=7, family="res"):
    return dict(
        family=family,
        layer=layer,
        category=category,
        feature=feature,
        stage=stage,
        verdict=verdict,
        label=label,
        ok=ok,
        detail="numbers",
    )


def specialists(rows):
    return pl.DataFrame(
        [
            dict(
                sae="res",
                layer=layer,
                category=cat,
                feature=feat,
                score=score,
                has_specialist=score > 0,
            )
            for cat, layer, feat, score in rows
        ],
        schema={
            "sae": pl.String,
            "layer": pl.Int64,
            "category": pl.String,
            "feature": pl.Int64,
            "score": pl.Int64,
            "has_specialist": pl.Boolean,
        },
    )


def test_records_have_the_documented_schema_and_one_per_cell_and_stage(tmp_path):
    df = verdict_frame([rec("python", 1, "validation", "validated", "validated", True)])
    assert tuple(df.columns) == VERDICT_COLUMNS
    assert df.schema["ok"] == pl.Boolean and df.schema["feature"] == pl.Int64
    with pytest.raises(ValueError, match="more than one record"):
        verdict_frame([rec("python", 1, "causal", "specific", "specific", True)] * 2)
    with pytest.raises(ValueError, match="required column 'label'"):
        verdict_frame([rec("python", 1, "causal", "specific", None, True)])
    path = tmp_path / "verdicts.parquet"
    assert write_verdicts([rec("a", 0, "causal", "not_tested", "not tested", None)], path) == 1
    back = load_verdicts({"causal": str(path)})
    assert back["ok"].to_list() == [None]
    with pytest.raises(ValueError, match="stage 'causal'"):
        load_verdicts({"validation": str(path)})


def validation_row(**kw):
    row = dict(
        sae="res",
        layer=2,
        category="recipes",
        feature=11,
        has_specialist=True,
        heldout_auroc=0.9,
        p_value=0.001,
        generalises=True,
        beats_null=True,
        loses_to_probe=False,
        verdict_text="text",
    )
    return row | kw


def test_validation_records_never_claim_a_test_that_did_not_run():
    assert validation_record(validation_row())["verdict"] == "validated"
    chance = validation_record(validation_row(p_value=0.6, beats_null=False))
    assert (chance["verdict"], chance["label"], chance["ok"]) == ("chance", "chance", False)
    # permutations: 0 -> no p-value: the null test did not run, so no "chance" verdict
    no_null = validation_record(validation_row(p_value=None, beats_null=False))
    assert no_null["ok"] is True and "chance not tested" in no_null["label"]
    assert no_null["verdict"] == "generalises"
    both = validation_record(
        validation_row(heldout_auroc=0.5, generalises=False, loses_to_probe=True)
    )
    assert both["label"] == "does not generalise" and both["ok"] is False
    assert both["detail"].startswith("also loses to probe; ")
    nothing = validation_record(validation_row(heldout_auroc=None, p_value=None))
    assert nothing["ok"] is None and nothing["verdict"] == "not_tested"
    assert validation_record(validation_row(has_specialist=False)) is None


def test_causal_records():
    row = dict(
        sae="res",
        layer=1,
        category="urls",
        feature=3,
        verdict="detector only",
        detector_only=True,
        in_mean=1e-9,
        in_low=-2e-9,
        in_high=3e-9,
        out_mean=0.0,
        vs_control=0.0,
        vs_control_low=-1e-9,
        vs_control_high=1e-9,
    )
    r = causal_record(row)
    assert (r["verdict"], r["label"], r["ok"]) == ("detector_only", "detector only", False)
    assert "[-2e-09, +3e-09]" in r["detail"]
    assert causal_record(row | dict(verdict="specific", detector_only=False))["ok"] is True
    untested = causal_record(row | dict(in_mean=None, in_low=None, in_high=None))
    assert untested["ok"] is None and untested["label"] == "not tested"


def test_cell_verdict_combines_stages_and_ignores_stale_records():
    spec = specialists(
        [
            ("python", 1, 7, 9),
            ("recipes", 1, 7, 2),
            ("urls", 1, 7, 8),
            ("poetry", 1, 5, 3),
            ("math", 1, None, 0),
        ]
    )
    verdicts = verdict_frame(
        [
            rec("python", 1, "validation", "validated", "validated", True),
            rec("python", 1, "causal", "specific", "specific", True),
            rec("recipes", 1, "validation", "chance", "chance", False),
            rec("urls", 1, "validation", "validated", "validated", True),
            rec("urls", 1, "causal", "detector_only", "detector only", False),
            # a record on feature 7, but poetry's specialist is now feature 5: stale
            rec("poetry", 1, "validation", "chance", "chance", False),
        ]
    )
    cells = {c.category: c for c in board_cells(spec, verdicts, ["validation", "causal"])}
    assert cells["python"].status == HOLDS and cells["python"].label == "validated · specific"
    assert cells["recipes"].status == FAILS and cells["recipes"].label == "✗ chance"
    assert cells["urls"].status == FAILS and cells["urls"].label == "⊘ detector only"
    assert cells["poetry"].status == UNTESTED and cells["poetry"].label == "not tested"
    assert cells["math"].label == ""
    sentence = family_sentence(cells.values(), ["validation", "causal"])
    assert sentence == (
        "1 of 4 specialists hold up: python (layer 1). 2 do not: ✗ chance 1, ⊘ detector only 1. "
        "1 not tested by any stage."
    )
    html = board_html(
        list(cells.values()),
        ["validation", "causal"],
        dashboard_href=lambda f, layer, feat: (
            f"dashboards/sae={f}/layer={layer}/feature={feat}.html"
        ),
    )
    assert 'href="dashboards/sae=res/layer=1/feature=7.html"' in html
    assert "data-verdicts=" in html and "✗ chance" in html


def test_registry_entries_are_complete():
    stages = [s.stage for s in REGISTRY]
    assert len(stages) == len(set(stages))
    assert [s.order for s in REGISTRY] == sorted(s.order for s in REGISTRY)


def test_dashboards_index_marks_a_chance_specialist_and_has_verdict_columns():
    feats = pl.DataFrame(
        [
            dict(
                sae="res",
                layer=1,
                feature=7,
                roles=["specialist"],
                specialist_categories=["recipes"],
                specialist_scores=[2],
                strongest_rank=None,
                frequent_rank=None,
                top_category="recipes",
                density=0.1,
                max_activation=3.0,
                top_logit=None,
                neuronpedia_url=None,
                href="a.html",
            ),
            dict(
                sae="res",
                layer=1,
                feature=8,
                roles=["specialist"],
                specialist_categories=["python"],
                specialist_scores=[9],
                strongest_rank=None,
                frequent_rank=None,
                top_category="python",
                density=0.1,
                max_activation=3.0,
                top_logit=None,
                neuronpedia_url=None,
                href="b.html",
            ),
        ]
    )
    verdicts = verdict_frame(
        [
            rec("recipes", 1, "validation", "chance", "chance", False),
            rec("python", 1, "validation", "validated", "validated", True, feature=8),
        ]
    )
    page = dashboards_index(
        feats, {"top_k_features": 5, "corpus": None}, verdicts, [("validation", "validation", "✗")]
    )
    assert 'class="badge specialist against"' in page
    assert "specialist of recipes (score 2): ✗ chance" in page
    assert '<span class="badge specialist">specialist of python (score 9)</span>' in page
    assert 'data-v-validation="chance"' in page and 'data-v-validation="validated"' in page
    assert '<td class="vd against">✗ chance</td>' in page


KEYS = RunKeys(
    families={"res": (0, 1), "attn": (0,)},
    categories=("python", "urls"),
    n_chunks={"python": 1, "urls": 2},
    off=("methodology",),
)


@pytest.mark.parametrize(
    "rel, foreign",
    [
        ("tables/specialists.csv", False),
        ("per_text/sae=res/layer=1.parquet", False),
        ("per_text/sae=res/layer=2.parquet", True),
        ("per_text/sae=attn/layer=1.parquet", True),
        ("logits/sae=mlp/layer=0.parquet", True),
        ("logits/sae=res/layer=0_histograms.parquet", False),
        ("logits/sae=res/layer=3_histograms.parquet", True),
        ("tokens/category=python/chunk=00000/tokens.parquet", False),
        ("tokens/category=math/chunk=00000/tokens.parquet", True),
        ("tokens/category=urls/chunk=00001/tokens.parquet", False),
        ("tokens/category=python/chunk=00001/tokens.parquet", True),
        ("token_views/sae=res/layer=0/math.html", True),
        ("token_views/sae=res/layer=0/urls.html", False),
        ("causal/pages/sae=res/layer=0/index.html", False),
        ("dashboards/sae=res/layer=1/feature=3.html", False),
        ("export/neuronpedia/sae=attn/layer=1/batch-0.json", True),
        ("methodology/summary.md", True),
        ("surface/probe/tokens/category=probe/chunk=00000/tokens.parquet", False),
        ("surface/probe/activations/sae=res/layer=1/category=probe/chunk=00003/a.parquet", False),
        ("surface/probe/activations/sae=res/layer=5/category=probe/chunk=00000/a.parquet", True),
        ("validation/test_set/tokens/category=python/chunk=00004/tokens.parquet", False),
    ],
)
def test_files_of_another_configuration(rel, foreign):
    assert (foreign_reason(rel, KEYS) is not None) == foreign


def test_index_lists_another_configurations_files_apart():
    page = build_overview(
        ["tables/specialists.csv"],
        foreign={"per_text/sae=res/layer=2.parquet": "layer 2 of SAE family res is not here"},
    )
    ours, _, apart = page.partition('id="foreign"')
    assert "per_text/sae=res/layer=2.parquet" not in ours
    assert "per_text/sae=res/layer=2.parquet" in apart and "clean_foreign" in apart


def test_dashboard_page_badge_of_a_specialist_the_validation_rejects():
    from sae_specialists.dashboards.render import role_badges, verdicts_against

    row = {"specialist_categories": ["recipes", "python"], "specialist_scores": [1, 9]}
    verdicts = {
        "recipes": {"fails_heldout": True, "verdict": "not better than chance"},
        "python": {"fails_heldout": False, "verdict": "generalises"},
    }
    badges = role_badges(row, verdicts_against(verdicts))
    assert "specialist of recipes (score 1): ✗ not better than chance" in badges
    assert '<span class="badge specialist">specialist of python (score 9)</span>' in badges
    assert badges.count("badge specialist against") == 1

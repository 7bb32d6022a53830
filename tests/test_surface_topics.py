"""Topic x form measures (surface/topics.py) on small planted arrays, against independent
computations written out here."""

from __future__ import annotations

import numpy as np
import pytest

from sae_specialists.analysis.dense import LayerData
from sae_specialists.analysis.selection import select
from sae_specialists.core.errors import ConfigError
from sae_specialists.surface.topics import (
    Design,
    against_other_topics,
    geometry,
    jaccard,
    marker_share,
    mean_pairwise_jaccard,
    selective_features,
)

# two topics x two forms, 6 texts each: code/{python, described}, web/{urls, social}
CATS = ["code_described", "code_python", "web_social", "web_urls"]
DESIGN = {
    "code_python": "code/symbolic",
    "code_described": "code/verbal",
    "web_urls": "web/symbolic",
    "web_social": "web/verbal",
}


def planted_values():
    """Per-text values [24 texts, 4 features]: feature 10 reads the *code* topic in both forms
    (8.0 on every code text), feature 20 the urls form only, feature 30 the social form only,
    feature 40 fires weakly everywhere."""
    cat_index = np.repeat(np.arange(4), 6)
    values = np.zeros((24, 4))
    code = np.isin(cat_index, [0, 1])
    values[code, 0] = 8.0
    values[cat_index == 3, 1] = 9.0
    values[cat_index == 2, 2] = 7.0
    values[:, 3] = 1.0
    return values, np.array([10, 20, 30, 40]), cat_index


def independent_rule(values, features, cat_index, c, absent, threshold=5.0, k=5):
    """The study's rule written out, with the texts of ``absent`` categories left out."""
    keep = ~np.isin(cat_index, absent)
    inside = (cat_index == c) & keep
    outside = (cat_index != c) & keep
    peak = values[inside].max(axis=0)
    active = [j for j in range(values.shape[1]) if peak[j] > 0]
    cands = sorted(active, key=lambda j: (-peak[j], features[j]))[:k]
    best = max(
        cands,
        key=lambda j: (
            int((values[inside, j] > threshold).sum())
            - int((values[outside, j] > threshold).sum()),
            peak[j],
            -features[j],
        ),
    )
    score = int((values[inside, best] > threshold).sum()) - int(
        (values[outside, best] > threshold).sum()
    )
    return int(features[best]), score


def test_against_other_topics_finds_the_topic_feature():
    """Against every category, the code feature scores 6 - 6 = 0 in each code form (no
    specialist); against the other topics it scores 6 in both forms: Jaccard 1."""
    values, features, cat_index = planted_values()
    design = Design.parse(DESIGN, CATS)
    data = LayerData("res", 2, values, features, [f"t{i}" for i in range(24)], CATS, cat_index)
    for name in ("code_python", "code_described"):
        c = CATS.index(name)
        everyone = select(data, c, threshold=5.0, k=5)
        assert not everyone.has_specialist[0]  # score 0: never found against every category
        w = against_other_topics(CATS, cat_index, design, name)
        other = [CATS.index(o) for o in design.same_topic_others(name)]
        sel = select(data, c, weights=w, threshold=5.0, k=5)
        assert (
            (int(sel.feature[0]), int(sel.score[0]))
            == independent_rule(values, features, cat_index, c, other)
            == (10, 6)
        )
    web = [
        int(
            select(
                data,
                CATS.index(n),
                weights=against_other_topics(CATS, cat_index, design, n),
                threshold=5.0,
            ).feature[0]
        )
        for n in ("web_urls", "web_social")
    ]
    assert web == [20, 30]
    assert jaccard({10}, {10}) == 1.0 and jaccard({web[0]}, {web[1]}) == 0.0


def test_selective_features_and_jaccard_of_top_k():
    values, features, cat_index = planted_values()
    design = Design.parse(DESIGN, CATS)
    tops = {}
    for name in CATS:
        c = CATS.index(name)
        w = against_other_topics(CATS, cat_index, design, name)[0]
        tops[name] = set(selective_features(values, features, cat_index, c, w, 5.0, k=1))
    assert tops == {
        "code_python": {10},
        "code_described": {10},
        "web_urls": {20},
        "web_social": {30},
    }
    assert mean_pairwise_jaccard([tops["code_python"], tops["code_described"]]) == 1.0
    assert mean_pairwise_jaccard([tops["web_urls"], tops["web_social"]]) == 0.0
    assert mean_pairwise_jaccard([set(), set()]) is None
    # k = 2: the always-weak feature 40 (score 0) joins every set
    c = CATS.index("web_urls")
    w = against_other_topics(CATS, cat_index, design, "web_urls")[0]
    assert selective_features(values, features, cat_index, c, w, 5.0, k=2) == [20, 40]


def test_design_errors():
    with pytest.raises(ConfigError, match="topic/form"):
        Design.parse({"code_python": "code"}, CATS)
    with pytest.raises(ConfigError, match="not categories"):
        Design.parse({"nope": "a/b"}, CATS)
    assert Design.parse(DESIGN, CATS).topics() == {
        "code": ["code_described", "code_python"],
        "web": ["web_social", "web_urls"],
    }


def test_marker_share():
    toks = [" def", " the", "):", " x", "+"]
    y = np.array([3.0, 1.0, 4.0, 0.0, 2.0])
    assert marker_share(toks, y, ["def", "):"]) == pytest.approx(7.0 / 10.0)
    assert marker_share(toks, np.zeros(5), ["def"]) is None


def test_geometry_clusters_by_topic_with_a_permutation_p():
    """Pooled residuals: topic direction (strong) + form direction (weak) + noise; the pair
    means equal a loop over pairs, and the p-value of the topic clustering is small."""
    rng = np.random.default_rng(0)
    topic = np.repeat(["code", "code", "web", "web"], 6)
    form = np.repeat(["symbolic", "verbal", "symbolic", "verbal"], 6)
    basis = np.eye(16)
    x = (
        3.0 * np.where((topic == "code")[:, None], basis[0], basis[1])
        + 1.0 * np.where((form == "symbolic")[:, None], basis[2], basis[3])
        + rng.normal(0, 0.3, (24, 16))
    )
    g = geometry(x, topic, form, permutations=199, seed=0)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    pairs = {"t": [], "f": [], "n": []}
    for i in range(24):
        for j in range(i + 1, 24):
            cos = float(unit[i] @ unit[j])
            if topic[i] == topic[j] and form[i] != form[j]:
                pairs["t"].append(cos)
            elif form[i] == form[j] and topic[i] != topic[j]:
                pairs["f"].append(cos)
            elif topic[i] != topic[j] and form[i] != form[j]:
                pairs["n"].append(cos)
    assert g.within_topic == pytest.approx(np.mean(pairs["t"]))
    assert g.within_form == pytest.approx(np.mean(pairs["f"]))
    assert g.across == pytest.approx(np.mean(pairs["n"]))
    assert g.within_topic > g.within_form > g.across
    assert g.p_value == pytest.approx(1 / 200)
    # no topic structure: the p-value is not small
    flat = geometry(rng.normal(0, 1, (24, 16)), topic, form, permutations=199, seed=0)
    assert flat.p_value > 0.05


def test_causal_rank_correlation_and_top1_changes():
    """The causal part of the design's report from a specialists table and a causal effects
    table: Spearman ρ of score with Δloss in (ranks written out with numpy), and the top-1
    changes pooled over the specialists' positions, their mean share and how many change any,
    from integer counts; a cell without specialist and the mean-ablation rows are left out."""
    import polars as pl

    from sae_specialists.surface.design import (
        causal_correlation,
        causal_specialists,
        topics_summary,
    )

    scores = [9, 7, 5, 3, 1]
    delta = [0.30, 0.10, 0.20, 0.05, 0.01]
    changed = [12, 0, 3, 1, 0]
    positions = [40, 25, 30, 50, 10]
    cats = ["a", "b", "c", "d", "e"]
    specialists = pl.DataFrame(
        {
            "sae": ["res"] * 6,
            "layer": [1] * 6,
            "category": [*cats, "f"],
            "feature": [1, 2, 3, 4, 5, 6],
            "score": [*scores, 0],
            "has_specialist": [True] * 5 + [False],
        }
    )
    effects = pl.DataFrame(
        {
            "sae": ["res"] * 12,
            "layer": [1] * 12,
            "category": [*cats, "f"] * 2,
            "feature": [1, 2, 3, 4, 5, 6] * 2,
            "mode": ["zero"] * 6 + ["mean"] * 6,
            "in_mean": [*delta, 0.5] + [9.0] * 6,
            "top1_changed_share": [*np.divide(changed, positions), 1.0] + [0.9] * 6,
            "top1_positions": [*positions, 7] + [1] * 6,
        }
    )
    row = causal_correlation(specialists, effects).row(0, named=True)
    rank = lambda x: np.argsort(np.argsort(x))  # noqa: E731 - no ties here
    expected_rho = np.corrcoef(rank(scores), rank(delta))[0, 1]
    assert row["n_specialists"] == 5
    assert row["spearman_rho"] == pytest.approx(expected_rho)
    assert row["top1_positions"] == sum(positions)
    assert row["top1_changed_share"] == sum(changed) / sum(positions)
    assert row["top1_mean_share"] == pytest.approx(np.mean(np.divide(changed, positions)))
    assert row["top1_n_changing"] == 3
    per = causal_specialists(specialists, effects)
    assert per["top1_positions"].to_list() == positions
    text = topics_summary(
        pl.DataFrame(), pl.DataFrame(), causal_correlation(specialists, effects), {}, per
    )
    assert "not measured" not in text
    assert f"at {sum(changed) / sum(positions):.1%} of its category's loss positions" in text
    assert "3 of 5 specialists change at least one prediction" in text
    assert "| res | 1 | a | 1 | 9 | 0.300 | 30.0% of 40 |" in text
    assert "| res | 1 | b | 2 | 7 | 0.100 | 0.0% of 25 |" in text

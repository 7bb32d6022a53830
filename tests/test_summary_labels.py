"""summary.md quotes the original study's GPT-2 numbers only, clearly labelled, for SAE families
that are the study's model and SAEs (issue 16, item 6)."""

from __future__ import annotations

import polars as pl

from sae_specialists.report.summary import STUDY_FINDINGS, build_summary, study_families


def tables(families=("res", "mine")):
    strongest, frequent, selective, specialists = [], [], [], []
    for sae in families:
        for layer in (6, 8):
            strongest.append({"sae": sae, "layer": layer, "rank": 1, "feature": 3, "peak": 9.0})
            frequent.append({"sae": sae, "layer": layer, "rank": 1, "feature": 4, "coverage": 0.5})
            selective.append(
                {"sae": sae, "layer": layer, "rank": 1, "feature": 5, "n_above": 2, "peak": 9.0}
            )
            for cat in ("math", "code"):
                specialists.append(
                    {
                        "sae": sae,
                        "layer": layer,
                        "category": cat,
                        "feature": 7,
                        "score": 2,
                        "has_specialist": True,
                    }
                )
    texts = pl.DataFrame({"text_id": ["a", "b"], "category": ["math", "code"]})
    return {
        "strongest": pl.DataFrame(strongest),
        "frequent": pl.DataFrame(frequent),
        "selective": pl.DataFrame(selective),
        "specialists": pl.DataFrame(specialists),
        "texts": texts,
    }


def summary(study: list[str]) -> str:
    settings = {
        "aggregation": "mean",
        "include_bos": False,
        "threshold": 5.0,
        "candidates": 5,
        "study_families": study,
    }
    return build_summary(**tables(), settings=settings).to_markdown()


def test_study_families_need_the_study_model_and_release():
    releases = {"res": "gpt2-small-res-jb", "att": "gpt2-small-attn-out-v5-32k", "mine": None}
    assert study_families("gpt2", releases) == ["res"]
    assert study_families("gpt2-small", releases) == ["res"]
    assert study_families("pythia-70m-deduped", releases) == []
    assert study_families(None, releases) == []  # a local model directory (the demo)


def test_no_study_numbers_unless_comparable():
    text = summary([])
    assert "≈13" not in text and "GPT-2" not in text and STUDY_FINDINGS not in text


def test_study_numbers_only_in_the_comparable_family_labelled():
    text = summary(["res"])
    assert text.count(STUDY_FINDINGS) == 1
    res_section = text[text.index("SAE family `res`") :]
    mine_section = text[text.index("SAE family `mine`") : text.index("SAE family `res`")]
    assert "Comparison with the original study" in res_section
    assert STUDY_FINDINGS not in mine_section
    intro = text[: text.index("SAE family")]
    assert "≈13" not in intro

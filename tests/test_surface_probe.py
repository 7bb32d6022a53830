"""The probe texts of the surface stage (resources/probe_texts): the sets the project ships are
what they claim to be, and the probe measures equal an independent computation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from sae_specialists.core.errors import UserError
from sae_specialists.surface.probe import (
    marker_hits,
    probe_files,
    probe_items,
    probe_table,
    write_probe_texts,
)

REPO = Path(__file__).resolve().parents[1]
PROBES = REPO / "resources" / "probe_texts"
STUDY = ("conversational", "formal", "math", "non_english", "python", "social", "urls")


def load(path: Path) -> list[str]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def markers(category: str) -> list[str]:
    return load(PROBES / category / "marker_strings.yaml")


@pytest.mark.parametrize("category", STUDY)
def test_every_study_category_has_both_sets(category):
    for name in ("meaning", "markers"):
        texts = load(PROBES / category / f"{name}.yaml")
        assert len(texts) >= 10 and len(set(texts)) == len(texts)
    assert markers(category)


@pytest.mark.parametrize("category", STUDY)
def test_meaning_texts_hold_none_of_the_markers(category):
    found = {
        text: marker_hits(text, markers(category))
        for text in load(PROBES / category / "meaning.yaml")
    }
    assert {t: m for t, m in found.items() if m} == {}


@pytest.mark.parametrize("category", STUDY)
def test_marker_texts_hold_a_marker(category):
    texts = load(PROBES / category / "markers.yaml")
    assert [t for t in texts if not marker_hits(t, markers(category))] == []


def test_neutral_texts_hold_no_category_marker():
    every = [m for c in STUDY for m in markers(c)]
    texts = load(PROBES / "neutral.yaml")
    assert len(texts) >= 10
    assert {t: marker_hits(t, every) for t in texts if marker_hits(t, every)} == {}


def test_marker_hits_words_whole_symbols_anywhere():
    assert marker_hits("They left", ["hey"]) == []
    assert marker_hits("hey, you", ["hey"]) == ["hey"]
    assert marker_hits("the limit", ["lim"]) == []
    assert marker_hits("a+b", ["+", "a"]) == ["+", "a"]
    assert marker_hits("ok then", ["ok "]) == ["ok "]


def test_probe_files_errors(tmp_path):
    with pytest.raises(UserError, match="neutral.yaml"):
        probe_files(tmp_path, ["python"])
    (tmp_path / "neutral.yaml").write_text("- a text\n")
    (tmp_path / "python").mkdir()
    (tmp_path / "python" / "meaning.yaml").write_text("- a text\n")
    with pytest.raises(UserError, match="markers.yaml"):
        probe_files(tmp_path, ["python"])
    (tmp_path / "python" / "markers.yaml").write_text("- a ): text\n")
    files = probe_files(tmp_path, ["python", "math"])  # math: no directory, no sets
    assert sorted(files) == ["neutral", "python"]


def test_probe_file_ids_and_measures(tmp_path):
    """The one probe file's ids are the extraction's; counts and AUROCs equal sklearn's on
    hand-made values."""
    from sae_specialists.extraction.texts import load_yaml_category

    files = probe_files(PROBES, ["math", "python"])
    index = write_probe_texts(files, str(tmp_path / "probe.yaml"), str(tmp_path / "index.parquet"))
    items = probe_items(files)
    assert index.height == len(items) and index["text_id"].n_unique() == index.height
    ids = [t.text_id for t in load_yaml_category(tmp_path / "probe.yaml", "probe")]
    assert index["text_id"].to_list() == ids
    # a feature at 9.0 on every math marker text, 6.0 on the first math meaning text, 1.0 on
    # every neutral text
    values = {}
    for tid, cat, name, item in index.select("text_id", "category", "set", "item").iter_rows():
        if cat == "math" and name == "markers":
            values[tid] = 9.0
        elif cat == "math" and name == "meaning" and item == 0:
            values[tid] = 6.0
        elif name == "neutral":
            values[tid] = 1.0
    per_text = pl.DataFrame(
        {
            "sae": ["res"] * len(values),
            "layer": [2] * len(values),
            "text_id": list(values),
            "feature": [7] * len(values),
            "value": list(values.values()),
        }
    )
    spec = pl.DataFrame(
        {"sae": ["res", "res"], "layer": [2, 2], "category": ["math", "recipes"], "feature": [7, 8]}
    )
    table = probe_table(spec, per_text, index, threshold=5.0)
    assert table.height == 1  # recipes: no probe sets
    row = table.row(0, named=True)
    sets = index.with_columns(pl.col("text_id").replace_strict(values, default=0.0).alias("v"))
    meaning = sets.filter((pl.col("category") == "math") & (pl.col("set") == "meaning"))["v"]
    marks = sets.filter((pl.col("category") == "math") & (pl.col("set") == "markers"))["v"]
    neutral = sets.filter(pl.col("set") == "neutral")["v"]
    assert (row["meaning_n"], row["meaning_fired"]) == (meaning.len(), 1)
    assert (row["markers_n"], row["markers_fired"]) == (marks.len(), marks.len())
    assert (row["neutral_n"], row["neutral_fired"]) == (neutral.len(), 0)

    def auroc(pos, neg):
        y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
        return roc_auc_score(y, np.r_[pos.to_numpy(), neg.to_numpy()])

    assert row["meaning_auroc"] == pytest.approx(auroc(meaning, neutral))
    assert row["markers_auroc"] == pytest.approx(1.0)
    assert row["markers_examples"].startswith("9.00: ")

"""Categories drawn from datasets (extraction/datasets.py), offline: local datasets saved with
``save_to_disk`` and as Parquet files read through ``load_dataset("parquet", data_files=...)``."""

from __future__ import annotations

import hashlib

import polars as pl
import pytest

from sae_specialists.core.errors import ConfigError, HubUnreachableError, TextsError
from sae_specialists.core.settings import _texts, validated
from sae_specialists.extraction.datasets import (
    check_dataset_spec,
    materialise,
    read_provenance,
)

N_ROWS = 120


def _rows() -> dict[str, list]:
    """Rows whose language is known from the index: 'py' unless i % 3 == 0 ('js')."""
    return {
        "content": [f"text {i}: " + "x" * (i % 9) for i in range(N_ROWS)],
        "lang": ["js" if i % 3 == 0 else "py" for i in range(N_ROWS)],
        "number": list(range(N_ROWS)),
    }


@pytest.fixture(scope="module")
def local_data(tmp_path_factory):
    """The same rows as a save_to_disk directory and as a Parquet file."""
    import datasets

    root = tmp_path_factory.mktemp("datasets")
    ds = datasets.Dataset.from_dict(_rows())
    ds.save_to_disk(str(root / "saved"))
    ds.to_parquet(str(root / "rows.parquet"))
    return root


@pytest.fixture(autouse=True)
def _private_hf_cache(tmp_path, monkeypatch):
    """load_dataset's Arrow cache in the test's directory, never the user's."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_cache")


def spec_of(source: dict):
    """A DatasetSpec as the workflow builds it: schema defaults filled, then settings."""
    from sae_specialists.core.settings import schema_path

    config = {
        "model": {"name": "gpt2-small"},
        "saes": {"res": {"release": "r", "id": "blocks.{layer}"}},
        "layers": [0],
        "texts": {"cat": source},
    }
    return _texts(validated(config, schema_path())["texts"])["cat"]


def _source(local_data, kind: str, **spec) -> dict:
    if kind == "saved":
        return {"dataset": str(local_data / "saved"), **spec}
    return {"dataset": "parquet", "data_files": str(local_data / "rows.parquet"), **spec}


def _draw(local_data, tmp_path, kind: str, name: str, **spec) -> list[str]:
    out = tmp_path / f"{name}.parquet"
    materialise("cat", spec_of(_source(local_data, kind, **spec)), str(out), "text")
    return pl.read_parquet(out)["text"].to_list()


@pytest.mark.parametrize("kind", ["saved", "parquet"])
def test_same_seed_same_sample_other_seed_other(local_data, tmp_path, kind):
    spec = {"field": "content", "filter": {"lang": "py"}, "n": 15}
    first = _draw(local_data, tmp_path, kind, "a", seed=3, **spec)
    again = _draw(local_data, tmp_path, kind, "b", seed=3, **spec)
    other = _draw(local_data, tmp_path, kind, "c", seed=4, **spec)
    assert first == again
    assert set(first) != set(other)
    # the filter, independently: row i is 'py' unless i % 3 == 0; every text is distinct
    py_texts = {
        t for t, lang in zip(_rows()["content"], _rows()["lang"], strict=True) if lang == "py"
    }
    assert len(first) == len(set(first)) == 15 and set(first) <= py_texts
    # a larger n with the same seed keeps the smaller sample as its first texts
    larger = _draw(local_data, tmp_path, kind, "d", seed=3, **{**spec, "n": 30})
    assert larger[:15] == first


def test_saved_and_parquet_forms_draw_the_same_sample(local_data, tmp_path):
    spec = {"field": "content", "filter": {"lang": "js"}, "n": 8, "seed": 11}
    assert _draw(local_data, tmp_path, "saved", "a", **spec) == _draw(
        local_data, tmp_path, "parquet", "b", **spec
    )


def test_char_limits_and_streaming(local_data, tmp_path):
    """min/max chars filter the texts; a streamed read (seeded shuffle buffer) is reproducible
    and obeys the same filters."""
    spec = {"field": "content", "n": 10, "min_chars": 12, "max_chars": 14, "streaming": True}
    first = _draw(local_data, tmp_path, "parquet", "a", **spec)
    assert first == _draw(local_data, tmp_path, "parquet", "b", **spec)
    assert all(12 <= len(t) <= 14 for t in first) and len(set(first)) == 10


def test_filter_on_a_list_of_values(local_data, tmp_path):
    spec = {"field": "content", "filter": {"number": [0, 3, 7, 8]}, "n": 4}
    texts = _draw(local_data, tmp_path, "parquet", "a", **spec)
    assert sorted(texts) == sorted(_rows()["content"][i] for i in (0, 3, 7, 8))


def test_materialised_file_carries_provenance(local_data, tmp_path):
    out = tmp_path / "cat.parquet"
    spec = spec_of(_source(local_data, "saved", field="content", filter={"lang": "py"}, n=6))
    materialise("cat", spec, str(out), "body")
    texts = pl.read_parquet(out)["body"].to_list()
    record = read_provenance(out)
    assert record["dataset"] == str(local_data / "saved")
    assert (record["split"], record["field"], record["n"], record["seed"]) == (
        "train",
        "content",
        6,
        0,
    )
    assert record["filter"] == {"lang": "py"} and record["name"] is None
    assert record["rows_seen"] == N_ROWS and record["rows_passing"] == N_ROWS - N_ROWS // 3
    assert record["fingerprint"] and record["materialised_at"].startswith("20")
    digest = hashlib.sha256()
    for text in texts:
        digest.update(hashlib.sha256(text.encode()).digest())
    assert record["texts_sha256"] == digest.hexdigest()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"field": "body", "n": 5}, "has no column 'body'"),
        ({"field": "content", "filter": {"language": "py"}, "n": 5}, "has no column 'language'"),
        ({"field": "number", "n": 5}, "column 'number' holds int64, not strings"),
        (
            {"field": "content", "filter": {"lang": "js"}, "n": 50},
            f"only {N_ROWS // 3} of {N_ROWS} rows pass the filters (lang == 'js'",
        ),
    ],
)
@pytest.mark.parametrize("kind", ["saved", "parquet"])
def test_bad_specs_fail_with_one_message(local_data, tmp_path, kind, spec, message):
    out = tmp_path / "cat.parquet"
    with pytest.raises(TextsError) as err:
        materialise("cat", spec_of(_source(local_data, kind, **spec)), str(out), "text")
    assert message in str(err.value) and "texts.cat" in str(err.value)
    assert not out.exists()


def test_hub_unreachable_without_a_materialised_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    out = tmp_path / "cat.parquet"
    with pytest.raises(HubUnreachableError) as err:
        materialise("cat", spec_of({"dataset": "nobody/no-such-set-25", "n": 3}), str(out), "text")
    message = str(err.value)
    assert "hub cannot be reached" in message and str(out) in message and "texts.cat" in message
    assert not out.exists()


def test_spec_checks_need_no_network(tmp_path):
    """The startup check of a spec is offline: a hub id passes unread, a missing local path or
    data file and impossible character limits fail with the key named."""
    check_dataset_spec("code", spec_of({"dataset": "owner/some-set", "n": 5}))
    with pytest.raises(TextsError, match="texts.code: dataset './missing'"):
        check_dataset_spec("code", spec_of({"dataset": "./missing", "n": 5}))
    with pytest.raises(TextsError, match="data_files .* matches no file"):
        check_dataset_spec(
            "code", spec_of({"dataset": "json", "data_files": str(tmp_path / "x.jsonl"), "n": 5})
        )
    with pytest.raises(ConfigError, match="max_chars \\(5\\) is below min_chars \\(10\\)"):
        check_dataset_spec(
            "code", spec_of({"dataset": "a/b", "n": 5, "min_chars": 10, "max_chars": 5})
        )


def test_learning_curve_demo_and_rerunning_one_dataset_category(demo_assets, tmp_path):
    """THE Snakemake run of this file (demo model, one layer): config/examples/
    datasets-learning-curve-demo.yaml, three categories drawn from a local JSON dataset.

    - the learning curve finds the planted outcomes: python passes from 5 texts; weak (the math
      feature counted on 30% of its texts) fails at 5 and passes from 20 (one rung either way
      allowed); none is not reached;
    - the materialised files carry their provenance (also in datasets/provenance.md);
    - the same spec reruns nothing (no network); another n for one category re-materialises
      and re-extracts that category only."""
    import yaml
    from conftest import REPO, run_snakemake, scheduled_jobs

    example = REPO / "config/examples/datasets-learning-curve-demo.yaml"
    config = yaml.safe_load(example.read_text())
    data = str(REPO / "resources/learning_curve_demo/texts.jsonl")
    for source in config["texts"].values():
        source["data_files"] = data
    results = tmp_path / "results"
    config.update(
        model={"path": str(demo_assets / "model")},
        saes={"res": {"path": str(demo_assets / "saes/res/layer{layer}")}},
        results_dir=str(results),
    )
    config.pop("demo")
    work = tmp_path / "work"
    targets = [str(results / "validation/learning_curve/cells.parquet")]
    targets.append(str(results / "datasets/provenance.md"))
    run_snakemake(work, "--cores", "2", *targets, config=config)

    cells = {r["category"]: r for r in pl.read_parquet(targets[0]).to_dicts()}
    assert cells["python"]["n_needed"] == 5
    assert cells["weak"]["n_needed"] in (10, 20, 40) and cells["weak"]["n_first_pass"] > 5
    assert cells["none"]["n_needed"] is None and not cells["none"]["reached"]
    record = read_provenance(results / "datasets/weak.parquet")
    assert (record["n"], record["filter"], record["data_files"]) == (40, {"category": "weak"}, data)
    assert record["rows_seen"] == 120 and record["rows_passing"] == 40
    page = (results / "datasets/provenance.md").read_text()
    assert f"| weak | json ({data}) |" in page and record["texts_sha256"][:16] in page

    assert scheduled_jobs(run_snakemake(work, "-n", *targets, config=config)) == {}
    changed = {**config, "texts": {**config["texts"]}}
    changed["texts"]["none"] = {**config["texts"]["none"], "n": 39}
    dry = run_snakemake(work, "-n", *targets, config=changed)
    jobs = scheduled_jobs(dry)
    assert jobs["materialise_dataset"] == 1 and jobs["extract_category"] == 1
    assert "category=none, chunk=" in dry.stdout and "category=weak, chunk=" not in dry.stdout

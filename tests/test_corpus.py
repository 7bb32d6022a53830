"""Large-corpus category files (JSONL, Parquet, plain text): streaming readers, stable ids,
counting for the DAG, chunk slicing, and clear errors."""

from __future__ import annotations

import json
import os
from itertools import islice
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from sae_specialists.core.errors import TextsError
from sae_specialists.extraction.corpus import (
    CorpusOptions,
    chunk_bounds,
    chunk_counts,
    count_texts,
    iter_texts,
    load_category,
    load_texts,
    n_chunks,
)
from sae_specialists.extraction.texts import list_categories, text_id

TEXTS = [
    "def f(x):\n    return x",
    "lol 🔥 #wow",
    "def f(x):\n    return x",
    "Hereby agreed.",
    "naïve café",
    "lol 🔥 #wow",
    "lol 🔥 #wow",
]


def write_jsonl(path: Path, texts, field="text", blank_lines=True) -> Path:
    lines = []
    for i, t in enumerate(texts):
        lines.append(json.dumps({"id": i, field: t}, ensure_ascii=False))
        if blank_lines and i == 1:
            lines.append("   ")  # blank lines are skipped
    path.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    return path


def write_parquet(path: Path, texts, column="text", row_group_size=2) -> Path:
    table = pa.table({"n": list(range(len(texts))), column: texts})
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def expected_ids(category, texts):
    seen, out = {}, []
    for t in texts:
        base = text_id(category, t)
        seen[base] = seen.get(base, 0) + 1
        out.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return out


def test_jsonl_texts_and_ids_match_the_yaml_scheme(tmp_path):
    path = write_jsonl(tmp_path / "mixed.jsonl", TEXTS)
    yaml_path = tmp_path / "mixed.yaml"
    yaml_path.write_text(yaml.safe_dump(TEXTS, allow_unicode=True), encoding="utf-8")
    got = load_category(path)  # dispatch by suffix
    assert [t.text for t in got] == TEXTS
    assert [t.text_id for t in got] == expected_ids("mixed", TEXTS)
    assert [t.text_id for t in got] == [t.text_id for t in load_category(yaml_path)]
    assert {t.category for t in got} == {"mixed"}
    assert count_texts(path) == len(TEXTS)


def test_jsonl_custom_field(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", TEXTS[:3], field="body")
    opts = CorpusOptions(text_field="body")
    assert [t.text for t in load_texts(path, "c", opts)] == TEXTS[:3]
    with pytest.raises(TextsError, match=r"line 1 has no key 'text'.*text_field"):
        load_texts(path, "c")


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"text": "ok"', r"line 2 is not valid JSON"),
        ('["a list"]', r"line 2: expected a JSON object"),
        ('{"text": 3}', r"line 2: field 'text' must be a string"),
        ('{"text": "   "}', r"line 2: field 'text' is empty"),
        ('{"text": null}', r"line 2: field 'text' is missing or null"),
    ],
)
def test_jsonl_errors_name_the_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "fine"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(TextsError, match=message):
        load_texts(path)


def test_jsonl_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"text": "fine"}\n{"text": "caf\xe9"}\n')
    with pytest.raises(TextsError, match=r"not valid UTF-8 \(line 2"):
        load_texts(path)


def test_readers_stream(tmp_path):
    """The first texts come out before a broken line far below is read."""
    path = tmp_path / "big.jsonl"
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(5000):
            handle.write(json.dumps({"text": f"text number {i}"}) + "\n")
        handle.write("not json\n")
    first = list(islice(iter_texts(path, "big"), 3))
    assert [t.text for t in first] == ["text number 0", "text number 1", "text number 2"]
    with pytest.raises(TextsError, match="line 5001"):
        list(iter_texts(path, "big"))


def test_parquet_column_rows_and_errors(tmp_path):
    path = write_parquet(tmp_path / "p.parquet", TEXTS)
    got = load_category(path)
    assert [t.text for t in got] == TEXTS
    assert [t.text_id for t in got] == expected_ids("p", TEXTS)
    assert count_texts(path) == len(TEXTS)
    other = write_parquet(tmp_path / "q.parquet", TEXTS[:2], column="content")
    assert [
        t.text for t in load_texts(other, options=CorpusOptions(text_field="content"))
    ] == TEXTS[:2]
    with pytest.raises(TextsError, match=r"no column 'text'.*text_field"):
        load_texts(other)
    nulls = write_parquet(tmp_path / "n.parquet", ["a", None, "c"])
    with pytest.raises(TextsError, match=r"row 2: field 'text' is missing or null"):
        load_texts(nulls)
    ints = tmp_path / "i.parquet"
    pq.write_table(pa.table({"text": [1, 2]}), ints)
    with pytest.raises(TextsError, match="must hold strings"):
        load_texts(ints)


def test_plain_text_lines_and_blank_line_blocks(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("first text\n\nsecond  text\r\n  \nthird\nstill third\n\n\n", encoding="utf-8")
    lines = load_texts(path, "t")
    assert [t.text for t in lines] == ["first text", "second  text", "third", "still third"]
    assert count_texts(path) == 4
    opts = CorpusOptions(text_split="blank_lines")
    blocks = load_texts(path, "t", opts)
    assert [t.text for t in blocks] == ["first text", "second  text", "third\nstill third"]
    assert count_texts(path, opts) == 3
    with pytest.raises(TextsError, match="text_split"):
        CorpusOptions(text_split="paragraphs")


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet", ".txt", ".yaml"])
@pytest.mark.parametrize("chunk_size", [1, 2, 3, 5, 100])
def test_chunks_partition_the_file_with_the_same_ids(tmp_path, suffix, chunk_size):
    path = tmp_path / f"cat{suffix}"
    if suffix == ".jsonl":
        write_jsonl(path, TEXTS)
    elif suffix == ".parquet":
        write_parquet(path, TEXTS)
    elif suffix == ".txt":
        path.write_text("\n".join(t.replace("\n", " ") for t in TEXTS) + "\n", encoding="utf-8")
    else:
        path.write_text(yaml.safe_dump(TEXTS, allow_unicode=True), encoding="utf-8")
    whole = list(iter_texts(path, "cat"))
    n = n_chunks(count_texts(path), chunk_size)
    assert n == -(-len(TEXTS) // chunk_size)
    parts = []
    for k in range(n):
        start, stop = chunk_bounds(k, chunk_size)
        part = list(iter_texts(path, "cat", start=start, stop=stop))
        assert 0 < len(part) <= chunk_size
        parts += part
    assert parts == whole  # same texts, same ids (duplicates across chunk borders included)
    assert len({t.text_id for t in whole}) == len(whole)


def test_chunk_counts_and_bounds(tmp_path):
    assert n_chunks(10, 3) == 4 and n_chunks(9, 3) == 3 and n_chunks(10, None) == 1
    assert chunk_bounds(2, 3) == (6, 9) and chunk_bounds(0, None) == (0, None)
    with pytest.raises(ValueError):
        chunk_bounds(1, None)
    write_jsonl(tmp_path / "a.jsonl", TEXTS)
    (tmp_path / "b.txt").write_text("one\ntwo\n", encoding="utf-8")
    cats = list_categories(tmp_path)
    assert sorted(cats) == ["a", "b"]
    assert chunk_counts(cats, 2) == {"a": 4, "b": 1}
    (tmp_path / "c.txt").write_text("\n \n", encoding="utf-8")
    with pytest.raises(TextsError, match="holds no texts"):
        chunk_counts(list_categories(tmp_path), 2)


def test_list_categories_accepts_corpus_suffixes(tmp_path):
    write_jsonl(tmp_path / "social.jsonl", TEXTS[:2])
    write_parquet(tmp_path / "python.parquet", TEXTS[:2])
    (tmp_path / "formal.txt").write_text("a\n", encoding="utf-8")
    (tmp_path / "math.yaml").write_text("- x + y\n", encoding="utf-8")
    (tmp_path / "notes.md").write_text("ignored\n", encoding="utf-8")
    assert list(list_categories(tmp_path)) == ["formal", "math", "python", "social"]
    (tmp_path / "social.txt").write_text("a\n", encoding="utf-8")
    with pytest.raises(TextsError, match="defined twice"):
        list_categories(tmp_path)


def test_yaml_category_is_parsed_once_per_version_of_the_file(tmp_path):
    """The Snakefile reads each YAML category twice; the second read is cached, and an edit of
    the file (new size, or the same size with a new mtime) is seen at once."""
    path = tmp_path / "python.yaml"
    path.write_text(yaml.safe_dump(["a = 1", "b = 2"]))
    first = load_category(path)
    first.append("the caller's copy")  # callers get their own list
    assert [t.text for t in load_category(path)] == ["a = 1", "b = 2"]
    path.write_text(yaml.safe_dump(["a = 1", "b = 2", "c = 3"]))
    assert [t.text for t in load_category(path)] == ["a = 1", "b = 2", "c = 3"]
    stat = path.stat()
    path.write_text(yaml.safe_dump(["x = 1", "y = 2", "z = 3"]))  # same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert [t.text for t in load_category(path)] == ["x = 1", "y = 2", "z = 3"]

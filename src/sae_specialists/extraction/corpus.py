"""Category files of any size: YAML lists, JSONL, Parquet and plain text, read as streams.

A category is one file ``<texts>/<category>.<ext>``; the extension picks the reader:

- ``.yaml`` / ``.yml``: a YAML list of strings (read whole; fine up to a few thousand texts);
- ``.jsonl``: one JSON object per line, the text under the key ``extraction.text_field``
  (default ``text``); blank lines are skipped;
- ``.parquet``: the string column ``extraction.text_field`` (default ``text``), one row per text,
  read in record batches;
- ``.txt``: ``extraction.text_split: lines`` (default) makes every non-blank line a text;
  ``blank_lines`` makes every block of lines separated by one or more blank lines a text (its
  lines joined with ``\\n``, so a text may span several lines). Lines lose their line ending only.

Every text gets the same stable id as a YAML text (``texts.text_id``):
``<category>-<first 10 hex digits of sha256(text)>``, with ``-2``, ``-3``... for the 2nd, 3rd
occurrence of the same text in file order. Ids do not depend on chunking: the reader of a chunk
counts earlier occurrences of the chunk's texts in the part of the file before the chunk.

A text that is missing, not a string, empty or whitespace only is an error naming the file and
line/row (as for YAML). Counting the texts of a file (``count_texts``, used when Snakemake builds
its DAG to know the number of extraction chunks) reads Parquet metadata only, and scans JSONL and
text files once without decoding JSON.

This module never imports torch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from ..core.errors import TextsError
from .texts import Text, checked_text, load_yaml_category, text_id

YAML_SUFFIXES = (".yaml", ".yml")
CORPUS_SUFFIXES = (".jsonl", ".parquet", ".txt")
TEXT_SPLITS = ("lines", "blank_lines")
PARQUET_BATCH_ROWS = 4096


@dataclass(frozen=True)
class CorpusOptions:
    """How large category files are read (config: ``extraction.text_field``/``text_split``)."""

    text_field: str = "text"
    text_split: str = "lines"

    def __post_init__(self):
        if self.text_split not in TEXT_SPLITS:
            raise TextsError(
                f"config: extraction.text_split is {self.text_split!r}; use one of {TEXT_SPLITS}."
            )


def _fmt(path: Path) -> str:
    return str(path)


BOM = b"\xef\xbb\xbf"


def _lines(handle) -> Iterator[bytes]:
    """The lines of a file opened in binary mode; a UTF-8 byte order mark opening the file is
    dropped (it marks the encoding, it is not text), so every reader and the counting agree."""
    first = True
    for raw in handle:
        if first and raw.startswith(BOM):
            raw = raw[len(BOM) :]
        first = False
        yield raw


_ASCII_BLANK = b" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"  # what str.strip() removes, in ASCII


def _blank(raw: bytes) -> bool:
    """Whether a line holds no text: exactly when its decoded text is empty after ``strip()``
    (what the readers test), so the count matches them; only non-ASCII lines are decoded."""
    if raw.isascii():
        return not raw.strip(_ASCII_BLANK)
    return not raw.decode("utf-8", errors="replace").strip()


def _decode(path: Path, raw: bytes, lineno: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise TextsError(
            f"texts: {_fmt(path)} is not valid UTF-8 (line {lineno}, byte {err.start} of the "
            "line). Re-save the file as UTF-8."
        ) from None


# -- raw readers: yield the texts of a file in order, validated ------------------------------


def _iter_jsonl(path: Path, options: CorpusOptions) -> Iterator[str]:
    field = options.text_field
    with open(path, "rb") as handle:
        for lineno, raw in enumerate(_lines(handle), 1):
            if _blank(raw):
                continue
            line = _decode(path, raw, lineno)
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise TextsError(
                    f"texts: {_fmt(path)}, line {lineno} is not valid JSON ({err.msg}). Each "
                    f'line must be one JSON object such as {{"{field}": "..."}}.'
                ) from None
            if not isinstance(obj, dict):
                raise TextsError(
                    f"texts: {_fmt(path)}, line {lineno}: expected a JSON object with the key "
                    f"{field!r}, found {type(obj).__name__}."
                )
            if field not in obj:
                raise TextsError(
                    f"texts: {_fmt(path)}, line {lineno} has no key {field!r} (keys: "
                    f"{sorted(obj)[:8]}). Set extraction.text_field to the key holding the text."
                )
            yield checked_text(path, f"line {lineno}", obj[field], field)


def _parquet_file(path: Path, field: str):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pfile = pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as err:
        raise TextsError(f"texts: {_fmt(path)} is not a readable Parquet file ({err}).") from None
    schema = pfile.schema_arrow
    if field not in schema.names:
        raise TextsError(
            f"texts: {_fmt(path)} has no column {field!r} (columns: {schema.names[:12]}). Set "
            "extraction.text_field to the column holding the text."
        )
    kind = schema.field(field).type
    if not (
        pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)
    ):
        raise TextsError(
            f"texts: {_fmt(path)}: column {field!r} has type {kind}; it must hold strings."
        )
    return pfile


def _iter_parquet(path: Path, options: CorpusOptions) -> Iterator[str]:
    field = options.text_field
    pfile = _parquet_file(path, field)
    row = 0
    for batch in pfile.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=[field]):
        try:
            values = batch.column(0).to_pylist()
        except UnicodeDecodeError:
            raise TextsError(
                f"texts: {_fmt(path)}: column {field!r} holds bytes that are not valid UTF-8 "
                f"(rows {row + 1} to {row + batch.num_rows}). Rewrite the column as UTF-8 text."
            ) from None
        for value in values:
            row += 1
            yield checked_text(path, f"row {row}", value, field)


def _iter_txt_lines(path: Path) -> Iterator[tuple[int, str]]:
    with open(path, "rb") as handle:
        for lineno, raw in enumerate(_lines(handle), 1):
            yield lineno, _decode(path, raw, lineno).rstrip("\r\n")


def _iter_txt(path: Path, options: CorpusOptions) -> Iterator[str]:
    if options.text_split == "lines":
        for _, line in _iter_txt_lines(path):
            if line.strip():
                yield line
        return
    block: list[str] = []
    for _, line in _iter_txt_lines(path):
        if line.strip():
            block.append(line)
        elif block:
            yield "\n".join(block)
            block = []
    if block:
        yield "\n".join(block)


def _iter_yaml(path: Path, category: str) -> Iterator[str]:
    for text in load_yaml_category(path, category):
        yield text.text


def iter_raw_texts(
    path: str | Path, options: CorpusOptions | None = None, category: str | None = None
) -> Iterator[str]:
    """The texts of a category file, in file order, validated (no ids)."""
    path = Path(path)
    options = options or CorpusOptions()
    suffix = path.suffix.lower()
    if suffix in YAML_SUFFIXES:
        return _iter_yaml(path, category or path.stem)
    if suffix == ".jsonl":
        return _iter_jsonl(path, options)
    if suffix == ".parquet":
        return _iter_parquet(path, options)
    if suffix == ".txt":
        return _iter_txt(path, options)
    raise TextsError(
        f"texts: {_fmt(path)}: unknown category file type {path.suffix!r}; use one of "
        f"{YAML_SUFFIXES + CORPUS_SUFFIXES}."
    )


# -- counting (DAG build time) ----------------------------------------------------------------


def count_texts(path: str | Path, options: CorpusOptions | None = None) -> int:
    """Number of texts in a category file, cheaply (Parquet: metadata; JSONL/txt: one scan).

    Matches what the readers yield for a valid file (an invalid one fails in its extraction job,
    or here for YAML).
    """
    path = Path(path)
    options = options or CorpusOptions()
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return _parquet_file(path, options.text_field).metadata.num_rows
    if suffix == ".jsonl" or (suffix == ".txt" and options.text_split == "lines"):
        with open(path, "rb") as handle:
            return sum(1 for raw in _lines(handle) if not _blank(raw))
    if suffix == ".txt":
        n, in_block = 0, False
        with open(path, "rb") as handle:
            for raw in _lines(handle):
                blank = _blank(raw)
                if not blank and not in_block:
                    n += 1
                in_block = not blank
        return n
    return sum(1 for _ in iter_raw_texts(path, options))


def scan_texts(
    path: str | Path, options: CorpusOptions | None = None, stop: int | None = None
) -> int:
    """Read the first ``stop`` texts (all by default) of a category file as its extraction job
    will, validating every one (decodable UTF-8, valid JSON lines, strings, no lone surrogate):
    the start check of the workflow (startup.py). A stream: memory is one line (JSONL, .txt) or
    one record batch (Parquet), never the file. Returns the number of texts read."""
    return sum(1 for _ in islice(iter_raw_texts(path, options), stop))


# -- chunks and ids -----------------------------------------------------------------------------


def n_chunks(n_texts: int, chunk_size: int | None) -> int:
    """Number of extraction chunks of a category (at least one)."""
    if not chunk_size or n_texts <= 0:
        return 1
    return max(1, math.ceil(n_texts / chunk_size))


def chunk_counts(
    categories: dict[str, Path], chunk_size: int | None, options: CorpusOptions | None = None
) -> dict[str, int]:
    """Number of extraction chunks per category; an empty category file is an error."""
    counts = {}
    for category, path in categories.items():
        n = count_texts(path, options)
        if n == 0:
            raise TextsError(f"texts: {path} holds no texts. Add texts or remove the file.")
        counts[category] = n_chunks(n, chunk_size)
    return counts


def chunk_bounds(chunk: int, chunk_size: int | None) -> tuple[int, int | None]:
    """[start, stop) text indices of a chunk (stop None: to the end)."""
    if not chunk_size:
        if chunk != 0:
            raise ValueError(f"chunk {chunk} requested but chunking is off (chunk_size null)")
        return 0, None
    return chunk * chunk_size, (chunk + 1) * chunk_size


def iter_texts(
    path: str | Path,
    category: str | None = None,
    options: CorpusOptions | None = None,
    start: int = 0,
    stop: int | None = None,
) -> Iterator[Text]:
    """Texts ``start`` to ``stop`` (exclusive) of a category file, with their stable ids.

    Memory is bounded by the chunk, never the file: when ``start`` > 0 the file is read three
    times (the chunk's ids, their earlier occurrences, the chunk again); only the chunk's id set
    is held.
    """
    path = Path(path)
    category = category or path.stem
    options = options or CorpusOptions()
    if path.suffix.lower() in YAML_SUFFIXES:
        yield from load_yaml_category(path, category)[start:stop]
        return
    seen: dict[str, int] = {}
    if start > 0:
        wanted = {
            text_id(category, t)
            for t in islice(iter_raw_texts(path, options, category), start, stop)
        }
        for t in islice(iter_raw_texts(path, options, category), start):
            base = text_id(category, t)
            if base in wanted:
                seen[base] = seen.get(base, 0) + 1
    for t in islice(iter_raw_texts(path, options, category), start, stop):
        base = text_id(category, t)
        seen[base] = seen.get(base, 0) + 1
        yield Text(base if seen[base] == 1 else f"{base}-{seen[base]}", category, t)


def load_texts(
    path: str | Path, category: str | None = None, options: CorpusOptions | None = None
) -> list[Text]:
    """Every text of a category file with its id (non-YAML files; any format: load_category)."""
    texts = list(iter_texts(path, category, options))
    if not texts:
        raise TextsError(f"texts: {_fmt(Path(path))} holds no texts. Add texts or remove the file.")
    return texts


def load_category(
    path: str | Path, category: str | None = None, options: CorpusOptions | None = None
) -> list[Text]:
    """Every text of a category file of any format (the suffix picks the reader), with its id."""
    path = Path(path)
    if path.suffix.lower() in YAML_SUFFIXES:
        return load_yaml_category(path, category)
    return load_texts(path, category, options)

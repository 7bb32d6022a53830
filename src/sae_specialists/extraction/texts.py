"""Text categories: `<texts>/<category>.yaml`, each a YAML list of strings (or a large
`.jsonl` / `.parquet` / `.txt` corpus, read by ``corpus``).

The category is the file stem, so adding a file adds a category. Every text gets a `text_id`
that is unique across categories and stable under edits of *other* texts:
``<category>-<first 10 hex digits of sha256(text)>`` (a repeated text gets ``-2``, ``-3``...).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from ..core.errors import TextsError
from ..core.safeyaml import load_yaml, short_repr

CATEGORY_FILE_SUFFIXES = (".yaml", ".yml", ".jsonl", ".parquet", ".txt")  # corpus.py: formats
SAFE_CATEGORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # a str holding one cannot be encoded as UTF-8


@dataclass(frozen=True)
class Text:
    text_id: str
    category: str
    text: str


def list_categories(texts_dir: str | Path) -> dict[str, Path]:
    """Map each category name to its file, sorted by name."""
    texts_dir = Path(texts_dir)
    if not texts_dir.is_dir():
        raise TextsError(
            f"texts: directory {str(texts_dir)!r} does not exist. Set `texts:` in the config to a "
            "directory holding one <category>.yaml file per category (see resources/texts/)."
        )
    files = sorted(p for p in texts_dir.iterdir() if p.suffix in CATEGORY_FILE_SUFFIXES)
    for path in files:
        _check_is_file(path)
    if not files:
        raise TextsError(
            f"texts: no category files (*.yaml, *.jsonl, *.parquet, *.txt) in "
            f"{str(texts_dir)!r}. Add one file per category, e.g. python.yaml (a YAML list)."
        )
    categories: dict[str, Path] = {}
    folded: dict[str, Path] = {}
    for path in files:
        if not SAFE_CATEGORY.match(path.stem):
            raise TextsError(
                f"texts: category file {str(path)!r}: the name {path.stem!r} is not a safe path "
                "component (letters, digits, '_' and '-', not starting with '_' or '-'). Rename it."
            )
        if path.stem in categories:
            raise TextsError(
                f"texts: category {path.stem!r} is defined twice ({categories[path.stem]} and "
                f"{path}). Keep one file per category."
            )
        other = folded.get(path.stem.casefold())
        if other is not None:
            raise TextsError(
                f"texts: categories {other.stem!r} ({other}) and {path.stem!r} ({path}) differ "
                "only in letter case: on a case-insensitive file system (macOS, Windows) their "
                "result files are the same files. Rename one, or merge them into one category."
            )
        folded[path.stem.casefold()] = path
        categories[path.stem] = path
    return categories


def _check_is_file(path: Path) -> None:
    if path.is_symlink() and not path.exists():
        raise TextsError(
            f"texts: {path} is a broken symbolic link (to {str(path.readlink())!r}). Point it at "
            "a category file or remove it."
        )
    if not path.is_file():
        kind = "a directory" if path.is_dir() else "not a regular file"
        raise TextsError(
            f"texts: {path} is {kind}, not a category file. Remove or rename it (only "
            f"{', '.join('*' + s for s in CATEGORY_FILE_SUFFIXES)} files are categories)."
        )


def ignored_files(texts_dir: str | Path) -> list[Path]:
    """Files in the texts directory that are not category files (hidden files aside): they are
    not read, and the startup checks warn about them."""
    texts_dir = Path(texts_dir)
    return sorted(
        p
        for p in texts_dir.iterdir()
        if p.suffix not in CATEGORY_FILE_SUFFIXES and not p.name.startswith(".")
    )


def checked_text(path: Path, where: str, value, field: str | None = None) -> str:
    """``value`` if it is a non-blank string, else an error naming the file and the place
    (``where``: item, line or row; ``field``: the JSONL key / Parquet column holding it)."""
    subject = f"{where}: field {field!r}" if field else where
    if value is None:
        raise TextsError(f"texts: {path}, {subject} is missing or null.")
    if not isinstance(value, str):
        found = f"{type(value).__name__} {short_repr(value, 60)}"
        raise TextsError(
            f"texts: {path}, {subject} must be a string, found {found}."
            if field
            else f"texts: {path}, {where}: expected a string, found {found}. Quote it or turn "
            "it into text."
        )
    if not value.strip():
        raise TextsError(f"texts: {path}, {subject} is empty or whitespace only. Remove it.")
    surrogate = LONE_SURROGATE.search(value)
    if surrogate is not None:
        raise TextsError(
            f"texts: {path}, {subject} holds a lone surrogate "
            f"(\\u{ord(surrogate.group()):04x} at character {surrogate.start() + 1}): half of a "
            "UTF-16 pair, not a character, so it cannot be written as UTF-8. Fix the escape that "
            "produced it (a JSON or YAML \\uD8xx escape needs its partner) or remove it."
        )
    return value


def text_id(category: str, text: str) -> str:
    return f"{category}-{hashlib.sha256(text.encode('utf-8')).hexdigest()[:10]}"


def load_yaml_category(path: str | Path, category: str | None = None) -> list[Text]:
    """Read one YAML category file and give every text its id (any format:
    ``corpus.load_category``)."""
    path = Path(path)
    category = category or path.stem
    # the Snakefile reads each YAML category twice (checks, chunk counts): parse it once per
    # version of the file
    stat = path.stat()
    return list(_load_yaml_category(path, category, stat.st_mtime_ns, stat.st_size))


# far above any realistic number of categories: both passes of a run must hit the cache (an
# LRU smaller than the category count would evict every file before its second read)
@lru_cache(maxsize=1024)
def _load_yaml_category(path: Path, category: str, _mtime_ns: int, _size: int) -> tuple[Text, ...]:
    try:
        raw = path.read_bytes().decode("utf-8")
    except OSError as err:
        raise TextsError(f"texts: cannot read {path}: {err.strerror}. Fix or remove it.") from None
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise TextsError(
            f"texts: {path} is not valid UTF-8 (byte {err.start}, line {line}). "
            "Re-save the file as UTF-8."
        ) from None
    try:
        items = load_yaml(raw, f"texts: {path}", "Write each text out in full.")
    except yaml.YAMLError as err:
        raise TextsError(f"texts: {path} is not valid YAML: {err}") from None
    if items is None:
        raise TextsError(f"texts: {path} is empty. Add a YAML list of strings, or remove the file.")
    if not isinstance(items, list):
        raise TextsError(
            f"texts: {path} must be a YAML list of strings (one '- text' item per text), "
            f"found a {type(items).__name__}."
        )
    texts: list[Text] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        checked_text(path, f"item {index + 1}", item)
        base = text_id(category, item)
        seen[base] = seen.get(base, 0) + 1
        tid = base if seen[base] == 1 else f"{base}-{seen[base]}"
        texts.append(Text(tid, category, item))
    if not texts:
        raise TextsError(f"texts: {path} holds an empty list. Add texts or remove the file.")
    return tuple(texts)

"""Categories drawn from datasets: ``texts: {category: {dataset: ..., n: ..., ...}}``.

A dataset category is loaded with the ``datasets`` library, filtered (``filter``: column ==
value; ``min_chars``/``max_chars``; blank texts never count), sampled reproducibly (``n``,
``seed``) and **materialised once** into a Parquet category file,
``<results_dir>/datasets/<category>.parquet`` (rule ``materialise_dataset``), with its provenance
(dataset, config, split, revision/fingerprint, filter, seed, n, date, a digest of the texts) in
the file's metadata. The extraction then reads that file like any ``.parquet`` category.

Why a rule: the spec is the rule's param, so the same spec never runs the job again (the
materialised file is read, never the network), and a changed spec re-materialises that category
and re-extracts that category only (its extraction jobs read the new file).

Sampling:

- read whole (local datasets; ``streaming: false``): every row passing the filters is a
  candidate; a permutation of them drawn with ``numpy.random.default_rng(seed)`` gives the
  sample, its first ``n`` rows in permutation order: an exact uniform sample, and the same seed
  with a larger ``n`` keeps the smaller sample as its first ``n`` texts;
- streamed (hub datasets by default, so a 100 GB dataset is never downloaded whole): the
  stream is shuffled with ``IterableDataset.shuffle(seed, buffer_size)`` (shard order and a
  shuffle buffer) and the first ``n`` rows passing the filters are the sample. It is
  reproducible for a fixed dataset revision but not uniform over the whole dataset; set
  ``streaming: false`` for an exact sample of a dataset that fits on disk.

The startup checks (``check_dataset_specs``) never touch the network: they check the spec's
shape and that a local dataset's files exist; whether a hub dataset, its split and its field
exist is checked by the materialisation job, which fails with one message naming the category.

This module never imports torch; ``datasets`` is imported by the materialisation job only.
"""

from __future__ import annotations

import datetime as _dt
import glob
import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..core.errors import ConfigError, HubUnreachableError, TextsError
from ..core.layout import dataset_texts_path
from ..core.settings import DatasetSpec, Settings
from .corpus import CorpusOptions, chunk_counts, n_chunks
from .texts import CATEGORY_FILE_SUFFIXES, SAFE_CATEGORY, list_categories

METADATA_KEY = "dataset"  # under the file's ``sae_specialists`` metadata (core.io)
BATCH_ROWS = 10_000
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
SAVE_TO_DISK_FILES = ("state.json", "dataset_dict.json")


# -- the categories of a config (parse time) ----------------------------------------------------


def dataset_specs(settings: Settings) -> dict[str, DatasetSpec]:
    """The dataset categories of ``texts:``, sorted by name (none for a texts directory)."""
    if not isinstance(settings.texts, Mapping):
        return {}
    return {c: s for c, s in sorted(settings.texts.items()) if isinstance(s, DatasetSpec)}


def file_categories(settings: Settings) -> dict[str, Path]:
    """The categories read from files: every file of a texts directory, or the file entries of a
    ``texts:`` mapping (each checked: a category file that exists, with a safe name)."""
    if not isinstance(settings.texts, Mapping):
        return list_categories(settings.texts)
    out = {}
    for category, source in sorted(settings.texts.items()):
        if isinstance(source, DatasetSpec):
            continue
        _check_category_name(category)
        if source.suffix.lower() not in CATEGORY_FILE_SUFFIXES:
            raise TextsError(
                f"config: texts.{category} = {str(source)!r} is not a category file; use one of "
                f"{', '.join('*' + s for s in CATEGORY_FILE_SUFFIXES)}, or a dataset spec "
                "({dataset: ..., n: ...})."
            )
        if not source.is_file():
            raise TextsError(
                f"config: texts.{category} = {str(source)!r} does not exist or is not a file "
                f"(relative paths start at {os.getcwd()}). Point it at a category file."
            )
        out[category] = source
    return out


def category_files(settings: Settings) -> dict[str, Path]:
    """Every category -> the file its extraction jobs read: a category file, or a dataset
    category's materialised Parquet file (built by rule ``materialise_dataset``)."""
    files = file_categories(settings)
    for category in dataset_specs(settings):
        files[category] = Path(dataset_texts_path(settings.results_dir, category))
    return dict(sorted(files.items()))


def category_chunks(settings: Settings, options: CorpusOptions) -> dict[str, int]:
    """Extraction chunks per category; a dataset category has exactly ``n`` texts (fewer is an
    error of its materialisation), so it is counted without reading anything."""
    counts = chunk_counts(file_categories(settings), settings.extraction.chunk_size, options)
    for category, spec in dataset_specs(settings).items():
        counts[category] = n_chunks(spec.n, settings.extraction.chunk_size)
    return dict(sorted(counts.items()))


# -- startup checks (offline) -------------------------------------------------------------------


def _check_category_name(category: str) -> None:
    if not SAFE_CATEGORY.match(category):
        raise TextsError(
            f"config: texts: the category name {category!r} is not a safe path component "
            "(letters, digits, '_' and '-', not starting with '_' or '-'). Rename it."
        )


# load_dataset's packaged builders: with data_files, the files are local (or URLs)
LOCAL_BUILDERS = frozenset({"arrow", "csv", "json", "parquet", "text"})


def is_local(spec: DatasetSpec) -> bool:
    """A local dataset: an existing path, or a packaged builder (parquet, json, csv, text,
    arrow) reading ``data_files``. A hub id with ``data_files`` (files of a hub repository) is
    not local."""
    return Path(spec.dataset).expanduser().exists() or spec.dataset in LOCAL_BUILDERS


def _data_file_patterns(data_files) -> list[str]:
    if data_files is None:
        return []
    if isinstance(data_files, str):
        return [data_files]
    if isinstance(data_files, Mapping):
        return [p for v in data_files.values() for p in _data_file_patterns(v)]
    return [str(p) for p in data_files]


def local_files(spec: DatasetSpec) -> list[str]:
    """The local files a dataset category is drawn from (its data files, or the files of a
    local dataset directory), sorted: the materialisation's inputs, so editing one
    re-materialises the category. None for hub datasets."""
    if not is_local(spec):
        return []
    patterns = _data_file_patterns(spec.data_files)
    path = Path(spec.dataset).expanduser()
    if not patterns and path.exists():
        patterns = [str(path / "**" / "*")] if path.is_dir() else [str(path)]
    files = {
        f
        for pattern in patterns
        if "://" not in pattern
        for f in glob.glob(os.path.expanduser(pattern), recursive=True)
        if os.path.isfile(f)
    }
    return sorted(files)


def check_dataset_spec(category: str, spec: DatasetSpec) -> None:
    """What can be checked without the network: the spec's values and a local dataset's files.
    Hub datasets are not contacted (a config check works offline); their existence, split and
    field are checked when the category is materialised."""
    where = f"config: texts.{category}"
    _check_category_name(category)
    if spec.max_chars is not None and spec.max_chars < spec.min_chars:
        raise ConfigError(
            f"{where}: max_chars ({spec.max_chars}) is below min_chars ({spec.min_chars}); "
            "no text could pass. Raise max_chars or lower min_chars."
        )
    if spec.dataset in LOCAL_BUILDERS and spec.data_files is None:
        raise ConfigError(
            f"{where}: dataset {spec.dataset!r} is a file format; give the files with "
            f"texts.{category}.data_files (a path, a glob or a list)."
        )
    for pattern in _data_file_patterns(spec.data_files) if is_local(spec) else []:
        if not glob.glob(os.path.expanduser(pattern), recursive=True) and "://" not in pattern:
            raise TextsError(
                f"{where}: data_files {pattern!r} matches no file (relative paths start at "
                f"{os.getcwd()}). Fix the path or the pattern."
            )
    if is_local(spec):
        return
    looks_like_path = spec.dataset.startswith((".", "/", "~")) or spec.dataset.count("/") > 1
    if looks_like_path or not HUB_ID.match(spec.dataset):
        raise TextsError(
            f"{where}: dataset {spec.dataset!r} is neither an existing local path (relative paths "
            f"start at {os.getcwd()}) nor a hub id like 'owner/name'. Fix the path or the id."
        )


def check_dataset_specs(settings: Settings) -> None:
    for category, spec in dataset_specs(settings).items():
        check_dataset_spec(category, spec)


# -- loading (the materialisation job) ----------------------------------------------------------


def _where(category: str, spec: DatasetSpec) -> str:
    parts = [repr(spec.dataset)]
    if spec.name:
        parts.append(f"config {spec.name!r}")
    parts.append(f"split {spec.split!r}")
    return f"texts.{category} (dataset {', '.join(parts)})"


def _streaming(spec: DatasetSpec) -> bool:
    return (not is_local(spec)) if spec.streaming is None else spec.streaming


def _is_saved_to_disk(path: Path) -> bool:
    return path.is_dir() and any((path / name).is_file() for name in SAVE_TO_DISK_FILES)


def _from_disk(category: str, spec: DatasetSpec):
    import datasets

    loaded = datasets.load_from_disk(str(Path(spec.dataset).expanduser()))
    if isinstance(loaded, datasets.DatasetDict):
        if spec.split not in loaded:
            raise TextsError(
                f"{_where(category, spec)}: the saved dataset has no split {spec.split!r} "
                f"(splits: {sorted(loaded)}). Set texts.{category}.split."
            )
        loaded = loaded[spec.split]
    return loaded.to_iterable_dataset() if spec.streaming else loaded


def _unreachable(category: str, spec: DatasetSpec, out_path: str, err) -> HubUnreachableError:
    return HubUnreachableError(
        f"{_where(category, spec)}: the Hugging Face hub cannot be reached ({_first_line(err)}) "
        f"and there is no materialised copy of this category ({out_path}). Run once where the "
        "hub is reachable (the sample is then read from that file, offline), copy a "
        "materialised file made with the same spec there, or point `dataset:` at a local copy "
        "(save_to_disk directory or data files)."
    )


def _first_line(err: BaseException, limit: int = 200) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:limit]


def load(category: str, spec: DatasetSpec, out_path: str):
    """The dataset split (a ``Dataset``, or an ``IterableDataset`` when streamed); every failure
    is one ``UserError`` naming the category."""
    import datasets

    if _is_saved_to_disk(Path(spec.dataset).expanduser()):
        return _from_disk(category, spec)
    hub = not is_local(spec)
    if hub:
        from .hub import prepare_hub_access

        prepare_hub_access()  # a short probe: offline mode at once instead of minutes of retries
    try:
        return datasets.load_dataset(
            spec.dataset,
            spec.name,
            split=spec.split,
            data_files=spec.data_files,
            revision=spec.revision,
            streaming=_streaming(spec),
        )
    except datasets.exceptions.DatasetNotFoundError as err:
        if hub and _offline():
            raise _unreachable(category, spec, out_path, err) from None
        raise TextsError(
            f"{_where(category, spec)}: dataset not found ({_first_line(err)}). Check the id "
            "(owner/name on huggingface.co), or the local path."
        ) from None
    except (ConnectionError, OSError) as err:
        if hub:
            raise _unreachable(category, spec, out_path, err) from None
        raise TextsError(
            f"{_where(category, spec)}: cannot read it ({_first_line(err)})."
        ) from None
    except ValueError as err:
        raise TextsError(
            f"{_where(category, spec)}: {_first_line(err)}. Check `name` (the configuration) and "
            "`split`."
        ) from None


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")


def _columns(ds) -> list[str] | None:
    names = getattr(ds, "column_names", None)
    if names is None and getattr(ds, "features", None) is not None:
        names = list(ds.features)
    return list(names) if names is not None else None


def _check_columns(category: str, spec: DatasetSpec, ds) -> None:
    """The text field and the filter's columns exist, and the field holds strings."""
    columns = _columns(ds)
    if columns is None:
        return  # a stream without declared features: checked row by row
    wanted = [spec.field] + [column for column, _ in spec.filter]
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise TextsError(
            f"{_where(category, spec)} has no column {missing[0]!r} (columns: {columns[:20]}). "
            f"Set texts.{category}.field (the text) or fix the filter."
        )
    feature = ds.features[spec.field] if ds.features is not None else None
    dtype = getattr(feature, "dtype", None)
    if feature is not None and dtype not in ("string", "large_string"):
        kind = dtype or type(feature).__name__
        raise TextsError(
            f"{_where(category, spec)}: column {spec.field!r} holds {kind}, not strings. Set "
            f"texts.{category}.field to a column of text."
        )


def _passes(spec: DatasetSpec, text, row: Mapping, category: str) -> bool:
    if not isinstance(text, str):
        if text is None:
            return False
        raise TextsError(
            f"{_where(category, spec)}: column {spec.field!r} holds {type(text).__name__}, not "
            f"strings. Set texts.{category}.field to a column of text."
        )
    if not text.strip():
        return False
    if len(text) < spec.min_chars or (spec.max_chars is not None and len(text) > spec.max_chars):
        return False
    for column, value in spec.filter:
        if column not in row:
            raise TextsError(
                f"{_where(category, spec)} has no column {column!r} (columns: "
                f"{sorted(row)[:20]}). Fix texts.{category}.filter."
            )
        if not matches(row[column], value):
            return False
    return True


def matches(found, wanted) -> bool:
    """A filter's test: equal to the value, or (a list of values) equal to one of them."""
    if isinstance(wanted, (list, tuple)):
        return found in wanted
    return found == wanted


def _condition(column: str, value) -> str:
    if isinstance(value, (list, tuple)):
        return f"{column} in {list(value)!r}"
    return f"{column} == {value!r}"


def _too_few(category: str, spec: DatasetSpec, passing: int, seen: int) -> TextsError:
    filters = ", ".join(
        [_condition(c, v) for c, v in spec.filter]
        + [f"min_chars {spec.min_chars}"]
        + ([f"max_chars {spec.max_chars}"] if spec.max_chars is not None else [])
    )
    return TextsError(
        f"{_where(category, spec)}: only {passing} of {seen} rows pass the filters ({filters}; "
        f"blank texts never count), fewer than n = {spec.n}. Lower texts.{category}.n to at "
        f"most {passing}, or loosen the filters."
    )


def sample_dataset(category: str, spec: DatasetSpec, ds) -> tuple[list[str], dict]:
    """The sample's texts (in sample order) and counts {rows_seen, rows_passing}."""
    import datasets

    _check_columns(category, spec, ds)
    if isinstance(ds, datasets.IterableDataset):
        return _sample_stream(category, spec, ds)
    return _sample_whole(category, spec, ds)


def _sample_whole(category: str, spec: DatasetSpec, ds) -> tuple[list[str], dict]:
    """Exact: the row indices passing the filters, permuted with the seed, the first n."""
    import numpy as np

    columns = [spec.field] + [c for c, _ in spec.filter if c != spec.field]
    passing: list[int] = []
    start = 0
    for batch in ds.select_columns(columns).iter(batch_size=BATCH_ROWS):
        texts = batch[spec.field]
        for i, text in enumerate(texts):
            row = {c: batch[c][i] for c in columns}
            if _passes(spec, text, row, category):
                passing.append(start + i)
        start += len(texts)
    if len(passing) < spec.n:
        raise _too_few(category, spec, len(passing), start)
    order = np.random.default_rng(spec.seed).permutation(len(passing))[: spec.n]
    rows = [passing[i] for i in order]
    texts = ds.select(rows)[spec.field]
    return list(texts), {"rows_seen": start, "rows_passing": len(passing)}


def _sample_stream(category: str, spec: DatasetSpec, ds) -> tuple[list[str], dict]:
    """Shuffled stream (shards + buffer, seeded): the first n rows passing the filters."""
    texts: list[str] = []
    seen = 0
    for row in ds.shuffle(seed=spec.seed, buffer_size=spec.buffer_size):
        seen += 1
        if spec.field not in row:
            raise TextsError(
                f"{_where(category, spec)} has no column {spec.field!r} (columns: "
                f"{sorted(row)[:20]}). Set texts.{category}.field to the column of text."
            )
        if _passes(spec, row[spec.field], row, category):
            texts.append(row[spec.field])
            if len(texts) == spec.n:
                break
    if len(texts) < spec.n:
        raise _too_few(category, spec, len(texts), seen)
    return texts, {"rows_seen": seen, "rows_passing": None}


# -- provenance and the materialised file -------------------------------------------------------


def _resolved_revision(spec: DatasetSpec) -> str | None:
    """The hub commit the sample came from (None for local datasets or when unknown)."""
    if is_local(spec):
        return None
    try:
        from huggingface_hub import HfApi

        return HfApi().dataset_info(spec.dataset, revision=spec.revision).sha
    except Exception:  # noqa: BLE001 - provenance only: the sample itself was read already
        return None


def _local_fingerprint(spec: DatasetSpec, ds) -> str | None:
    """The ``datasets`` fingerprint of a dataset read whole, else a digest of the local files'
    names, sizes and modification times."""
    fingerprint = getattr(ds, "_fingerprint", None)
    if fingerprint:
        return str(fingerprint)
    files = sorted(
        f
        for pattern in (_data_file_patterns(spec.data_files) or [spec.dataset])
        for f in glob.glob(os.path.expanduser(pattern), recursive=True)
    )
    digest = hashlib.sha256()
    for f in files:
        stat = os.stat(f)
        digest.update(f"{f}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16] if files else None


def texts_digest(texts: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(hashlib.sha256(text.encode("utf-8")).digest())
    return digest.hexdigest()


def provenance(category: str, spec: DatasetSpec, ds, texts: list[str], counts: dict) -> dict:
    import datasets

    return {
        "category": category,
        **spec.as_param(),
        "streamed": _streaming(spec),
        "resolved_revision": _resolved_revision(spec),
        "fingerprint": _local_fingerprint(spec, ds) if is_local(spec) else None,
        **counts,
        "texts_sha256": texts_digest(texts),
        "materialised_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "datasets_version": datasets.__version__,
    }


def materialise(category: str, spec: DatasetSpec, out_path: str, text_field: str) -> dict:
    """Load, filter, sample and write the category file (atomically: a failure leaves none).
    Returns the provenance written into its metadata."""
    import polars as pl

    from ..core.io import write_parquet

    ds = load(category, spec, out_path)
    texts, counts = sample_dataset(category, spec, ds)
    record = provenance(category, spec, ds, texts, counts)
    write_parquet(pl.DataFrame({text_field: texts}), out_path, {METADATA_KEY: record})
    return record


def read_provenance(path: str | os.PathLike) -> dict:
    """The provenance of a materialised category file."""
    from ..core.io import read_metadata

    return read_metadata(path)[METADATA_KEY]


def provenance_markdown(records: list[dict]) -> str:
    """The provenance of every dataset category as a Markdown page."""
    lines = [
        "# Categories from datasets",
        "",
        "Each category below was drawn from a dataset and materialised once into "
        "`datasets/<category>.parquet` (rule materialise_dataset); its provenance is also in "
        "that file's Parquet metadata (key `sae_specialists` -> `dataset`).",
        "",
        "| category | dataset | config | split | field | filter | n | seed | chars | revision / "
        "fingerprint | rows passing / seen | texts sha256 | materialised |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        filt = ", ".join(_condition(k, v) for k, v in (r["filter"] or {}).items()) or "-"
        source = r["dataset"] + (f" ({r['data_files']})" if r["data_files"] else "")
        chars = f"{r['min_chars']}..{r['max_chars'] if r['max_chars'] is not None else ''}"
        rev = r["resolved_revision"] or r["revision"] or r["fingerprint"] or "-"
        passing = "-" if r["rows_passing"] is None else f"{r['rows_passing']:,}"
        stream = " (streamed: first n of a seeded shuffle)" if r["streamed"] else ""
        lines.append(
            f"| {r['category']} | {source} | {r['name'] or '-'} | {r['split']} | "
            f"{r['field']} | {filt} | {r['n']:,} | {r['seed']} | {chars} | {rev} | "
            f"{passing} / {r['rows_seen']:,}{stream} | {r['texts_sha256'][:16]} | "
            f"{r['materialised_at']} |"
        )
    return "\n".join(lines) + "\n"

"""Reading and writing results: one shard reader (with the data contract's schema check), one
family of atomic writers, one metadata reader.

Every writer writes to a temporary file next to its target and renames it over the target
(atomic on POSIX), so a killed job never leaves a file that looks complete; shards are also
flushed to disk first. A full disk is one clear error that names the file.

pyarrow is imported only inside the functions that need it: the table jobs of a threshold-only
rerun read and write with polars alone (docs/performance.md).
"""

from __future__ import annotations

import errno
import glob
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import ShardError

META_KEY = "sae_specialists"  # key of the JSON metadata in the Parquet key-value metadata
METADATA_KEY = META_KEY.encode()


# -- reading ----------------------------------------------------------------------------------


def _unreadable(path, err) -> ShardError:
    return ShardError(
        f"shard {path} is unreadable or corrupt ({err}). Delete it and rerun snakemake to "
        "extract it again."
    )


def _first_line(err: BaseException, limit: int = 160) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def corrupt_parquet(paths: Iterable[str | os.PathLike]) -> tuple[str, BaseException] | None:
    """The first of ``paths`` that is a Parquet file whose data does not decode (every row
    group read), with the error; None when all decode. Slow (reads everything): only called
    after a job failed reading its inputs."""
    import pyarrow.parquet as pq

    for path in paths:
        path = str(path)
        if not path.endswith(".parquet") or not os.path.isfile(path):
            continue
        try:
            parquet = pq.ParquetFile(path)
            for group in range(parquet.num_row_groups):
                parquet.read_row_group(group)
        except Exception as err:  # noqa: BLE001 - any decoding failure means this file is bad
            return path, err
    return None


def explain_failure(
    err: BaseException, inputs: Iterable[str] = (), outputs: Iterable[str] = ()
) -> ShardError | None:
    """A job's unexpected error as the one-line user error it really is, or None:
    - a full disk (ENOSPC/EDQUOT anywhere: a library's own writes, a log): names the file;
    - a failure while reading inputs when one of the job's Parquet inputs is corrupt (its footer
      may be intact, so the schema check passed): names that file and says how to heal it."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        outputs = list(outputs)
        return disk_full(err.filename or (outputs[0] if outputs else "an output"), err)
    module = type(err).__module__ or ""
    if not (isinstance(err, OSError) or module.startswith(("polars", "pyarrow"))):
        return None
    found = corrupt_parquet(inputs)
    if found is None:
        return None
    path, detail = found
    return ShardError(
        f"{path} is corrupt ({_first_line(detail)}). Delete it and rerun snakemake: it is "
        "rebuilt, and so is everything made from it."
    )


def read_metadata(path: str | os.PathLike, required: bool = True) -> dict[str, Any]:
    """The ``sae_specialists`` JSON metadata of a Parquet file. Missing: an error naming the
    file, or ``{}`` when not ``required``."""
    import polars as pl

    try:
        raw = (pl.read_parquet_metadata(path) or {}).get(META_KEY)
    except (OSError, pl.exceptions.ComputeError) as err:
        raise _unreadable(path, err) from None
    if raw is None:
        if required:
            raise ShardError(f"shard {path} has no '{META_KEY}' metadata.")
        return {}
    return json.loads(raw)


def read_cell_json(path: str | os.PathLike, family: str | None = None, layer=None) -> dict:
    """A JSON object keyed "family/layer/category" (the validation and causal verdicts); with
    ``family`` and ``layer``: that layer's entries, keyed by category."""
    records = json.loads(Path(path).read_text(encoding="utf-8"))
    if family is None:
        return records
    prefix = f"{family}/{int(layer)}/"
    return {k[len(prefix) :]: v for k, v in records.items() if k.startswith(prefix)}


def check_schema(path: str | os.PathLike, expected) -> None:
    """Fail with a clear message if a shard is corrupt or does not follow the contract."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowInvalid) as err:
        raise _unreadable(path, err) from None
    got = pa.schema([(f.name, f.type) for f in schema])
    want = pa.schema([(f.name, f.type) for f in expected])
    if not got.equals(want):
        raise ShardError(f"shard {path} has columns {got} but the data contract requires {want}.")


def scan_shards(paths: Iterable[str | os.PathLike], schema, columns: Iterable[str] | None = None):
    """The shards at ``paths`` as one polars LazyFrame of ``columns`` (default: all), after
    checking each shard against the contract's ``schema`` (a corrupt or foreign shard is
    reported, never analysed). Ids are plain strings (the engine writes them
    dictionary-encoded), activations float64 (sums and means are taken in float64)."""
    import polars as pl

    types = {
        "text_id": pl.String,
        "category": pl.String,
        "token_pos": pl.Int32,
        "token_id": pl.Int32,
        "token": pl.String,
        "token_bytes": pl.Binary,
        "bos": pl.Boolean,
        "feature": pl.Int32,
        "activation": pl.Float64,
    }
    paths = [str(p) for p in paths]
    if not paths:
        raise ValueError(f"no shards given (expected columns {schema.names})")
    for path in paths:
        check_schema(path, schema)
    names = schema.names if columns is None else list(columns)
    return pl.scan_parquet(paths).select(pl.col(n).cast(types[n]) for n in names)


# -- writing ----------------------------------------------------------------------------------


def disk_full(path: str | os.PathLike, err: OSError) -> ShardError | None:
    """The one-line error for a write of ``path`` that failed because the disk (or quota) is
    full; None for any other OSError."""
    if err.errno not in (errno.ENOSPC, errno.EDQUOT):
        return None
    return ShardError(
        f"disk full while writing {path}: {os.strerror(err.errno)}. Nothing was written there "
        "and earlier outputs are intact; free space (or point results_dir elsewhere) and rerun "
        "snakemake, which redoes only the missing work."
    )


def remove_leftovers(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files earlier writers of ``path`` left when they were killed
    (``.<name>.*.tmp`` next to it; also ``.<name>.tmp-<pid>...``, the chart writer's names before
    it used ``atomic_path``). Only the job that writes ``path`` calls this, and Snakemake runs
    one such job at a time, so no live writer's file is touched."""
    path = Path(path)
    removed = []
    name = glob.escape(path.name)
    for leftover in [
        *path.parent.glob(f".{name}.*.tmp"),
        *path.parent.glob(f".{name}.tmp-[0-9]*"),
    ]:
        try:
            leftover.unlink()
            removed.append(leftover)
        except OSError:
            pass
    return removed


@contextmanager
def atomic_path(path: str | os.PathLike, durable: bool = False) -> Iterator[Path]:
    """A temporary path next to ``path`` to write to; on success it is renamed over ``path``
    (after an fsync when ``durable``), on any error removed and ``path`` left as it was.
    Temporary files of earlier, killed writers of ``path`` are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    # mkstemp creates the file private (0600); results get the usual permissions (umask)
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if durable:
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        full = disk_full(path, err)
        if full is not None:
            raise full from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """A fresh hidden directory next to ``path`` to fill; on success it replaces ``path`` whole
    (an existing one is removed first), on any error it is removed and ``path`` left as it was:
    no half-written directory output survives a failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    """The process's umask, read without changing it (os.umask would, for a moment, for every
    thread): /proc/self/status on Linux, else the usual 022."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def _with_metadata(table, metadata: Mapping[str, Any] | None):
    if metadata is None:
        return table
    existing = dict(table.schema.metadata or {})
    existing[METADATA_KEY] = json.dumps(dict(metadata), sort_keys=True).encode()
    return table.replace_schema_metadata(existing)


def write_table_atomic(table, path: str | os.PathLike, metadata: Mapping | None = None) -> None:
    """Write a pyarrow table as a zstd Parquet shard, durably and atomically, with optional
    ``sae_specialists`` metadata."""
    import pyarrow.parquet as pq

    with atomic_path(path, durable=True) as tmp:
        pq.write_table(_with_metadata(table, metadata), tmp, compression="zstd")


def write_parquet(df, path: str | os.PathLike, metadata: Mapping[str, Any] | None = None) -> None:
    """Write a polars DataFrame atomically, with optional ``sae_specialists`` metadata.

    With metadata, pyarrow writes it (into the Arrow schema as well as the file's key-value
    metadata, so ``pyarrow.parquet.read_schema(path).metadata`` finds it; polars' writer only
    fills the latter). Without, polars writes the file: the table jobs of a threshold-only
    rerun then never import pyarrow (~0.2 s per job)."""
    with atomic_path(path) as tmp:
        if metadata is None:
            df.write_parquet(tmp)
        else:
            import pyarrow.parquet as pq

            pq.write_table(_with_metadata(df.to_arrow(), metadata), tmp)


def csv_flat(df):
    """``df`` with every list column as its items joined by single spaces: CSV has no list
    type (the Parquet twin keeps the lists, e.g. ``token_ids`` as a list of ints)."""
    import polars as pl

    lists = [name for name, dtype in df.schema.items() if isinstance(dtype, pl.List)]
    if not lists:
        return df
    return df.with_columns(pl.col(lists).cast(pl.List(pl.String)).list.join(" "))


def write_csv(df, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        csv_flat(df).write_csv(tmp)


def write_text(text: str, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_tables(frames: Mapping[str, Any], outputs: Mapping[str, str]) -> None:
    """Each DataFrame ``frames[name]`` to ``outputs[name]`` (Parquet) and its CSV twin
    ``outputs[name + '_csv']``."""
    for name, df in frames.items():
        write_parquet(df, outputs[name])
        write_csv(df, outputs[f"{name}_csv"])


class AtomicParquetWriter:
    """Write a Parquet file incrementally (one row group per ``write``), atomically.

    Rows go to a temporary file next to ``path``; ``commit`` adds the key-value metadata,
    closes, fsyncs and renames it over ``path``, so a killed job never leaves a file that looks
    complete. ``abort`` (or an exception before ``commit``) removes it.
    """

    def __init__(self, path: str | os.PathLike, schema):
        import pyarrow.parquet as pq

        self._target = atomic_path(path, durable=True)
        self.tmp = self._target.__enter__()
        self.path = Path(path)
        self.schema = schema
        # store_schema=False: the key-value metadata added at commit becomes the Arrow schema
        # metadata readers see (pq.read_schema(path).metadata); types round-trip unchanged.
        with self._failing():
            self.writer = pq.ParquetWriter(
                str(self.tmp), schema, compression="zstd", store_schema=False
            )
        self.rows = 0

    @contextmanager
    def _failing(self) -> Iterator[None]:
        """On any error: remove the temporary file; a full disk becomes one clear error."""
        try:
            yield
        except OSError as err:
            self.abort()
            full = disk_full(self.path, err)
            if full is not None:
                raise full from None
            raise
        except BaseException:
            self.abort()
            raise

    def write(self, table) -> None:
        if table.num_rows:
            with self._failing():
                self.writer.write_table(table)
            self.rows += table.num_rows

    def commit(self, metadata: Mapping | None = None) -> None:
        with self._failing():
            if metadata is not None:
                self.writer.add_key_value_metadata(
                    {META_KEY: json.dumps(dict(metadata), sort_keys=True)}
                )
            self.writer.close()
        self._target.__exit__(None, None, None)

    def abort(self) -> None:
        writer = getattr(self, "writer", None)
        try:
            if writer is not None:
                writer.close()
        except Exception:  # noqa: BLE001 - best effort, the file is removed anyway
            pass
        self.tmp.unlink(missing_ok=True)

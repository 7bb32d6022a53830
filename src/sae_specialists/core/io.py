"""The data contract: token and activation shards (Parquet), written atomically.

- ``{results}/tokens/category={category}/tokens.parquet``: one row per stored position.
- ``{results}/activations/sae={family}/layer={layer}/category={category}/activations.parquet``:
  one row per (token, feature) with activation > 0; BOS included, padding never.

Activation shards carry Parquet key-value metadata under the key ``sae_specialists`` (JSON).
This module never imports torch, so analysis steps can use it.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import ShardError

METADATA_KEY = b"sae_specialists"

TOKENS_SCHEMA = pa.schema(
    [
        ("text_id", pa.string()),
        ("category", pa.string()),
        ("token_pos", pa.int32()),
        ("token_id", pa.int32()),
        ("token", pa.string()),
        ("bos", pa.bool_()),
    ]
)

ACTIVATIONS_SCHEMA = pa.schema(
    [
        ("text_id", pa.string()),
        ("token_pos", pa.int32()),
        ("feature", pa.int32()),
        ("activation", pa.float32()),
    ]
)


def write_table_atomic(table: pa.Table, path: str | Path, metadata: dict | None = None) -> None:
    """Write `table` to `path` so that a killed job never leaves a file that looks complete.

    The table goes to a temporary file in the same directory, is flushed to disk, and is then
    renamed over `path` (rename is atomic on POSIX file systems). On any error the temporary
    file is removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if metadata is not None:
        existing = table.schema.metadata or {}
        table = table.replace_schema_metadata(
            {**existing, METADATA_KEY: json.dumps(metadata, sort_keys=True).encode()}
        )
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            pq.write_table(table, handle, compression="zstd")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ShardError(
                f"disk full while writing {path}: {err.strerror}. Nothing was written there and "
                "earlier shards are intact; free space (or point results_dir elsewhere) and "
                "rerun snakemake, which redoes only the missing work."
            ) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_metadata(path: str | Path) -> dict:
    """The `sae_specialists` metadata of an activation shard."""
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowInvalid) as err:
        raise ShardError(
            f"shard {path} is unreadable or corrupt ({err}). Delete it and rerun snakemake to "
            "extract it again."
        ) from None
    raw = (schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise ShardError(f"shard {path} has no '{METADATA_KEY.decode()}' metadata.")
    return json.loads(raw)


def check_schema(path: str | Path, expected: pa.Schema) -> None:
    """Fail with a clear message if a shard is corrupt or does not follow the contract."""
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowInvalid) as err:
        raise ShardError(
            f"shard {path} is unreadable or corrupt ({err}). Delete it and rerun snakemake to "
            "extract it again."
        ) from None
    got = pa.schema([(f.name, f.type) for f in schema])
    want = pa.schema([(f.name, f.type) for f in expected])
    if not got.equals(want):
        raise ShardError(f"shard {path} has columns {got} but the data contract requires {want}.")

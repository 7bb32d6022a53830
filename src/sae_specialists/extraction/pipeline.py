"""Entry points the Snakemake scripts call (each wires rule inputs/outputs to the package)."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from ..core.errors import TextsError
from ..core.io import METADATA_KEY
from ..core.settings import Settings

log = logging.getLogger(__name__)

CHUNK_DIR = re.compile(r"^chunk=(\d+)$")


class AtomicParquetWriter:
    """Write a Parquet file incrementally (one row group per ``write``), atomically.

    Rows go to a temporary file next to ``path``; ``commit`` adds the key-value metadata,
    closes, fsyncs and renames it over ``path`` (atomic on POSIX), so a killed job never leaves
    a file that looks complete. ``abort`` (or an exception inside ``with``) removes it.
    """

    def __init__(self, path: str | Path, schema):
        import pyarrow.parquet as pq

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp",
                                   dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        self.schema = schema
        # store_schema=False: the key-value metadata added at commit becomes the Arrow schema
        # metadata readers see (pq.read_schema(path).metadata); types round-trip unchanged.
        self.writer = pq.ParquetWriter(str(self.tmp), schema, compression="zstd",
                                       store_schema=False)
        self.rows = 0

    def write(self, table) -> None:
        if table.num_rows:
            self.writer.write_table(table)
            self.rows += table.num_rows

    def commit(self, metadata: dict | None = None) -> None:
        try:
            if metadata is not None:
                self.writer.add_key_value_metadata(
                    {METADATA_KEY.decode(): json.dumps(metadata, sort_keys=True)}
                )
            self.writer.close()
            with open(self.tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        try:
            self.writer.close()
        except Exception:  # noqa: BLE001 - best effort, the file is removed anyway
            pass
        self.tmp.unlink(missing_ok=True)


def _chunk_meta(chunk: int, n_chunks: int | None, chunk_size: int | None) -> dict:
    return {"chunk": chunk, "n_chunks": n_chunks, "chunk_size": chunk_size}


def remove_stale_chunks(shard_path: str | Path, n_chunks: int) -> list[Path]:
    """Remove chunk directories >= n_chunks next to a chunk shard, and a pre-chunking shard.

    When a category shrinks (or ``chunk_size`` grows) its old high-numbered chunks are outputs
    of no job any more, but a glob over the shards would still read them.
    ``shard_path`` is ``.../category=C/chunk=K/<file>.parquet``.
    """
    shard_path = Path(shard_path)
    category_dir = shard_path.parent.parent
    removed = []
    legacy = category_dir / shard_path.name  # the layout before chunks: category=C/<file>
    if legacy.is_file():
        legacy.unlink()
        removed.append(legacy)
    if category_dir.is_dir():
        for child in category_dir.iterdir():
            match = CHUNK_DIR.match(child.name)
            if match and child.is_dir() and int(match.group(1)) >= n_chunks:
                shutil.rmtree(child)
                removed.append(child)
    return removed


def extract_category(settings: Settings, category: str, text_file: str, tokens_out: str,
                     activation_out: dict[tuple[str, int], str], chunk: int = 0,
                     n_chunks: int | None = None, window_tokens: int | None = None,
                     encode_rows: int | None = None, on_window=None) -> dict:
    """Extract one category (or one chunk of it): load the model and every SAE once, stream the
    texts window by window, append each window to every shard, commit all shards at the end.

    ``chunk`` selects texts ``[chunk * chunk_size, (chunk + 1) * chunk_size)`` of the file
    (``extraction.chunk_size``; null: the whole file). ``n_chunks`` (the category's chunk count)
    lets the job remove stale higher chunks. ``window_tokens``/``encode_rows`` override the
    engine's defaults (benchmarks); ``on_window(result)`` is called after each window is
    written (progress, benchmarks; its time is not counted). Returns a small summary.
    """
    import torch

    from ..core.io import TOKENS_SCHEMA
    from .corpus import CorpusOptions, chunk_bounds, iter_texts
    from .engine import (
        ACTIVATIONS_DICT_SCHEMA,
        WINDOW_TOKENS,
        Extractor,
        check_layers_exist,
        release_free_memory,
        shard_metadata,
        tokenized_windows,
        tune_allocator,
    )
    from .models import load_model, resolve_device
    from .saes import load_sae

    tune_allocator()
    ex = settings.extraction
    chunk_size = ex.get("chunk_size")
    start, stop = chunk_bounds(chunk, chunk_size)
    options = CorpusOptions.from_extraction(ex)
    device = resolve_device(settings.device)
    t0 = time.perf_counter()
    model = load_model(settings.model, device=device, dtype=settings.dtype)
    check_layers_exist(model, settings.layers)
    saes = [
        load_sae(name, layer, family.source(layer), device=device, dtype=settings.dtype)
        for name, family in sorted(settings.saes.items())
        for layer in settings.layers
    ]
    engine = Extractor(model, saes, ex["batch_size"], encode_rows=encode_rows)
    load_s = time.perf_counter() - t0
    log.info("%s chunk %d: model and %d SAEs loaded in %.1f s (device %s, dtype %s, "
             "forward stops before block %s, %d torch threads)", category, chunk, len(saes),
             load_s, device, settings.dtype, engine.stop, torch.get_num_threads())

    writers = {}
    try:
        writers["tokens"] = AtomicParquetWriter(tokens_out, TOKENS_SCHEMA)
        for key in activation_out:
            writers[key] = AtomicParquetWriter(activation_out[key], ACTIVATIONS_DICT_SCHEMA)
        texts = iter_texts(text_file, category, options, start, stop)
        n_texts = n_tokens = 0
        work_s = 0.0
        windows = tokenized_windows(model, texts, ex["max_tokens"], ex["long_texts"],
                                    window_tokens or WINDOW_TOKENS)
        # work_s: everything after loading (reading, tokenizing, extracting, writing), minus
        # the time spent in on_window
        tick = time.perf_counter()
        for window in windows:
            result = engine.run(window, sink=lambda key, table: writers[key].write(table))
            writers["tokens"].write(result.tokens)
            n_texts += len(window)
            n_tokens += result.n_tokens
            now = time.perf_counter()
            result.seconds = now - tick  # the window's wall time, its reading included
            work_s += result.seconds
            log.info("%s chunk %d: %d texts, %d tokens so far (%.0f tokens/s)", category, chunk,
                     n_texts, n_tokens, n_tokens / max(work_s, 1e-9))
            if on_window is not None:
                on_window(result)
            result = None  # the window's buffers are free now: hand them back to the OS
            release_free_memory()
            tick = time.perf_counter()
        if n_texts == 0:
            raise TextsError(
                f"texts: {text_file} has no texts in chunk {chunk} (texts {start} to {stop}); "
                "the file changed since the workflow was planned, or it is empty. Rerun."
            )
        chunk_meta = _chunk_meta(chunk, n_chunks, chunk_size)
        for s in saes:
            key = (s.family, s.layer)
            meta = shard_metadata(settings.model, s, category, n_texts, n_tokens,
                                  settings.dtype, chunk_meta)
            writers.pop(key).commit(meta)
        writers.pop("tokens").commit()
        work_s += time.perf_counter() - tick
    finally:
        for writer in writers.values():
            writer.abort()
    if n_chunks is not None:
        for path in [tokens_out, *activation_out.values()]:
            for removed in remove_stale_chunks(path, n_chunks):
                log.info("removed stale shard %s", removed)
    log.info("%s chunk %d: %d texts, %d tokens, %d SAEs in %.1f s (%.0f tokens/s)", category,
             chunk, n_texts, n_tokens, len(saes), work_s, n_tokens / max(work_s, 1e-9))
    return {"n_texts": n_texts, "n_tokens": n_tokens, "load_s": load_s, "work_s": work_s}

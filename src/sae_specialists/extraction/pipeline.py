"""One extraction job: a chunk of a category file -> its token shard, one activation shard and
one pooled-residual shard per (family, layer), written atomically (the data contract,
docs/data-contract.md)."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from ..core.errors import TextsError
from ..core.io import AtomicParquetWriter
from ..core.jobs import progress
from ..core.layout import CHUNK_DIR
from ..core.settings import ExtractionSettings
from .loading import ModelAndSAEs

log = logging.getLogger(__name__)


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


def extract_tokens(
    job: ModelAndSAEs,
    options: ExtractionSettings,
    category: str,
    text_file: str,
    tokens_out: str,
    chunk: int = 0,
    n_chunks: int | None = None,
) -> dict:
    """The token shard of one category (or one chunk of it): the model's tokenizer and context
    length, no forward pass. The activation jobs (one per SAE family) tokenize the same texts
    with the same function, so their rows are at these positions (docs/data-contract.md)."""
    from ..core.contract import TOKENS_SCHEMA
    from .corpus import CorpusOptions, chunk_bounds, iter_texts
    from .engine import tokens_table
    from .tokenize import WINDOW_TOKENS, tokenized_windows

    start, stop = chunk_bounds(chunk, options.chunk_size)
    corpus_options = CorpusOptions(options.text_field, options.text_split)
    t0 = time.perf_counter()
    if "path" in job.model:  # a local model: its tokenizer alone, no weights, no TransformerLens
        from .models import load_local_tokenizer

        model = load_local_tokenizer(job.model["path"])
    else:
        model, _, _ = job.load()
    n_texts = n_tokens = 0
    writer = AtomicParquetWriter(tokens_out, TOKENS_SCHEMA)
    try:
        texts = iter_texts(text_file, category, corpus_options, start, stop)
        windows = tokenized_windows(
            model, texts, options.max_tokens, options.long_texts, WINDOW_TOKENS
        )
        for window in windows:
            writer.write(tokens_table(model, window))
            n_texts += len(window)
            n_tokens += sum(len(t.ids) for t in window)
        if n_texts == 0:
            raise TextsError(
                f"texts: {text_file} has no texts in chunk {chunk} (texts {start} to {stop}); "
                "the file changed since the workflow was planned, or it is empty. Rerun."
            )
        writer.commit()
        writer = None
    finally:
        if writer is not None:
            writer.abort()
    if n_chunks is not None:
        for removed in remove_stale_chunks(tokens_out, n_chunks):
            log.info("removed stale shard %s", removed)
    seconds = time.perf_counter() - t0
    log.info(
        "%s chunk %d: %d texts, %d tokens in %.1f s", category, chunk, n_texts, n_tokens, seconds
    )
    return {"n_texts": n_texts, "n_tokens": n_tokens, "seconds": seconds}


def extract_category(
    job: ModelAndSAEs,
    options: ExtractionSettings,
    category: str,
    text_file: str,
    tokens_out: str | None,
    activation_out: dict[tuple[str, int], str],
    chunk: int = 0,
    n_chunks: int | None = None,
    window_tokens: int | None = None,
    encode_rows: int | None = None,
    on_window=None,
    pooled_out: dict[tuple[str, int], str] | None = None,
    window_rows: int | None = None,
    loaded=None,
) -> dict:
    """Extract one category (or one chunk of it): load the model and every SAE once, stream the
    texts window by window, append each window to every shard, commit all shards at the end.

    ``chunk`` selects texts ``[chunk * chunk_size, (chunk + 1) * chunk_size)`` of the file
    (``options.chunk_size``; null: the whole file). ``n_chunks`` (the category's chunk count)
    lets the job remove stale higher chunks. ``tokens_out`` None: no token shard (in the
    workflow the extract_tokens job writes it, and this job one SAE family's shards).
    ``activation_out`` maps each (family, layer) of
    ``job.saes`` to its shard, ``pooled_out`` (optional) to its pooled-residual shard.
    Windows are sized to produce about as many activation rows as ``options.max_memory_gb``
    leaves room for once the model and SAEs are loaded (extraction/memory.py; ``window_rows``
    sets that row count directly). ``window_tokens`` (fixed windows) / ``encode_rows`` override
    the engine's defaults (benchmarks); ``on_window(result)`` is called after each window is
    written (progress, benchmarks; its time is not counted). ``loaded``: ``job.load()``'s
    result when the caller already holds it (one job extracting several categories loads the
    model and SAEs once). Returns a small summary.
    """
    import torch

    from ..core.contract import POOLED_SCHEMA, TOKENS_SCHEMA
    from .corpus import CorpusOptions, chunk_bounds, count_texts, iter_texts
    from .engine import (
        ACTIVATIONS_DICT_SCHEMA,
        Extractor,
        release_free_memory,
        shard_metadata,
        tune_allocator,
    )
    from .memory import WindowBudget
    from .tokenize import tokenized_windows

    tune_allocator()
    chunk_size = options.chunk_size
    start, stop = chunk_bounds(chunk, chunk_size)
    corpus_options = CorpusOptions(options.text_field, options.text_split)
    t0 = time.perf_counter()
    model, saes, device = loaded if loaded is not None else job.load()
    engine = Extractor(model, saes, options.batch_size, encode_rows=encode_rows)
    load_s = time.perf_counter() - t0
    log.info(
        "%s chunk %d: model and %d SAEs %s (device %s, dtype %s, "
        "forward stops before block %s, %d torch threads)",
        category,
        chunk,
        len(saes),
        f"loaded in {load_s:.1f} s" if loaded is None else "loaded before (one job, many chunks)",
        device,
        job.dtype,
        engine.stop,
        torch.get_num_threads(),
    )

    writers = {}
    try:
        if tokens_out is not None:
            writers["tokens"] = AtomicParquetWriter(tokens_out, TOKENS_SCHEMA)
        for key in activation_out:
            writers[key] = AtomicParquetWriter(activation_out[key], ACTIVATIONS_DICT_SCHEMA)
        pooled_out = dict(pooled_out or {})
        for key in pooled_out:
            writers[("pooled", *key)] = AtomicParquetWriter(pooled_out[key], POOLED_SCHEMA)
        texts = iter_texts(text_file, category, corpus_options, start, stop)
        n_texts = n_tokens = 0
        work_s = 0.0
        if window_tokens:
            budget = WindowBudget(None, window_tokens)
        elif window_rows is not None:
            budget = WindowBudget(window_rows)
        else:
            budget = WindowBudget.for_memory(options.max_memory_gb)
        windows = tokenized_windows(
            model, texts, options.max_tokens, options.long_texts, budget.tokens
        )
        rows = [0]  # activation rows of the current window

        def sink(key, table):
            rows[0] += table.num_rows
            writers[key].write(table)

        # rate and ETA on the console for long chunks (core/jobs.py)
        in_file = count_texts(text_file, corpus_options)
        expected = max(0, (in_file if stop is None else min(stop, in_file)) - start)
        bar = progress(total=expected, desc=f"{category} chunk {chunk}", unit="texts")
        # work_s: everything after loading (reading, tokenizing, extracting, writing), minus
        # the time spent in on_window
        tick = time.perf_counter()
        for window in windows:
            rows[0] = 0
            result = engine.run(window, sink=sink)
            budget.observe(result.n_tokens, rows[0])
            result.rows = rows[0]
            if tokens_out is not None:
                writers["tokens"].write(result.tokens)
            for key in pooled_out:
                writers[("pooled", *key)].write(result.pooled[key])
            n_texts += len(window)
            n_tokens += result.n_tokens
            bar.update(len(window))
            now = time.perf_counter()
            result.seconds = now - tick  # the window's wall time, its reading included
            work_s += result.seconds
            log.info(
                "%s chunk %d: %d texts, %d tokens so far (%.0f tokens/s)",
                category,
                chunk,
                n_texts,
                n_tokens,
                n_tokens / max(work_s, 1e-9),
            )
            if on_window is not None:
                on_window(result)
            result = None  # the window's buffers are free now: hand them back to the OS
            release_free_memory()
            tick = time.perf_counter()
        bar.close()
        if n_texts == 0:
            raise TextsError(
                f"texts: {text_file} has no texts in chunk {chunk} (texts {start} to {stop}); "
                "the file changed since the workflow was planned, or it is empty. Rerun."
            )
        chunk_meta = _chunk_meta(chunk, n_chunks, chunk_size)
        for s in saes:
            key = (s.family, s.layer)
            meta = shard_metadata(job.model, s, category, n_texts, n_tokens, job.dtype, chunk_meta)
            writers.pop(key).commit(meta)
            if key in pooled_out:
                writers.pop(("pooled", *key)).commit(
                    {**meta, "pooled": "mean over non-BOS stored positions; BOS vector apart"}
                )
        if tokens_out is not None:
            writers.pop("tokens").commit()
        work_s += time.perf_counter() - tick
    finally:
        for writer in writers.values():
            writer.abort()
    if n_chunks is not None:
        tokens = [tokens_out] if tokens_out is not None else []
        for path in [*tokens, *activation_out.values(), *pooled_out.values()]:
            for removed in remove_stale_chunks(path, n_chunks):
                log.info("removed stale shard %s", removed)
    log.info(
        "%s chunk %d: %d texts, %d tokens, %d SAEs in %.1f s (%.0f tokens/s)",
        category,
        chunk,
        n_texts,
        n_tokens,
        len(saes),
        work_s,
        n_tokens / max(work_s, 1e-9),
    )
    return {"n_texts": n_texts, "n_tokens": n_tokens, "load_s": load_s, "work_s": work_s}

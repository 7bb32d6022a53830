"""Content digests of local inputs (model, SAE and text files), so that rules rerun when an input's
*content* changes, whatever its timestamp.

Snakemake reruns a job when an input is newer than its outputs. A file replaced by one with an
older timestamp (``cp -a``, a restored backup, a sync from another machine) is not newer, so the
results would silently belong to the old weights or texts. Rules that read local inputs therefore
take ``content_params(files)`` as a param: a digest per file, and Snakemake's params trigger
reruns the job when one changes.

Hashing a model of a few GB on every ``snakemake`` call would cost seconds, so digests are cached
in a small JSON file keyed by path and ``(size, mtime_ns, ctime_ns, inode, device)``: a file is
read again only when one of those changed. ``ctime`` cannot be set by ``cp -a``/``touch``/rsync,
and changes on every write or rename, so a replaced file is always re-read.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

DIGEST_CHARS = 16  # hex digits kept per file (64 bits): a param, not a security boundary
_CHUNK = 1 << 20


def _stat_key(stat: os.stat_result) -> list[int]:
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev]


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of the file's bytes (hex, first DIGEST_CHARS digits)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()[:DIGEST_CHARS]


class DigestCache:
    """Digests of files, cached on disk by path + stat (one JSON file, written atomically)."""

    def __init__(self, cache_file: str | os.PathLike | None):
        self.cache_file = Path(cache_file) if cache_file else None
        self._entries: dict[str, list] = {}
        self._dirty = False
        if self.cache_file is not None:
            try:
                loaded = json.loads(self.cache_file.read_text())
                if isinstance(loaded, dict):
                    self._entries = loaded
            except (OSError, ValueError):
                pass  # no cache yet, or a damaged one: digests are computed again

    def digest(self, path: str | os.PathLike) -> str:
        """The digest of ``path``'s content ('missing' when it does not exist)."""
        key = os.path.abspath(path)
        try:
            stat = os.stat(key)
        except OSError:
            return "missing"
        entry = self._entries.get(key)
        stat_key = _stat_key(stat)
        if entry is not None and entry[0] == stat_key:
            return entry[1]
        value = file_digest(key)
        self._entries[key] = [stat_key, value]
        self._dirty = True
        return value

    def save(self) -> None:
        """Write the cache if it changed (atomically: concurrent runs never see half a file)."""
        if self.cache_file is None or not self._dirty:
            return
        try:
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".digests.", dir=self.cache_file.parent)
            with os.fdopen(fd, "w") as handle:
                json.dump(self._entries, handle)
            os.replace(tmp, self.cache_file)
            self._dirty = False
        except OSError:
            pass  # a read-only working directory: digests are recomputed next time


def content_params(files: Iterable[str | os.PathLike], cache: DigestCache) -> dict[str, str]:
    """{path: digest} of ``files`` (sorted): a rule param that changes when any content does."""
    out = {str(path): cache.digest(path) for path in sorted({str(f) for f in files})}
    cache.save()
    return out


def directory_files(directory: str | os.PathLike) -> list[str]:
    """The regular, non-hidden files directly in ``directory`` (a local model or SAE directory:
    weights, config and tokenizer files), sorted; [] when it does not exist."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(str(p) for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))

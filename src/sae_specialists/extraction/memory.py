"""Window sizes from a memory budget, so an extraction job's peak memory does not depend on how
dense its SAEs are (``extraction.max_memory_gb``, docs/performance.md).

A window's sparse rows (one per token and active feature, for every SAE of the job) are held
until the window is written; a window of fixed token count therefore needs memory in proportion
to the SAEs' L0. ``WindowBudget`` instead gives each window as many tokens as produce about
``rows`` activation rows, with ``rows`` what the budget leaves after the model and SAEs are
loaded. The first window is a short probe (the density is not known yet); after that the
density is the larger of the run so far and the last window's, so a denser stretch of texts is
followed within one window. Measured with four 24,576-wide SAEs and the default 3 GB: a peak of
2.06-2.10 GB at 92 to 309 active features per token (bench/RESULTS.md).
"""

from __future__ import annotations

import logging
import os
import resource
from dataclasses import dataclass

from .tokenize import WINDOW_TOKENS

log = logging.getLogger(__name__)

# resident bytes per activation row held in a window, fragmentation and the sort/write at the
# window's end included (measured with bench/run_bench.py, bench/RESULTS.md)
BYTES_PER_ROW = 180
# forward pass activations, encode buffers and the Parquet writers' pages, besides the rows
HEADROOM_BYTES = 400 * 2**20
PROBE_TOKENS = 2048
MIN_WINDOW_TOKENS = 256


def resident_bytes() -> int:
    """This process's resident memory now (Linux: /proc/self/statm; else its peak so far)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass
class WindowBudget:
    """Tokens per window so that each window produces about ``rows`` activation rows (None:
    always ``max_tokens``). ``observe`` after each window; ``tokens`` before the next."""

    rows: int | None
    max_tokens: int = WINDOW_TOKENS
    tokens_seen: int = 0
    rows_seen: int = 0
    last_density: float = 0.0

    @classmethod
    def for_memory(
        cls, max_memory_gb: float | None, max_tokens: int = WINDOW_TOKENS
    ) -> WindowBudget:
        """The budget left by ``max_memory_gb`` after what the process holds now (call it once
        the model and SAEs are loaded). None or 0: fixed windows of ``max_tokens``."""
        if not max_memory_gb:
            return cls(None, max_tokens)
        held = resident_bytes()
        spare = max_memory_gb * 1e9 - held - HEADROOM_BYTES
        if spare <= 0:
            log.warning(
                "extraction.max_memory_gb = %s GB is less than the model and SAEs hold already "
                "(%.2f GB resident after loading): windows use the minimum size (%d tokens); "
                "raise extraction.max_memory_gb",
                max_memory_gb,
                held / 1e9,
                MIN_WINDOW_TOKENS,
            )
            return cls(0, max_tokens)
        return cls(int(spare // BYTES_PER_ROW), max_tokens)

    def tokens(self) -> int:
        if self.rows is None:
            return self.max_tokens
        if not self.tokens_seen:
            return min(PROBE_TOKENS, self.max_tokens)
        density = max(self.rows_seen / self.tokens_seen, self.last_density, 1e-9)
        return int(min(self.max_tokens, max(MIN_WINDOW_TOKENS, self.rows / density)))

    def observe(self, n_tokens: int, n_rows: int) -> None:
        if n_tokens:
            self.tokens_seen += n_tokens
            self.rows_seen += n_rows
            self.last_density = n_rows / n_tokens

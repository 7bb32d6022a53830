"""polars' streaming engine, the way every analysis query runs it."""

from __future__ import annotations

import polars as pl

# No common-subplan elimination: it would cache a per-text scan that a query reads twice (e.g.
# a max per group joined back to the rows) in memory whole; reading the files twice keeps
# memory independent of the corpus size.
STREAMING_OPTS = pl.QueryOptFlags(comm_subplan_elim=False)


def collect(frame: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    return frame.lazy().collect(engine="streaming", optimizations=STREAMING_OPTS)

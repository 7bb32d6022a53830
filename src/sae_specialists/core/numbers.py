"""Numbers in the pages' tables: one number of decimals per column (or per table of one unit),
chosen so the largest magnitude shows ``sig`` significant digits, never scientific notation.
A column reads 0.0884, 0.0000, 1.2420 instead of 0.08842, 1.242e-08, 1.242; a value that rounds
to 0 at that precision reads 0.0000 (its sign kept: -0.0000 is below 0). Missing values are
DASH; each page says what its dash means."""

from __future__ import annotations

import math
from collections.abc import Iterable

DASH = "–"
# at least this many decimals for a loss difference in nats: causal.min_effect (0.001 nats by
# default) and a lower bound just above 0 stay readable
NATS_DECIMALS = 4


def decimals_for(
    values: Iterable[float | None], sig: int = 3, least: int = 0, most: int = 6
) -> int:
    """Decimals that give the largest finite, non-zero magnitude of ``values`` ``sig``
    significant digits, between ``least`` and ``most``."""
    finite = [abs(v) for v in values if v is not None and math.isfinite(v) and v != 0]
    if not finite:
        return least
    digits = sig - 1 - math.floor(math.log10(max(finite)))
    return max(least, min(most, digits))


def fixed(value: float | None, decimals: int, signed: bool = False) -> str:
    """``value`` with ``decimals`` decimals (a leading + with ``signed``), DASH when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    return f"{value:{'+' if signed else ''}.{decimals}f}"

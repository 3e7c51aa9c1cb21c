"""Time: the clock the store reads (injectable so tests move time instead of sleeping) and the wire format.

All instants inside the store are integer milliseconds since the Unix epoch (UTC).
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int: ...


class SystemClock:
    """Wall-clock time."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class ManualClock:
    """A clock that only moves when told to; for tests of expiry and windows."""

    def __init__(self, start_ms: int | None = None) -> None:
        self._now = start_ms if start_ms is not None else SystemClock().now_ms()

    def now_ms(self) -> int:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += int(seconds * 1000)


_MS_PER_DAY = 86_400_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
# Days from 1970-01-01 to 10000-01-01: the fast path covers every instant a four-digit year can name.
_LAST_DAY = date(9999, 12, 31).toordinal() - _EPOCH_ORDINAL
_TWO_DIGITS = tuple(f"{n:02d}" for n in range(60))
_MILLIS_AND_ZONE = tuple(f".{n:03d}Z" for n in range(1000))


def iso_ms(instant_ms: int) -> str:
    """ISO 8601 UTC with milliseconds and ``Z``: ``2026-03-11T14:22:00.000Z``.

    Called for every timestamp of every rendered output (two or three per item of a listing), so
    the date part is computed once per day and the rest is integer arithmetic and table lookups
    (time.strftime cost ~1.4 µs a call). Instants outside years 1970-9999 take the slow path.
    """
    day, ms_of_day = divmod(instant_ms, _MS_PER_DAY)
    if not 0 <= day <= _LAST_DAY:
        seconds, millis = divmod(instant_ms, 1000)
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"
    seconds_of_day, millis = divmod(ms_of_day, 1000)
    minutes_of_day, second = divmod(seconds_of_day, 60)
    hour, minute = divmod(minutes_of_day, 60)
    two = _TWO_DIGITS
    return f"{_date_prefix(day)}{two[hour]}:{two[minute]}:{two[second]}{_MILLIS_AND_ZONE[millis]}"


@lru_cache(maxsize=1024)
def _date_prefix(day: int) -> str:
    """``YYYY-MM-DDT`` of the day ``day`` days after 1970-01-01."""
    return date.fromordinal(_EPOCH_ORDINAL + day).isoformat() + "T"


def parse_iso(text: str) -> int | None:
    """Milliseconds for an ISO 8601 date-time that names its zone; ``None`` when it is not one."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None or "T" not in text.upper():
        return None
    return int(parsed.astimezone(UTC).timestamp() * 1000)

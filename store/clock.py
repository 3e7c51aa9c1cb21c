"""Time: the clock the store reads (injectable so tests move time instead of sleeping) and the wire format.

All instants inside the store are integer milliseconds since the Unix epoch (UTC).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
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


def iso_ms(instant_ms: int) -> str:
    """ISO 8601 UTC with milliseconds and ``Z``: ``2026-03-11T14:22:00.000Z``."""
    seconds, millis = divmod(instant_ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def parse_iso(text: str) -> int | None:
    """Milliseconds for an ISO 8601 date-time that names its zone; ``None`` when it is not one."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None or "T" not in text.upper():
        return None
    return int(parsed.astimezone(UTC).timestamp() * 1000)

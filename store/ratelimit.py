"""Rate limits: exact rolling windows kept in the database, so every server process counts together.

Each accepted request is one row in ``rate_events``; a request is allowed when fewer than
``limit`` rows of its bucket fall inside the window. On PostgreSQL a transaction-scoped advisory
lock on the bucket serialises the count-then-insert; on SQLite the write transaction already does.
"""

from __future__ import annotations

from dataclasses import dataclass

from store.db import Tx
from store.errors import StoreError


@dataclass(frozen=True, slots=True)
class RateState:
    limit: int
    remaining: int
    reset_seconds: int


class RateLimited(StoreError):
    def __init__(self, state: RateState) -> None:
        super().__init__(
            "rate_limited",
            f"Rate limit of {state.limit} requests reached. Retry after {state.reset_seconds} seconds.",
            retry_after=state.reset_seconds,
        )
        self.state = state


def consume(tx: Tx, bucket: str, limit: int, window_seconds: int, now_ms: int) -> RateState:
    """Count one request against ``bucket``; raises :class:`RateLimited` when the window is full."""
    window_ms = window_seconds * 1000
    if tx.dialect == "postgresql":
        tx.one("SELECT pg_advisory_xact_lock(hashtext(?)) AS locked", (bucket,))
    row = tx.one(
        "SELECT COUNT(*) AS used, MIN(at) AS oldest FROM rate_events WHERE bucket = ? AND at > ?",
        (bucket, now_ms - window_ms),
    )
    used = int(row["used"]) if row else 0
    oldest = int(row["oldest"]) if row and row["oldest"] is not None else now_ms
    reset_seconds = max(1, -(-(oldest + window_ms - now_ms) // 1000))
    if used >= limit:
        raise RateLimited(RateState(limit, 0, reset_seconds))
    tx.execute("INSERT INTO rate_events (bucket, at) VALUES (?, ?)", (bucket, now_ms))
    return RateState(limit, limit - used - 1, reset_seconds)


def prune(tx: Tx, older_than_ms: int) -> int:
    return tx.execute("DELETE FROM rate_events WHERE at <= ?", (older_than_ms,))

"""A PostgreSQL pool ends with the event loop that used it, also when nobody closed it: the loop's end
never waits for the pool's workers, and no session stays open on the server."""

from __future__ import annotations

import asyncio
import threading

import psycopg
import pytest

from store import ArtifactService
from tests.factories import register
from tests.multiprocess.cluster import eventually

LOOPS = 8
# Each loop is a few statements; the margin is for a machine at load average 10.
DEADLINE_SECONDS = 120.0
SESSION_END_SECONDS = 30.0


def sessions(connection: psycopg.Connection[tuple[int]]) -> int:
    """Other sessions on this test's database (asked on one watching connection: a fresh one per poll
    would see the previous poll's session still ending)."""
    row = connection.execute(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    ).fetchone()
    return int(row[0]) if row else 0


def test_loops_that_end_without_closing_the_service_neither_hang_nor_leave_sessions(
    service: ArtifactService, backend: str
) -> None:
    if not backend.startswith("postgres"):
        pytest.skip("SQLite has no pool")
    database_url = service.settings.database_url

    async def busy() -> None:
        # Concurrent work grows the pool, so the loop may end while a connection is being opened.
        account = await register(service)
        await asyncio.gather(*(service.account(account.id) for _ in range(8)))

    def loops() -> None:
        for _ in range(LOOPS):
            asyncio.run(busy())

    runner = threading.Thread(target=loops, daemon=True)
    runner.start()
    runner.join(DEADLINE_SECONDS)
    assert not runner.is_alive(), "an event loop did not end"
    # Every pool's idle sessions end with its loop. A connection attempt the loop's end cut short may leave
    # its session until the driver lets go of it, so the count is bounded, not zero: before, each loop's
    # idle sessions all stayed open (two or more per loop).
    with psycopg.connect(database_url, autocommit=True) as watching:
        eventually(
            lambda: sessions(watching) < LOOPS // 2, timeout=SESSION_END_SECONDS, what="the pools' sessions to end"
        )

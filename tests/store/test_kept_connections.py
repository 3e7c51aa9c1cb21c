"""PostgreSQL connections kept between units (store/pg_kept.py): the one used last serves the next unit, a
broken or busy one is never handed out, no more sessions than the pool's size, and closing ends them all."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from store import ArtifactService
from store.db import PostgresDatabase, Tx
from store.pg_kept import KeptConnections

pytestmark = pytest.mark.anyio

BACKEND_PID = "SELECT pg_backend_pid() AS pid"
# Backends end and sessions open asynchronously; the margin is for a machine at load average 10.
DEADLINE_SECONDS = 60.0
POOL_SIZE = 3


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"db_pool_size": POOL_SIZE}


@pytest.fixture
def database(service: ArtifactService, backend: str) -> PostgresDatabase:
    if not backend.startswith("postgres"):
        pytest.skip("SQLite has no connections to keep")
    assert isinstance(service.db, PostgresDatabase)
    return service.db


@pytest.fixture
async def kept(database: PostgresDatabase) -> AsyncIterator[KeptConnections]:
    """A list of its own over a pool of one connection, to drive the list directly."""
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        database._url, min_size=1, max_size=1, kwargs={"autocommit": True}, open=False
    )
    await pool.open()
    connections = KeptConnections(pool, idle_seconds=0.05)
    yield connections
    await connections.aclose()
    await pool.close()


async def _pid(database: PostgresDatabase) -> int:
    row = await database.read(lambda tx: tx.one(BACKEND_PID))
    assert row is not None
    return int(row["pid"])


def _sessions(database: PostgresDatabase, *, other_than: int | None = None) -> set[int]:
    """The backends connected to the service's database now (this check's own excepted)."""
    with psycopg.connect(database._url, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return {row[0] for row in rows} - {other_than}


async def _until(condition: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not await condition():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.02)


async def test_consecutive_units_reuse_the_kept_connection(database: PostgresDatabase) -> None:
    first = await _pid(database)
    assert [await _pid(database) for _ in range(5)] == [first] * 5
    await database.write(lambda tx: tx.execute("SELECT 1", last=True))
    assert await _pid(database) == first


async def test_a_connection_whose_backend_was_killed_is_dropped_and_the_next_unit_succeeds(
    database: PostgresDatabase,
) -> None:
    killed = await _pid(database)
    with psycopg.connect(database._url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (killed,))

    async def ended() -> bool:
        return killed not in _sessions(database)

    await _until(ended)
    # Not one unit fails: the kept connection is found ended before a statement is sent on it. Its socket
    # left the loop's watch before it closed: the next connection's socket (often the same number) is read.
    assert await asyncio.wait_for(_pid(database), DEADLINE_SECONDS) != killed
    assert await asyncio.wait_for(database.one("SELECT 1 AS ok"), DEADLINE_SECONDS) == {"ok": 1}


async def test_a_connection_left_in_a_transaction_is_never_handed_out(kept: KeptConnections) -> None:
    async with kept.connection() as connection:
        await connection.execute("BEGIN")
        await connection.execute("CREATE TEMPORARY TABLE left_open (n integer)")
    assert kept.idle == []
    async with kept.connection() as connection:
        assert connection.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE
        cursor = await connection.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'left_open'")
        assert await cursor.fetchone() == (0,)  # rolled back by the pool, not committed


async def test_a_failed_unit_leaves_its_connection_idle_or_drops_it(database: PostgresDatabase) -> None:
    def failing(tx: Tx) -> None:
        tx.execute("SELECT 1")
        tx.one("SELECT 1 / 0 AS x")

    with pytest.raises(psycopg.errors.DivisionByZero):
        await database.write(failing)
    pool = await database._pool()
    assert all(c.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE for c in pool.idle)
    assert await database.one("SELECT 1 AS ok") == {"ok": 1}


async def test_never_more_sessions_than_the_pool_size(database: PostgresDatabase) -> None:
    def slow_pid(tx: Tx) -> int:
        row = tx.one("SELECT pg_backend_pid() AS pid, pg_sleep(0.02) AS slept")
        assert row is not None
        return int(row["pid"])

    pids = await asyncio.wait_for(
        asyncio.gather(*(database.write(slow_pid) for _ in range(12 * POOL_SIZE))), DEADLINE_SECONDS
    )
    assert len(set(pids)) <= POOL_SIZE
    assert len(_sessions(database)) <= POOL_SIZE


async def test_a_unit_waits_for_a_released_connection_and_is_handed_it(kept: KeptConnections) -> None:
    released = asyncio.Event()

    async def holder() -> Any:
        async with kept.connection() as connection:
            await released.wait()
            return connection

    holding = asyncio.ensure_future(holder())
    await asyncio.sleep(0)  # the holder takes the one connection
    with pytest.raises(PoolTimeout):
        async with kept.connection(wait_seconds=0.05):
            pass
    waiting = asyncio.ensure_future(_pid_through(kept))
    released.set()
    held = await holding
    assert await asyncio.wait_for(waiting, DEADLINE_SECONDS) == held.info.backend_pid


async def test_a_waiter_cancelled_as_it_is_handed_a_connection_passes_it_on(kept: KeptConnections) -> None:
    async with kept.connection() as connection:
        cancelled = asyncio.ensure_future(_pid_through(kept))
        after = asyncio.ensure_future(_pid_through(kept))
        await asyncio.sleep(0)  # both wait in the list's queue
        pid = connection.info.backend_pid
    cancelled.cancel()  # handed the connection already, not yet resumed
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert await asyncio.wait_for(after, DEADLINE_SECONDS) == pid


async def test_an_idle_connection_goes_back_to_the_pool(kept: KeptConnections) -> None:
    async with kept.connection():
        pass
    assert len(kept.idle) == 1

    async def returned() -> bool:
        return kept.idle == [] and kept.pool.get_stats()["pool_available"] == 1

    await _until(returned)


async def test_closing_ends_every_session(database: PostgresDatabase) -> None:
    await asyncio.gather(*(_pid(database) for _ in range(2 * POOL_SIZE)))
    assert _sessions(database)
    await database.aclose()

    async def none_left() -> bool:
        return not _sessions(database)

    await _until(none_left)


async def _pid_through(kept: KeptConnections) -> int:
    async with kept.connection() as connection:
        return int(connection.info.backend_pid)

"""PostgreSQL connections kept checked out between units of work: the pool's checkout off the hot path.

psycopg_pool's checkout and return take its asyncio lock, count statistics and hand the connection
through a queue; under upload load that was ~9 % of the server's samples. Here one event loop's pool
sits behind a free-list of connections already checked out of it: a unit takes the one used last
(LIFO, no await), and gives it back to the list when it ends healthy. The pool stays in charge of
everything else: connecting and reconnecting, the outage detection, its maximum size (a kept
connection is still checked out, so it counts), and closing.

What never comes back to the list, but goes back to the pool, which rolls back or replaces it:

* a connection not idle (a transaction left open or failed, a statement in flight) or broken;
* one whose backend ended while it was kept (its socket has the server's goodbye, or the end of the
  stream, to read): found when the next unit takes it, before any statement is sent;
* every connection while a unit waits in the pool for one (the pool hands it to that unit);
* one kept longer than :data:`KEEP_SECONDS` in a row (so the pool's lifetime rules still apply) or
  left idle for :data:`IDLE_SECONDS` (a quiet service holds no more sessions than the pool would).
"""

from __future__ import annotations

import asyncio
import contextlib
import select
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from psycopg import OperationalError, pq

# A connection goes back to the pool after this long checked out (the pool then applies its lifetime).
KEEP_SECONDS = 60.0
# An idle kept connection goes back to the pool after this long unused.
IDLE_SECONDS = 2.0


@dataclass
class Lease:
    """One connection taken from the pool, and when (loop time): it is kept for a while, not forever."""

    connection: Any
    taken_at: float
    idle_since: float = field(default=0.0)


class KeptConnections:
    """One event loop's connections, kept checked out of its pool between units (see module docstring)."""

    def __init__(self, pool: Any, *, keep_seconds: float = KEEP_SECONDS, idle_seconds: float = IDLE_SECONDS) -> None:
        self.pool = pool
        self._keep_seconds = keep_seconds
        self._idle_seconds = idle_seconds
        self._idle: list[Lease] = []
        # Units waiting in the pool for a connection: while there are any, connections go back to the pool.
        self._waiting = 0
        self._sweep_timer: asyncio.TimerHandle | None = None
        self._returns: set[asyncio.Task[None]] = set()
        self._closed = False

    @contextlib.asynccontextmanager
    async def connection(self, wait_seconds: float | None = None) -> AsyncIterator[Any]:
        """A connection for one unit; ``wait_seconds`` at most for one from the pool (None: the pool's timeout)."""
        lease = await self._take(wait_seconds)
        try:
            yield lease.connection
        finally:
            await self._release(lease)

    @property
    def idle(self) -> list[Any]:
        """The connections kept idle now (most recently used last)."""
        return [lease.connection for lease in self._idle]

    async def _take(self, wait_seconds: float | None) -> Lease:
        while self._idle:
            lease = self._idle.pop()
            if _reusable(lease.connection) and _still_connected(lease.connection):
                return lease
            await self.pool.putconn(lease.connection)
        self._waiting += 1
        try:
            connection = await self.pool.getconn(wait_seconds)
        finally:
            self._waiting -= 1
        return Lease(connection, asyncio.get_running_loop().time())

    async def _release(self, lease: Lease) -> None:
        now = asyncio.get_running_loop().time()
        keep = (
            not self._closed
            and not self._waiting
            and now - lease.taken_at < self._keep_seconds
            and _reusable(lease.connection)
        )
        if not keep:
            await self.pool.putconn(lease.connection)
            return
        lease.idle_since = now
        self._idle.append(lease)
        if self._sweep_timer is None:
            self._sweep_timer = asyncio.get_running_loop().call_later(self._idle_seconds, self._sweep)

    def _sweep(self) -> None:
        """Give the connections idle for :data:`IDLE_SECONDS` back to the pool; look again while any is kept."""
        self._sweep_timer = None
        loop = asyncio.get_running_loop()
        stale_before = loop.time() - self._idle_seconds
        stale = [lease for lease in self._idle if lease.idle_since <= stale_before]
        self._idle = [lease for lease in self._idle if lease.idle_since > stale_before]
        if stale:
            self._give_back_later([lease.connection for lease in stale])
        if self._idle:
            due = min(lease.idle_since for lease in self._idle) + self._idle_seconds
            self._sweep_timer = loop.call_at(due, self._sweep)

    def _give_back_later(self, connections: list[Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._give_back(connections))
        self._returns.add(task)
        task.add_done_callback(self._returns.discard)

    async def _give_back(self, connections: list[Any]) -> None:
        for connection in connections:
            await self.pool.putconn(connection)

    async def aclose(self) -> None:
        """Give every kept connection back to the pool (before the pool closes); keep none from now on."""
        self._closed = True
        if self._sweep_timer is not None:
            self._sweep_timer.cancel()
            self._sweep_timer = None
        idle, self._idle = self._idle, []
        await self._give_back([lease.connection for lease in idle])
        if self._returns:
            await asyncio.gather(*self._returns, return_exceptions=True)

    def abandon(self) -> list[Any]:
        """For closing without the loop: stop keeping, and the idle connections for the caller to end."""
        self._closed = True
        if self._sweep_timer is not None:
            self._sweep_timer.cancel()
            self._sweep_timer = None
        idle, self._idle = self._idle, []
        return [lease.connection for lease in idle]


def _reusable(connection: Any) -> bool:
    """Open, idle, outside a transaction and out of pipeline mode: what the pool hands out."""
    pgconn = connection.pgconn
    return bool(
        pgconn.status == pq.ConnStatus.OK
        and pgconn.transaction_status == pq.TransactionStatus.IDLE
        and pgconn.pipeline_status == pq.PipelineStatus.OFF
    )


def _still_connected(connection: Any) -> bool:
    """False when the backend has ended meanwhile. An idle connection's socket has nothing to read unless
    the server spoke unasked (a notice, or its goodbye before closing the stream): then libpq reads what is
    there, and finds the end of the stream if it came. One poll of the socket otherwise."""
    pgconn = connection.pgconn
    try:
        while _readable(pgconn.socket):
            pgconn.consume_input()
            if pgconn.status != pq.ConnStatus.OK or pgconn.is_busy():
                return False
    except (OperationalError, OSError, ValueError):
        return False
    return True


def _readable(fd: int) -> bool:
    readable, _, _ = select.select([fd], [], [], 0)
    return bool(readable)

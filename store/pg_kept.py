"""PostgreSQL connections kept checked out between units of work: the pool's checkout off the hot path.

psycopg_pool's checkout and return take its asyncio lock, count statistics and hand the connection
through a queue; under upload load that was ~9 % of the server's samples. Here one event loop's pool
sits behind a free-list of connections already checked out of it: a unit takes the one used last
(LIFO, no await), and gives it back to the list when it ends healthy. The pool stays in charge of
everything else: connecting and reconnecting, the outage detection, its maximum size (a kept
connection is still checked out, so it counts), and closing.

What never comes back to the list, but goes back to the pool, which rolls back or replaces it:

* a connection not idle (a transaction left open or failed, a statement in flight) or broken;
* one whose backend ended while it was kept (the server's goodbye, or the end of the stream, waits on
  its socket): found when the next unit takes it, before any statement is sent, and closed;
* every connection while a unit waits in the pool for one (the pool hands it to that unit);
* one kept longer than :data:`KEEP_SECONDS` in a row (so the pool's lifetime rules still apply) or
  left idle for :data:`IDLE_SECONDS` (a quiet service holds no more sessions than the pool would).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from psycopg import OperationalError, pq
from psycopg_pool import PoolTimeout

from store.pg_wire import socket_has_input

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

    def __init__(
        self,
        pool: Any,
        *,
        before_return: Callable[[Any], None] = lambda connection: None,
        keep_seconds: float = KEEP_SECONDS,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        self.pool = pool
        # Called with a connection before it goes back to the pool or is closed here.
        self._before_return = before_return
        self._keep_seconds = keep_seconds
        self._idle_seconds = idle_seconds
        self._idle: list[Lease] = []
        # Connections checked out of the pool by this list (in use or idle); never more than the pool's size.
        self._held = 0
        # Units waiting for a connection once all of the pool's are held here: handed one as it is released
        # (None: a connection went back to the pool, take one from there).
        self._waiters: collections.deque[asyncio.Future[Lease | None]] = collections.deque()
        # Units waiting in the pool itself (it is connecting): a connection released meanwhile goes to them.
        self._waiting_in_pool = 0
        self._sweep_timer: asyncio.TimerHandle | None = None
        self._returns: set[asyncio.Task[None]] = set()
        self._closed = False

    @contextlib.asynccontextmanager
    async def connection(self, wait_seconds: float | None = None) -> AsyncIterator[Any]:
        """A connection for one unit; ``wait_seconds`` at most for one (None: the pool's timeout)."""
        lease = await self._take(self.pool.timeout if wait_seconds is None else wait_seconds)
        try:
            yield lease.connection
        finally:
            await self._release(lease)

    @property
    def idle(self) -> list[Any]:
        """The connections kept idle now (most recently used last)."""
        return [lease.connection for lease in self._idle]

    async def _take(self, wait_seconds: float) -> Lease:
        deadline = asyncio.get_running_loop().time() + wait_seconds
        while True:
            while self._idle:
                lease = self._idle.pop()
                if not _reusable(lease.connection):
                    await self._give_back([lease.connection])
                elif _spoken_to(lease.connection):
                    self._before_return(lease.connection)
                    await lease.connection.close()  # the pool replaces a closed connection
                    await self._give_back([lease.connection])
                else:
                    return lease
            if self._closed or self._held < self.pool.max_size:
                return await self._from_pool(deadline)
            handed = await self._handed_one(deadline)
            if handed is not None:
                return handed

    async def _from_pool(self, deadline: float) -> Lease:
        loop = asyncio.get_running_loop()
        self._held += 1
        self._waiting_in_pool += 1
        try:
            connection = await self.pool.getconn(max(0.0, deadline - loop.time()))
        except BaseException:
            self._held -= 1
            self._wake_one_for_the_pool()
            raise
        finally:
            self._waiting_in_pool -= 1
        return Lease(connection, loop.time())

    async def _handed_one(self, deadline: float) -> Lease | None:
        """Wait for a unit to release a connection; None when one went back to the pool instead."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Lease | None] = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_at(deadline, _time_out, waiter)
        try:
            return await waiter
        except BaseException:
            # A waiter that timed out or was cancelled before its turn leaves the queue (one handed a
            # connection was taken off it already). Membership first: a failed remove formats its repr.
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            # Cancelled just after being handed a connection: hand it on, never lose it.
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                handed = waiter.result()
                if handed is not None:
                    await self._release(handed)
                else:
                    self._wake_one_for_the_pool()
            raise
        finally:
            timer.cancel()

    async def _release(self, lease: Lease) -> None:
        now = asyncio.get_running_loop().time()
        healthy = not self._closed and now - lease.taken_at < self._keep_seconds and _reusable(lease.connection)
        if healthy and self._hand_to_a_waiter(lease):
            return
        if not healthy or self._waiting_in_pool:
            await self._give_back([lease.connection])
            return
        lease.idle_since = now
        self._idle.append(lease)
        if self._sweep_timer is None:
            self._sweep_timer = asyncio.get_running_loop().call_later(self._idle_seconds, self._sweep)

    def _hand_to_a_waiter(self, handed: Lease | None) -> bool:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(handed)
                return True
        return False

    def _wake_one_for_the_pool(self) -> None:
        """A connection went back to the pool: one waiting unit may take one from there now."""
        self._hand_to_a_waiter(None)

    def _sweep(self) -> None:
        """Give the connections idle for :data:`IDLE_SECONDS` back to the pool; look again while any is kept."""
        self._sweep_timer = None
        loop = asyncio.get_running_loop()
        stale_before = loop.time() - self._idle_seconds
        stale = [lease for lease in self._idle if lease.idle_since <= stale_before]
        self._idle = [lease for lease in self._idle if lease.idle_since > stale_before]
        if stale:
            task = loop.create_task(self._give_back([lease.connection for lease in stale]))
            self._returns.add(task)
            task.add_done_callback(self._returns.discard)
        if self._idle:
            due = min(lease.idle_since for lease in self._idle) + self._idle_seconds
            self._sweep_timer = loop.call_at(due, self._sweep)

    async def _give_back(self, connections: list[Any]) -> None:
        for connection in connections:
            self._held -= 1
            self._before_return(connection)
            try:
                await self.pool.putconn(connection)
            finally:
                self._wake_one_for_the_pool()

    async def aclose(self) -> None:
        """Give every kept connection back to the pool (before the pool closes); keep none from now on."""
        await self._give_back(self.abandon())
        if self._returns:
            await asyncio.gather(*self._returns, return_exceptions=True)

    def abandon(self) -> list[Any]:
        """Stop keeping connections; the idle ones, for the caller to give back or end."""
        self._closed = True
        if self._sweep_timer is not None:
            self._sweep_timer.cancel()
            self._sweep_timer = None
        idle, self._idle = self._idle, []
        return [lease.connection for lease in idle]


def _time_out(waiter: asyncio.Future[Lease | None]) -> None:
    if not waiter.done():
        waiter.set_exception(PoolTimeout("no PostgreSQL connection was released in time"))


def _reusable(connection: Any) -> bool:
    """Open, idle, outside a transaction and out of pipeline mode: what the pool hands out."""
    pgconn = connection.pgconn
    return bool(
        pgconn.status == pq.ConnStatus.OK
        and pgconn.transaction_status == pq.TransactionStatus.IDLE
        and pgconn.pipeline_status == pq.PipelineStatus.OFF
    )


def _spoken_to(connection: Any) -> bool:
    """True when the server sent something to an idle connection: unasked, that is its goodbye (a FATAL
    error before the backend ends, on shutdown or when terminated), so the connection is not used again.
    One poll of the socket, no system call more on the usual path."""
    try:
        return socket_has_input(connection.pgconn.socket)
    except (OperationalError, OSError, ValueError):
        return True

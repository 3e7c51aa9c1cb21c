"""Database access: one small door over the raw drivers (sqlite3, psycopg 3), plus schema migrations.

Why raw drivers and not an ORM at run time: the calibration in DESIGN.md shows a primary-key
lookup through SQLAlchemy Core costs ~10x the raw driver on this hardware, and the hot path of
this service is exactly such lookups. SQL is written once, with ``?`` placeholders, in the
subset both SQLite (>= 3.35) and PostgreSQL accept; :class:`Tx` rewrites placeholders for psycopg.
The schema is declared once, as the SQLModel models of :mod:`store.models`, and Alembic migrates
to it; the raw SQL takes its column lists from those models, and only migrations run SQL through SQLAlchemy.

Concurrency model:

* SQLite: reads run inline on the event loop on one connection (WAL: readers never wait for the
  writer, and a lookup costs tens of microseconds). Writes run one at a time, each in
  ``BEGIN IMMEDIATE`` so the whole transaction holds the write lock from its first statement:
  inline on the loop when the file's lock is free at once (a write transaction costs about what a
  thread hop does), otherwise in the writer thread, which waits for the lock there; so another
  process holding the file's lock never blocks the loop. Other processes on the same file
  serialise through the same lock. WAL checkpoints run in a thread of their own
  (:mod:`store.sqlite_checkpoints`), never inside a write's COMMIT; when one asks for a quiet moment
  to bound the WAL, the loop's writes await its gate instead.
* PostgreSQL: every unit of work takes a connection of psycopg's ``AsyncConnectionPool``, kept checked
  out between units (:mod:`store.pg_kept`: no pool checkout on the hot path), and runs on the event
  loop: the unit stays a plain function of a ``Tx`` (one rule, written once for both databases), run
  in a greenlet whose statements the loop awaits (:mod:`store.greenbridge`), so no query pays a
  worker-thread hop. Writes that charge an account lock its row with
  ``SELECT … FOR UPDATE`` (:meth:`Tx.lock_account`). Statements are prepared on first use, except
  the few whose best plan depends on their values (``Tx.all(…, prepare=False)``), and sent through
  libpq directly (:mod:`store.pg_wire`), in as few round trips as the unit allows: BEGIN with the
  first statement, deferred writes (:meth:`Tx.defer`) with the next one, the last statement
  (``last=True``) with the COMMIT.

Driver exceptions that mean "the database is not reachable" become ``service_unavailable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import anyio
import anyio.to_thread

from store.errors import StoreError, service_unavailable
from store.greenbridge import await_bridged, run_bridged
from store.models import AccountRow, column_list
from store.pg_kept import KeptConnections
from store.pg_wire import Wire
from store.read_batches import ReadBatcher
from store.sqlite_checkpoints import LIMIT_WAL_FILE, WalCheckpointer, WriteGate

T = TypeVar("T")
Row = dict[str, Any]
Params = Sequence[Any]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# How long a request waits for a PostgreSQL connection while the database is known to be unreachable.
UNREACHABLE_WAIT_SECONDS = 1.0
# How long a request waits for a PostgreSQL connection otherwise (a first connect included): bounded, so
# a command line call against an unreachable database ends with service_unavailable, never a hang.
CONNECTION_WAIT_SECONDS = 10.0
# How long closing a pool waits for its workers (a connection attempt in flight ends by connect_timeout).
POOL_CLOSE_SECONDS = 5.0


class Tx(Protocol):
    """One transaction (or one read) on one connection."""

    dialect: str

    def one(self, sql: str, params: Params = (), *, last: bool = False, required: bool = False) -> Row | None:
        """The first row, or None. ``last=True`` marks the unit's final statement: the transaction
        commits with it (on PostgreSQL the COMMIT leaves in the same round trip), so the unit runs
        nothing after it, and raising afterwards does not undo it. ``required=True``: a statement that
        must answer a row (at most one; ``UPDATE … RETURNING`` or a ``SELECT``); when it answers none,
        :class:`RowMissing` is raised and nothing of the unit commits, even with ``last=True`` (on
        PostgreSQL the statement then fails inside the database, so the COMMIT sent with it rolls back)."""
        ...

    def all(self, sql: str, params: Params = (), *, prepare: bool = True) -> list[Row]:
        """Every row. ``prepare=False`` plans the statement for these values at each run: for a
        statement whose best plan depends on the values (an account with 100 outputs or with
        100,000), which one prepared plan for all values cannot follow (PostgreSQL only)."""
        ...

    def execute(self, sql: str, params: Params = (), *, last: bool = False) -> int:
        """Run a statement; returns the number of rows it changed (``last`` as for :meth:`one`)."""
        ...

    def defer(self, sql: str, params: Params = ()) -> None:
        """A write whose answer the unit does not read. PostgreSQL sends it with the unit's next
        statement or its COMMIT (one round trip fewer); its failure fails the unit there."""
        ...

    def lock_account(self, account_id: str) -> Row | None:
        """The account row, locked against other writers until the transaction ends."""
        ...


class Database(Protocol):
    dialect: str

    async def read(self, work: Callable[[Tx], T]) -> T:
        """Reads on the hot path: each statement on its own (no transaction round trips)."""
        ...

    async def write(self, work: Callable[[Tx], T]) -> T:
        """One transaction; commits when ``work`` returns, rolls back when it raises."""
        ...

    async def one(self, sql: str, params: Params = ()) -> Row | None:
        """One read statement on its own, for the hottest reads: no unit of work around it (on
        PostgreSQL a native coroutine on a pooled connection, no greenlet)."""
        ...

    def write_sync(self, work: Callable[[Tx], T]) -> T: ...

    def read_sync(self, work: Callable[[Tx], T]) -> T:
        """Reads that must agree with each other: every statement sees one snapshot."""
        ...

    async def ping(self) -> None: ...

    async def aclose(self) -> None:
        """Close inside the event loop that used the database (an async pool's tasks end on their loop)."""
        ...

    def close(self) -> None: ...


ACCOUNT_COLUMNS = column_list(AccountRow)


class RowMissing(Exception):
    """A statement sent with ``required=True`` answered no row; its unit committed nothing."""


# --- SQLite ----------------------------------------------------------------------------------


class _SqliteTx:
    dialect = "sqlite"

    def __init__(
        self, connection: sqlite3.Connection, names: ColumnNames | None = None, *, in_transaction: bool = False
    ) -> None:
        self._connection = connection
        # Pass the database's own: a fresh one learns each statement's names again.
        self._names = names if names is not None else ColumnNames()
        self._in_transaction = in_transaction
        self.committed = False

    def one(self, sql: str, params: Params = (), *, last: bool = False, required: bool = False) -> Row | None:
        self._check_open()
        cursor = self._connection.execute(sql, params)
        row = cursor.fetchone()
        answer = None if row is None else dict(zip(self._names.of(sql, cursor), row, strict=True))
        if required and answer is None:
            raise RowMissing  # before any COMMIT: the unit's transaction rolls back
        if last:
            self._commit_now()
        return answer

    def all(self, sql: str, params: Params = (), *, prepare: bool = True) -> list[Row]:
        cursor = self._connection.execute(sql, params)
        rows = cursor.fetchall()
        names = self._names.of(sql, cursor) if rows else ()
        return [dict(zip(names, row, strict=True)) for row in rows]

    def execute(self, sql: str, params: Params = (), *, last: bool = False) -> int:
        self._check_open()
        count = self._connection.execute(sql, params).rowcount
        if last:
            self._commit_now()
        return count

    def defer(self, sql: str, params: Params = ()) -> None:
        self._check_open()
        self._connection.execute(sql, params)

    def _check_open(self) -> None:
        if self.committed:
            raise RuntimeError("a statement after the unit's last one (Tx.one/execute with last=True)")

    def _commit_now(self) -> None:
        """The unit's last statement ran: commit now, as PostgreSQL does with it (same rule on both)."""
        if self._in_transaction and not self.committed:
            self._connection.execute("COMMIT")
            self.committed = True

    def lock_account(self, account_id: str) -> Row | None:
        # BEGIN IMMEDIATE already holds the database's write lock for the whole transaction.
        return self.one(f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?", (account_id,))


class ColumnNames:
    """The column names of each statement's rows, read from the cursor once per statement text:
    building them from ``cursor.description`` for every row cost ~3 µs a row (100-row listings)."""

    def __init__(self) -> None:
        self._by_sql: dict[str, tuple[str, ...]] = {}

    def of(self, sql: str, cursor: sqlite3.Cursor) -> tuple[str, ...]:
        names = self._by_sql.get(sql)
        if names is None:
            names = self._by_sql[sql] = tuple(description[0] for description in cursor.description)
        return names


def _open_sqlite(path: str, busy_timeout_ms: int = 10_000) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000)
    connection.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    _enable_wal(connection)
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


def _open_sqlite_writer(path: str, busy_timeout_ms: int = 10_000) -> sqlite3.Connection:
    """A connection for write transactions; its commits never checkpoint (:mod:`store.sqlite_checkpoints`)."""
    connection = _open_sqlite(path, busy_timeout_ms)
    connection.execute("PRAGMA wal_autocheckpoint=0")
    connection.execute(LIMIT_WAL_FILE)
    return connection


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY or "locked" in str(exc)


def _enable_wal(connection: sqlite3.Connection, wait_seconds: float = 10.0) -> None:
    """Switch the file to WAL (a lasting property of the file; a no-op once done).

    On a new file the switch needs the file to itself, and while another process holds its write
    lock (e.g. migrating the same new database at start-up) SQLite refuses at once with "database
    is locked" instead of waiting (waiting could deadlock), so wait here, as busy_timeout would.
    """
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class SqliteDatabase:
    """SQLite file database: inline reads on the loop, writes inline when the lock is free, else on
    one writer thread (see module docstring)."""

    dialect = "sqlite"

    def __init__(self, path: str) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._reader = _open_sqlite(path)
        self._writer = _open_sqlite_writer(path)
        # The loop's write connection never waits for the lock: busy, the write goes to the thread.
        self._inline_writer = _open_sqlite_writer(path, busy_timeout_ms=0)
        # Held by whichever of this process's write connections is in a transaction.
        self._write_lock = threading.Lock()
        self._write_limiter = anyio.CapacityLimiter(1)
        self._gate = WriteGate(self._write_lock)
        self._checkpointer = WalCheckpointer(functools.partial(_open_sqlite, path), gate=self._gate)
        self._names = ColumnNames()

    async def read(self, work: Callable[[Tx], T]) -> T:
        with _translate_sqlite_errors():
            return work(_SqliteTx(self._reader, self._names))

    async def one(self, sql: str, params: Params = ()) -> Row | None:
        with _translate_sqlite_errors():
            return _SqliteTx(self._reader, self._names).one(sql, params)

    def read_sync(self, work: Callable[[Tx], T]) -> T:
        with _translate_sqlite_errors():
            self._reader.execute("BEGIN")
            try:
                return work(_SqliteTx(self._reader, self._names))
            finally:
                self._reader.execute("COMMIT")

    async def write(self, work: Callable[[Tx], T]) -> T:
        while True:
            quiet_moments = self._gate.quiet_moments
            if self._gate.shut:
                # A checkpoint's quiet moment (store/sqlite_checkpoints.py): wait on the loop, not in the thread.
                await self._gate.opened()
                continue
            if self._write_lock.acquire(blocking=False):
                try:
                    if self._begin_inline():
                        return self._run_transaction(self._inline_writer, work)
                finally:
                    self._write_lock.release()
                break
            if not self._gate.held_lock_since(quiet_moments):
                break
        return await anyio.to_thread.run_sync(self.write_sync, work, limiter=self._write_limiter)

    def _begin_inline(self) -> bool:
        """Open a write transaction on the loop's connection; False when another process holds the lock."""
        try:
            with _translate_sqlite_errors(busy_is_error=False):
                self._inline_writer.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                return False
            raise
        return True

    def write_sync(self, work: Callable[[Tx], T]) -> T:
        with self._write_lock, _translate_sqlite_errors():
            self._writer.execute("BEGIN IMMEDIATE")
            return self._run_transaction(self._writer, work)

    def _run_transaction(self, connection: sqlite3.Connection, work: Callable[[Tx], T]) -> T:
        """Run ``work`` in the transaction just begun on ``connection``; commit, or roll back if it raises
        (unless its last statement committed it already)."""
        tx = _SqliteTx(connection, self._names, in_transaction=True)
        with _translate_sqlite_errors():
            try:
                result = work(tx)
            except BaseException:
                if not tx.committed:
                    connection.execute("ROLLBACK")
                else:
                    self._checkpointer.committed()
                raise
            if not tx.committed:
                connection.execute("COMMIT")
        self._checkpointer.committed()
        return result

    async def ping(self) -> None:
        await self.read(lambda tx: tx.one("SELECT 1 AS ok"))

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        self._checkpointer.close()
        self._reader.close()
        self._writer.close()
        self._inline_writer.close()


@contextlib.contextmanager
def _translate_sqlite_errors(*, busy_is_error: bool = True) -> Iterator[None]:
    try:
        yield
    except sqlite3.OperationalError as exc:
        if not busy_is_error and _is_busy(exc):
            raise
        if "locked" in str(exc) or "unable to open" in str(exc) or "disk I/O" in str(exc):
            raise service_unavailable("database") from exc
        raise


# --- PostgreSQL ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=512)
def _psycopg_sql(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")


@functools.lru_cache(maxsize=512)
def _numbered_sql(sql: str) -> str:
    """``?`` placeholders as libpq's ``$1``, ``$2``, … (the store's SQL has no ``?`` anywhere else)."""
    pieces = sql.split("?")
    return pieces[0] + "".join(f"${number}{piece}" for number, piece in enumerate(pieces[1:], start=1))


@functools.lru_cache(maxsize=64)
def _required_sql(sql: str) -> str:
    """``sql`` made to fail inside PostgreSQL when it answers no row, so a COMMIT pipelined after it rolls
    the transaction back (a check in Python would come a round trip too late). The guard names no column
    of the answer, so it is a one-time filter evaluated once whatever the answer holds, and counting no
    row divides by zero (SQLSTATE 22012, read back as :class:`RowMissing`)."""
    return f"WITH answer AS ({sql}) SELECT * FROM answer WHERE 1 / (SELECT count(*) FROM answer) >= 0"


class _PostgresTx:
    dialect = "postgresql"

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def one(self, sql: str, params: Params = (), *, last: bool = False, required: bool = False) -> Row | None:
        cursor = self._connection.execute(_psycopg_sql(sql), params, prepare=True)
        row: Row | None = cursor.fetchone()
        if required and row is None:
            raise RowMissing  # the connection's transaction block rolls back
        return row

    def all(self, sql: str, params: Params = (), *, prepare: bool = True) -> list[Row]:
        cursor = self._connection.execute(_psycopg_sql(sql), params, prepare=prepare)
        rows: list[Row] = cursor.fetchall()
        return rows

    def execute(self, sql: str, params: Params = (), *, last: bool = False) -> int:
        cursor = self._connection.execute(_psycopg_sql(sql), params, prepare=True)
        count: int = cursor.rowcount
        return count

    def defer(self, sql: str, params: Params = ()) -> None:
        self.execute(sql, params)

    def lock_account(self, account_id: str) -> Row | None:
        return self.one(f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ? FOR UPDATE", (account_id,))


class _BridgedPostgresTx:
    """A :class:`Tx` over a pooled connection's :class:`~store.pg_wire.Wire`, for work run by :func:`run_bridged`."""

    dialect = "postgresql"

    def __init__(self, wire: Wire, *, in_transaction: bool) -> None:
        self._wire = wire
        self._in_transaction = in_transaction
        self._committed = False

    def one(self, sql: str, params: Params = (), *, last: bool = False, required: bool = False) -> Row | None:
        self._check_open(last)
        if not required:
            return await_bridged(self._wire.one(_numbered_sql(sql), params, last=last))
        from psycopg.errors import DivisionByZero

        try:
            row = await_bridged(self._wire.one(_required_sql(_numbered_sql(sql)), params, last=last))
        except DivisionByZero:
            raise RowMissing from None
        if row is None:
            raise RowMissing
        return row

    def all(self, sql: str, params: Params = (), *, prepare: bool = True) -> list[Row]:
        self._check_open(False)
        return await_bridged(self._wire.all(_numbered_sql(sql), params, prepare=prepare))

    def execute(self, sql: str, params: Params = (), *, last: bool = False) -> int:
        self._check_open(last)
        return await_bridged(self._wire.execute(_numbered_sql(sql), params, last=last))

    def _check_open(self, last: bool) -> None:
        if self._committed:
            raise RuntimeError("a statement after the unit's last one (Tx.one/execute with last=True)")
        self._committed = last and self._in_transaction

    def defer(self, sql: str, params: Params = ()) -> None:
        self._check_open(False)
        if not self._in_transaction:  # nothing would carry it: a read unit's write runs at once
            self.execute(sql, params)
            return
        self._wire.defer(_numbered_sql(sql), params)

    def lock_account(self, account_id: str) -> Row | None:
        return self.one(_LOCK_ACCOUNT_SQL, (account_id,))


_WIRE_ATTRIBUTE = "_outputlayer_wire"
_LOCK_ACCOUNT_SQL = f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ? FOR UPDATE"


class PostgresDatabase:
    """PostgreSQL through psycopg 3: an async connection pool on the event loop for the service's
    work (no worker thread per query), and a plain connection for the few synchronous callers
    (command line, invariant check)."""

    dialect = "postgresql"

    def __init__(self, url: str, pool_size: int) -> None:
        self._url = url
        self._pool_size = pool_size
        # Set when the pool's last attempt to connect failed, cleared by the next success: while the
        # database is known to be unreachable a request waits only briefly for a connection, so an
        # outage answers 503 at once instead of after the full pool timeout on every request.
        self._unreachable = False
        # An async pool belongs to the event loop that opened it; one process normally runs one
        # loop, but an embedding application (or a test) may drive the service from several. Each
        # pool sits behind the connections its loop keeps checked out between units (store/pg_kept.py).
        self._pools: dict[asyncio.AbstractEventLoop, KeptConnections] = {}
        self._batchers: dict[asyncio.AbstractEventLoop, ReadBatcher] = {}
        # One task per pool that closes it when its loop ends without aclose() (see _close_when_the_loop_ends).
        self._guards: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}

    async def _connected(self, connection: Any) -> None:
        self._unreachable = False

    def _unreachable_now(self, pool: Any) -> None:
        self._unreachable = True

    async def _pool(self) -> KeptConnections:
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool

        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is not None:
            return pool
        self._forget_ended_loops()
        fresh = AsyncConnectionPool(
            conninfo=self._url,
            min_size=1,
            max_size=self._pool_size,
            # Autocommit: a hot-path read is one round trip; writes open their transaction explicitly.
            # prepare_threshold=0: every statement is prepared on first use (the hot path repeats a
            # handful of statements, so parsing and planning them once per connection pays at once).
            kwargs={"row_factory": dict_row, "connect_timeout": 5, "autocommit": True, "prepare_threshold": 0},
            timeout=CONNECTION_WAIT_SECONDS,
            open=False,
            reconnect_timeout=0,
            configure=self._connected,
            reconnect_failed=self._unreachable_now,
        )
        await fresh.open(wait=False)
        pool = self._pools.setdefault(loop, KeptConnections(fresh, before_return=_unwatch))
        if pool.pool is not fresh:
            await fresh.close()
            return pool
        self._guards[loop] = loop.create_task(_close_when_the_loop_ends(pool))
        return pool

    def _forget_ended_loops(self) -> None:
        """Drop what belonged to loops that have ended (their pools closed with them)."""
        for ended in [loop for loop in self._pools if loop.is_closed()]:
            del self._pools[ended]
            self._guards.pop(ended, None)
            self._batchers.pop(ended, None)

    async def read(self, work: Callable[[Tx], T]) -> T:
        return await self._run(work, transaction=False)

    async def one(self, sql: str, params: Params = ()) -> Row | None:
        """Sent with the other hot reads of this loop iteration, in one pipeline (store/read_batches.py)."""
        loop = asyncio.get_running_loop()
        batcher = self._batchers.get(loop)
        if batcher is None:
            batcher = self._batchers[loop] = ReadBatcher(self._send_batch, self._send_one)
        return await batcher.one(_numbered_sql(sql), params)

    async def _send_batch(self, statements: list[tuple[str, Params]]) -> list[Row | None]:
        if len(statements) == 1:
            return [await self._send_one(statements[0])]
        async with self._connection() as connection:
            return await self._wire(connection).batch(statements)

    async def _send_one(self, statement: tuple[str, Params]) -> Row | None:
        async with self._connection() as connection:
            return await self._wire(connection).one(*statement)

    def _wire(self, connection: Any) -> Wire:
        """The connection's wire (its prepared statements), made on its first checkout. It is kept on the
        connection itself, so the two go together when the pool drops the connection."""
        wire: Wire | None = getattr(connection, _WIRE_ATTRIBUTE, None)
        if wire is None:
            wire = Wire(connection)
            setattr(connection, _WIRE_ATTRIBUTE, wire)
        return wire

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        """A pooled connection; an unreachable database is ``service_unavailable``."""
        import psycopg
        from psycopg_pool import PoolTimeout

        try:
            pool = await self._pool()
            wait = UNREACHABLE_WAIT_SECONDS if self._unreachable else None
            async with pool.connection(wait_seconds=wait) as connection:
                yield connection
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise service_unavailable("database") from exc

    async def write(self, work: Callable[[Tx], T]) -> T:
        return await self._run(work, transaction=True)

    async def _run(self, work: Callable[[Tx], T], transaction: bool) -> T:
        import psycopg
        from psycopg_pool import PoolTimeout

        try:
            pool = await self._pool()
            wait = UNREACHABLE_WAIT_SECONDS if self._unreachable else None
            async with pool.connection(wait_seconds=wait) as connection:
                wire = self._wire(connection)
                if not transaction:
                    return await run_bridged(work, _BridgedPostgresTx(wire, in_transaction=False))
                return await _in_transaction(wire, work)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise service_unavailable("database") from exc

    def read_sync(self, work: Callable[[Tx], T]) -> T:
        return self._run_sync(work, "REPEATABLE READ READ ONLY")

    def write_sync(self, work: Callable[[Tx], T]) -> T:
        return self._run_sync(work, None)

    def _run_sync(self, work: Callable[[Tx], T], isolation: str | None) -> T:
        import psycopg
        from psycopg.rows import dict_row

        try:
            connection = psycopg.connect(self._url, row_factory=dict_row, connect_timeout=5, autocommit=True)
            with connection, connection.transaction():
                if isolation is not None:
                    connection.execute(f"SET TRANSACTION ISOLATION LEVEL {isolation}")
                return work(_PostgresTx(connection))
        except psycopg.OperationalError as exc:
            raise service_unavailable("database") from exc

    async def ping(self) -> None:
        await self.read(lambda tx: tx.one("SELECT 1 AS ok"))

    async def aclose(self) -> None:
        """Close this loop's pool by awaiting its close here, so its workers and any connection attempt
        in flight end on the loop that runs them; pools of other loops close as :meth:`close` does."""
        loop = asyncio.get_running_loop()
        batcher = self._batchers.pop(loop, None)
        if batcher is not None:
            await batcher.drain()
        pool = self._pools.pop(loop, None)
        if pool is not None:
            await pool.aclose()
            await pool.pool.close(timeout=POOL_CLOSE_SECONDS)
        guard = self._guards.pop(loop, None)
        if guard is not None:
            guard.cancel()
            await asyncio.gather(guard, return_exceptions=True)
        self.close()

    def close(self) -> None:
        self._batchers.clear()
        self._guards.clear()
        for loop, pool in self._pools.items():
            _close_pool(loop, pool)
        self._pools.clear()


async def _in_transaction(wire: Wire, work: Callable[[Tx], T]) -> T:
    """Run ``work`` in one transaction on ``wire``: BEGIN leaves with its first statement, COMMIT when it
    returns, ROLLBACK when it raises (a connection that cannot even roll back is closed by the pool)."""
    import psycopg

    wire.begin()
    try:
        result = await run_bridged(work, _BridgedPostgresTx(wire, in_transaction=True))
    except BaseException:
        with contextlib.suppress(psycopg.Error):
            await wire.rollback()
        raise
    await wire.commit()
    return result


async def _close_when_the_loop_ends(kept: KeptConnections) -> None:
    """Close ``pool`` when this task is cancelled: ``asyncio.run`` (and every runner built like it) cancels
    each task of its loop once at the end and waits for all of them. psycopg_pool's workers swallow a
    cancellation that arrives during a connection attempt and go back to waiting for work, so a loop ended
    without :meth:`PostgresDatabase.aclose` waited for them forever; closing the pool here hands each
    worker the stop it is waiting for."""
    try:
        await asyncio.Event().wait()
    finally:
        pool = kept.pool
        idle = [*kept.abandon(), *getattr(pool, "_pool", ())]
        try:
            await pool.close(timeout=POOL_CLOSE_SECONDS)
        finally:
            # The loop's end cancelled the workers too, and close() stops at waiting for them before it
            # reaches the idle connections: end those sessions here.
            _finish(idle)


def _close_pool(loop: asyncio.AbstractEventLoop, kept: KeptConnections) -> None:
    """Close an async pool from synchronous code, wherever its event loop stands."""
    pool = kept.pool
    if loop.is_closed():
        _finish(kept.abandon())
        _drop_connections(pool)
        return
    if not loop.is_running():
        loop.run_until_complete(_close_kept(kept))
        return
    try:
        here = asyncio.get_running_loop()
    except RuntimeError:
        here = None
    if here is loop:
        # Closing from inside the loop (an application's shutdown): end the sessions now, and let the
        # pool stop its background tasks on the loop.
        _finish(kept.abandon())
        _drop_connections(pool)
        loop.create_task(pool.close(timeout=0))
    else:
        # The kept connections' sockets are watched by that loop: only its own thread may stop that.
        asyncio.run_coroutine_threadsafe(_close_kept(kept), loop).result(timeout=30)


async def _close_kept(kept: KeptConnections) -> None:
    await kept.aclose()
    await kept.pool.close()


def _drop_connections(pool: Any) -> None:
    """End the idle sessions of a pool whose loop can no longer run its own close."""
    _finish(list(getattr(pool, "_pool", ())))


def _unwatch(connection: Any) -> None:
    """The loop stops watching the connection's socket (before it is closed or goes back to the pool)."""
    wire: Wire | None = getattr(connection, _WIRE_ATTRIBUTE, None)
    if wire is not None:
        wire.unwatch()


def _finish(connections: list[Any]) -> None:
    for connection in connections:
        _unwatch(connection)
        if not connection.closed:
            connection.pgconn.finish()


# --- construction and migrations ---------------------------------------------------------------


def sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///") if url != "sqlite://" else ":memory:"


def postgres_conninfo(url: str) -> str:
    for prefix in ("postgresql+psycopg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def open_database(url: str, pool_size: int = 10) -> Database:
    if url.startswith("sqlite"):
        return SqliteDatabase(sqlite_path(url))
    return PostgresDatabase(postgres_conninfo(url), pool_size)


def sqlalchemy_url(url: str) -> str:
    if url.startswith("sqlite"):
        return url
    return "postgresql+psycopg://" + postgres_conninfo(url).removeprefix("postgresql://")


def migrate(url: str) -> None:
    """Bring the schema up to date (idempotent, safe to call from several processes at once)."""
    from alembic import command
    from alembic.config import Config

    if url.startswith("sqlite"):
        path = sqlite_path(url)
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    try:
        command.upgrade(config, "head")
    except Exception as exc:  # alembic surfaces driver errors untyped; keep the cause chained
        if _is_connection_failure(exc):
            raise StoreError(
                "service_unavailable", "The database is unreachable; the schema was not migrated."
            ) from exc
        raise


def _is_connection_failure(exc: BaseException) -> bool:
    from sqlalchemy.exc import OperationalError

    return isinstance(exc, OperationalError)

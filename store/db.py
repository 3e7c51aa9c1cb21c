"""Database access: one small door over the raw drivers (sqlite3, psycopg 3), plus schema migrations.

Why raw drivers and not an ORM at run time: the calibration in DESIGN.md shows a primary-key
lookup through SQLAlchemy Core costs ~10x the raw driver on this hardware, and the hot path of
this service is exactly such lookups. SQL is written once, with ``?`` placeholders, in the
subset both SQLite (>= 3.35) and PostgreSQL accept; :class:`Tx` rewrites placeholders for psycopg.
Alembic (through SQLAlchemy) owns the schema, and only migrations use SQLAlchemy.

Concurrency model:

* SQLite: reads run inline on the event loop on one connection (WAL: readers never wait for the
  writer, and a lookup costs tens of microseconds). Writes run one at a time, each in
  ``BEGIN IMMEDIATE`` so the whole transaction holds the write lock from its first statement:
  inline on the loop when the file's lock is free at once (a write transaction costs about what a
  thread hop does), otherwise in the writer thread, which waits for the lock there; so another
  process holding the file's lock never blocks the loop. Other processes on the same file
  serialise through the same lock. WAL checkpoints run in a thread of their own
  (:mod:`store.sqlite_checkpoints`), never inside a write's COMMIT.
* PostgreSQL: every unit of work takes a connection from a pool in a worker thread; writes that
  charge an account lock its row with ``SELECT … FOR UPDATE`` (:meth:`Tx.lock_account`).

Driver exceptions that mean "the database is not reachable" become ``service_unavailable``.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import anyio
import anyio.to_thread

from store.errors import StoreError, service_unavailable
from store.sqlite_checkpoints import WalCheckpointer

T = TypeVar("T")
Row = dict[str, Any]
Params = Sequence[Any]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# How long a request waits for a PostgreSQL connection while the database is known to be unreachable.
UNREACHABLE_WAIT_SECONDS = 1.0


class Tx(Protocol):
    """One transaction (or one read) on one connection."""

    dialect: str

    def one(self, sql: str, params: Params = ()) -> Row | None: ...

    def all(self, sql: str, params: Params = ()) -> list[Row]: ...

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run a statement; returns the number of rows it changed."""
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

    def write_sync(self, work: Callable[[Tx], T]) -> T: ...

    def read_sync(self, work: Callable[[Tx], T]) -> T:
        """Reads that must agree with each other: every statement sees one snapshot."""
        ...

    async def ping(self) -> None: ...

    def close(self) -> None: ...


ACCOUNT_COLUMNS = (
    "id, key_hash, email, plan_tier, free_remaining, credits_remaining, storage_used_bytes, storage_limit_bytes, "
    "created_at"
)


# --- SQLite ----------------------------------------------------------------------------------


class _SqliteTx:
    dialect = "sqlite"

    def __init__(self, connection: sqlite3.Connection, names: ColumnNames | None = None) -> None:
        self._connection = connection
        # Pass the database's own: a fresh one learns each statement's names again.
        self._names = names if names is not None else ColumnNames()

    def one(self, sql: str, params: Params = ()) -> Row | None:
        cursor = self._connection.execute(sql, params)
        row = cursor.fetchone()
        return None if row is None else dict(zip(self._names.of(sql, cursor), row, strict=True))

    def all(self, sql: str, params: Params = ()) -> list[Row]:
        cursor = self._connection.execute(sql, params)
        rows = cursor.fetchall()
        names = self._names.of(sql, cursor) if rows else ()
        return [dict(zip(names, row, strict=True)) for row in rows]

    def execute(self, sql: str, params: Params = ()) -> int:
        return self._connection.execute(sql, params).rowcount

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
        self._checkpointer = WalCheckpointer(functools.partial(_open_sqlite, path))
        self._names = ColumnNames()

    async def read(self, work: Callable[[Tx], T]) -> T:
        with _translate_sqlite_errors():
            return work(_SqliteTx(self._reader, self._names))

    def read_sync(self, work: Callable[[Tx], T]) -> T:
        with _translate_sqlite_errors():
            self._reader.execute("BEGIN")
            try:
                return work(_SqliteTx(self._reader, self._names))
            finally:
                self._reader.execute("COMMIT")

    async def write(self, work: Callable[[Tx], T]) -> T:
        if self._write_lock.acquire(blocking=False):
            try:
                if self._begin_inline():
                    return self._run_transaction(self._inline_writer, work)
            finally:
                self._write_lock.release()
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
        """Run ``work`` in the transaction just begun on ``connection``; commit, or roll back if it raises."""
        with _translate_sqlite_errors():
            try:
                result = work(_SqliteTx(connection, self._names))
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        self._checkpointer.committed()
        return result

    async def ping(self) -> None:
        await self.read(lambda tx: tx.one("SELECT 1 AS ok"))

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


class _PostgresTx:
    dialect = "postgresql"

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def one(self, sql: str, params: Params = ()) -> Row | None:
        cursor = self._connection.execute(_psycopg_sql(sql), params, prepare=True)
        row: Row | None = cursor.fetchone()
        return row

    def all(self, sql: str, params: Params = ()) -> list[Row]:
        cursor = self._connection.execute(_psycopg_sql(sql), params, prepare=True)
        rows: list[Row] = cursor.fetchall()
        return rows

    def execute(self, sql: str, params: Params = ()) -> int:
        cursor = self._connection.execute(_psycopg_sql(sql), params, prepare=True)
        count: int = cursor.rowcount
        return count

    def lock_account(self, account_id: str) -> Row | None:
        return self.one(f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ? FOR UPDATE", (account_id,))


class PostgresDatabase:
    """PostgreSQL through a psycopg 3 connection pool; all work runs in worker threads."""

    dialect = "postgresql"

    def __init__(self, url: str, pool_size: int) -> None:
        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool

        # Set when the pool's last attempt to connect failed, cleared by the next success: while the
        # database is known to be unreachable a request waits only briefly for a connection, so an
        # outage answers 503 at once instead of after the full pool timeout on every request.
        self._unreachable = False
        self._pool = ConnectionPool(
            conninfo=url,
            min_size=1,
            max_size=pool_size,
            # Autocommit: a hot-path read is one round trip; writes open their transaction explicitly.
            kwargs={"row_factory": dict_row, "connect_timeout": 5, "autocommit": True},
            timeout=10.0,
            open=False,
            reconnect_timeout=0,
            configure=self._connected,
            reconnect_failed=self._unreachable_now,
        )
        self._pool.open(wait=False)
        self._limiter = anyio.CapacityLimiter(pool_size)

    def _connected(self, connection: Any) -> None:
        self._unreachable = False

    def _unreachable_now(self, pool: Any) -> None:
        self._unreachable = True

    async def read(self, work: Callable[[Tx], T]) -> T:
        return await anyio.to_thread.run_sync(self._run, work, False, None, limiter=self._limiter)

    async def write(self, work: Callable[[Tx], T]) -> T:
        return await anyio.to_thread.run_sync(self.write_sync, work, limiter=self._limiter)

    def read_sync(self, work: Callable[[Tx], T]) -> T:
        return self._run(work, True, "REPEATABLE READ READ ONLY")

    def write_sync(self, work: Callable[[Tx], T]) -> T:
        return self._run(work, True, None)

    def _run(self, work: Callable[[Tx], T], transaction: bool, isolation: str | None) -> T:
        import psycopg
        from psycopg_pool import PoolTimeout

        try:
            wait = UNREACHABLE_WAIT_SECONDS if self._unreachable else None
            with self._pool.connection(timeout=wait) as connection:
                if not transaction:
                    return work(_PostgresTx(connection))
                with connection.transaction():
                    if isolation is not None:
                        connection.execute(f"SET TRANSACTION ISOLATION LEVEL {isolation}")
                    return work(_PostgresTx(connection))
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise service_unavailable("database") from exc

    async def ping(self) -> None:
        await self.read(lambda tx: tx.one("SELECT 1 AS ok"))

    def close(self) -> None:
        self._pool.close()


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

"""PostgreSQL statements sent through libpq directly: the store's hot path without psycopg's per-statement machinery.

psycopg's ``execute`` builds a cursor, converts the query, consults its prepared-statement manager
and waits through a generator that registers and unregisters the socket with the event loop: about
70 µs of CPU per statement on the reference machine, against about 20 µs for the same round trip sent
here on the same connection (``bench/pg_statement_cost.py``). On PostgreSQL every write the service
does is a handful of such statements, so this is most of the gap between its writes and SQLite's.

What stays psycopg's: connections and their pool (connect, reconnect, outage detection), the
exception classes (a failed statement raises what psycopg would raise for it, so callers and the
error translation in :mod:`store.db` see the same failures), and loading the values of result rows
(its loaders, in C). What is done here: each statement is prepared once per connection under a name
of its own (never one of psycopg's), executed, and its results read, with one wait on the socket per
round trip. ``BEGIN`` is not a round trip of its own: it leaves in one pipeline with the
transaction's first statement.

Parameters are the types the store's SQL uses: ``int`` (sent as ``bigint``), ``str`` (sent untyped,
so PostgreSQL reads it as it reads a quoted literal: as the type the statement needs) and ``None``.
"""

from __future__ import annotations

import asyncio
import select
from collections.abc import Callable, Sequence
from typing import Any

from psycopg import AsyncConnection, errors, pq
from psycopg.adapt import Transformer

Row = dict[str, Any]
Params = Sequence[Any]

_INT8_OID = 20
_UNKNOWN_OID = 0
_OK = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK)


class Wire:
    """One pooled connection, spoken to through libpq; hold it exclusively while using it (the pool's
    checkout does). Its prepared statements live as long as the connection."""

    def __init__(self, connection: AsyncConnection[Any]) -> None:
        self._connection = connection
        self._pgconn = connection.pgconn
        self._encoding = connection.info.encoding
        self._loader = Transformer(connection)
        # (SQL, parameter types) -> the name the statement is prepared under on this connection.
        self._prepared: dict[tuple[str, tuple[int, ...]], bytes] = {}
        self._statement_count = 0
        self._begin_pending = False
        self._deferred: list[tuple[str, Params]] = []
        self.in_transaction = False
        # The socket is watched for reading from the first wait on until unwatch() (see _readable).
        self._watched_by: asyncio.AbstractEventLoop | None = None
        self._watched_fd = -1
        self._ready: asyncio.Future[None] | None = None

    # --- transactions ---------------------------------------------------------------------

    def begin(self) -> None:
        """Open a transaction with the next statement (no round trip of its own)."""
        self._begin_pending = True

    async def commit(self) -> None:
        """End the transaction (deferred statements leave with the COMMIT); nothing to send when no
        statement ran in it."""
        if self._deferred:
            try:
                await self._in_pipeline(None, commit=True)
            finally:
                self.in_transaction = False
            return
        self._begin_pending = False
        if self.in_transaction:
            self.in_transaction = False
            await self._simple(b"COMMIT")

    async def rollback(self) -> None:
        self._begin_pending = False
        self._deferred = []
        if self.in_transaction:
            self.in_transaction = False
            await self._simple(b"ROLLBACK")

    # --- statements -----------------------------------------------------------------------

    async def one(self, sql: str, params: Params = (), *, last: bool = False) -> Row | None:
        """The first row; ``last``: the transaction's final statement, its COMMIT sent with it."""
        result = await self._statement(sql, params, prepare=True, last=last)
        return self._first_row(result)

    async def all(self, sql: str, params: Params = (), *, prepare: bool = True) -> list[Row]:
        result = await self._statement(sql, params, prepare=prepare)
        if result.ntuples == 0:
            return []
        names = self._columns(result)
        self._loader.set_pgresult(result)
        return self._loader.load_rows(0, result.ntuples, lambda values: dict(zip(names, values, strict=True)))

    async def execute(self, sql: str, params: Params = (), *, last: bool = False) -> int:
        """Run a statement; the number of rows it changed (``last`` as for :meth:`one`)."""
        result = await self._statement(sql, params, prepare=True, last=last)
        return result.command_tuples or 0

    async def batch(self, statements: Sequence[tuple[str, Params]]) -> list[Row | None]:
        """Independent one-row reads, sent in one pipeline, each its own implicit transaction; raises the
        first failure after every answer has been read (the connection stays usable)."""
        groups = await self._pipeline(statements, begin=False, commit=False)
        rows: list[Row | None] = []
        failure: Exception | None = None
        for results in groups:
            failed = _first_failure(results)
            failure = failure or failed
            rows.append(None if failed is not None else self._first_row(_last(results)))
        if failure is not None:
            raise failure
        return rows

    # --- the protocol ---------------------------------------------------------------------

    def defer(self, sql: str, params: Params = ()) -> None:
        """A statement whose answer nobody reads: it leaves with the next statement or the COMMIT, and
        its failure is raised there (the transaction fails as a whole either way)."""
        self._deferred.append((sql, params))

    async def _statement(self, sql: str, params: Params, *, prepare: bool, last: bool = False) -> pq.abc.PGresult:
        commit = last and (self.in_transaction or self._begin_pending)
        if not (commit or self._begin_pending or self._deferred) and (not prepare or self._is_prepared(sql, params)):
            self._send(sql, params, prepare=prepare)
            return self._checked(await self._results())
        # A statement to prepare, a BEGIN, deferred statements or the COMMIT to send with it: one pipeline.
        try:
            return await self._in_pipeline((sql, params), prepare=prepare, commit=commit)
        finally:
            if commit:
                self.in_transaction = False

    async def _in_pipeline(
        self, final: tuple[str, Params] | None, *, prepare: bool = True, commit: bool = False
    ) -> pq.abc.PGresult:
        """What is waiting to be sent (BEGIN, deferred statements), then ``final``, then COMMIT when
        ``commit``, as one pipeline; ``final``'s result, once any failure before it is raised. A
        transaction whose statement failed is rolled back by that COMMIT (PostgreSQL ends a failed
        transaction so)."""
        begin, self._begin_pending = self._begin_pending, False
        deferred, self._deferred = self._deferred, []
        statements = [*deferred, final] if final is not None else deferred
        groups = await self._pipeline(statements, begin=begin, prepare=prepare, commit=commit)
        for results in groups:
            self._checked(results)
        return _last(groups[-2] if commit and final is not None else groups[-1])

    async def _pipeline(
        self, statements: Sequence[tuple[str, Params]], *, begin: bool, commit: bool, prepare: bool = True
    ) -> list[list[pq.abc.PGresult]]:
        """Send ``statements`` in one pipeline, after a BEGIN when ``begin`` and before a COMMIT when
        ``commit``, a sync after each; the results of each statement (and the COMMIT's, last). A
        statement prepared here is forgotten again when its preparation failed. In a transaction a
        failed statement aborts the ones after it, which answer "aborted"."""
        pgconn = self._pgconn
        pgconn.enter_pipeline_mode()
        try:
            if begin:
                pgconn.send_query_params(b"BEGIN", None)
                self.in_transaction = True
            fresh: list[tuple[str, tuple[int, ...]] | None] = []
            for sql, params in statements:
                fresh.append(self._send(sql, params, prepare=prepare))
                pgconn.pipeline_sync()
            if commit:
                pgconn.send_query_params(b"COMMIT", None)
                fresh.append(None)
                pgconn.pipeline_sync()
            await self._flush()
            if begin:
                self._checked(await self._command_results())
            groups = []
            for key in fresh:
                commands = await self._commands_until_sync()
                if key is not None:
                    preparation = commands.pop(0)
                    if _first_failure(preparation) is not None:
                        del self._prepared[key]
                groups.append([result for command in commands for result in command])
            return groups
        except BaseException:
            # Results left unread: the connection cannot leave pipeline mode cleanly, so it is closed
            # (the pool replaces a closed connection).
            self.unwatch()
            pgconn.finish()
            raise
        finally:
            if pgconn.status == pq.ConnStatus.OK:
                pgconn.exit_pipeline_mode()

    def _send(self, sql: str, params: Params, *, prepare: bool) -> tuple[str, tuple[int, ...]] | None:
        """Queue the statement; the key of the preparation queued before it, if any."""
        values, types = self._encode(params)
        pgconn = self._pgconn
        if not prepare:
            pgconn.send_query_params(sql.encode(self._encoding), values, types)
            return None
        key = (sql, types)
        name = self._prepared.get(key)
        if name is not None:
            pgconn.send_query_prepared(name, values)
            return None
        self._statement_count += 1
        name = self._prepared[key] = f"ol_{self._statement_count}".encode()
        pgconn.send_prepare(name, sql.encode(self._encoding), types)
        pgconn.send_query_prepared(name, values)
        return key

    def _is_prepared(self, sql: str, params: Params) -> bool:
        return (sql, tuple(_type_of(value) for value in params)) in self._prepared

    def _encode(self, params: Params) -> tuple[list[bytes | None], tuple[int, ...]]:
        values: list[bytes | None] = []
        types: list[int] = []
        for value in params:
            if value is None:
                values.append(None)
                types.append(_UNKNOWN_OID)
            elif isinstance(value, str):
                values.append(value.encode(self._encoding))
                types.append(_UNKNOWN_OID)
            elif isinstance(value, int) and not isinstance(value, bool):
                values.append(b"%d" % value)
                types.append(_INT8_OID)
            else:
                raise TypeError(f"unsupported SQL parameter type: {type(value).__name__}")
        return values, tuple(types)

    async def _simple(self, command: bytes) -> None:
        self._pgconn.send_query_params(command, None)
        self._checked(await self._results())

    def _checked(self, results: list[pq.abc.PGresult]) -> pq.abc.PGresult:
        failed = _first_failure(results)
        if failed is not None:
            if isinstance(failed, errors.InvalidSqlStatementName):
                # Something dropped this connection's prepared statements (DISCARD ALL): prepare anew.
                self._prepared.clear()
            raise failed
        return _last(results)

    async def _results(self) -> list[pq.abc.PGresult]:
        """Every result of the statement just sent (outside pipeline mode)."""
        await self._flush()
        results = []
        while (result := await self._next_result()) is not None:
            results.append(result)
        return results

    async def _commands_until_sync(self) -> list[list[pq.abc.PGresult]]:
        """In pipeline mode: the results of each command queued before the next sync point."""
        commands: list[list[pq.abc.PGresult]] = [[]]
        while True:
            result = await self._next_result()
            if result is None:
                commands.append([])  # the end of one queued command's results
            elif result.status == pq.ExecStatus.PIPELINE_SYNC:
                return [command for command in commands if command]
            else:
                commands[-1].append(result)

    async def _command_results(self) -> list[pq.abc.PGresult]:
        """In pipeline mode: the results of the one command queued next (they end at a null result)."""
        results = []
        while (result := await self._next_result()) is not None:
            results.append(result)
        return results

    async def _next_result(self) -> pq.abc.PGresult | None:
        pgconn = self._pgconn
        while pgconn.is_busy():
            await self._readable()
            try:
                pgconn.consume_input()
            finally:
                if pgconn.status != pq.ConnStatus.OK:
                    self.unwatch()  # libpq closed the socket: its number may be reused at once
        return pgconn.get_result()

    async def _flush(self) -> None:
        while self._pgconn.flush():
            await self._writable()

    async def _readable(self) -> None:
        """Wait until the socket has something to read. The socket stays registered with the loop between
        waits, statements and units (registering and unregistering it for each wait was ~7 % of the
        server's samples under upload load), until :meth:`unwatch`."""
        loop = asyncio.get_running_loop()
        if self._pgconn.status != pq.ConnStatus.OK:
            # libpq closed the socket (a failed send reads the server's goodbye): nothing will ever come.
            self.unwatch()
            raise errors.OperationalError("the connection to PostgreSQL is lost")
        if self._watched_by is not loop:
            self.unwatch()
            fd = self._pgconn.socket
            loop.add_reader(fd, self._on_readable)
            self._watched_by, self._watched_fd = loop, fd
        ready = self._ready = loop.create_future()
        try:
            await ready
        finally:
            self._ready = None

    def _on_readable(self) -> None:
        ready = self._ready
        if ready is not None:
            if not ready.done():
                ready.set_result(None)
        elif socket_has_input(self._watched_fd):
            # Nobody waits and the server spoke to an idle connection (its goodbye): stop watching, or the
            # loop would call this at every turn while the data stays unread. The next wait watches again.
            self.unwatch()
        # Otherwise a readiness the last wait has consumed already: the loop polled the socket again before
        # the woken task ran. Nothing to do, and the socket stays watched.

    def unwatch(self) -> None:
        """Stop watching the socket. Called before the connection is closed or leaves this wire's hands (back
        to the pool, which may close it): a closed socket's number is soon another socket's, which the loop
        must not confuse with this one."""
        loop, self._watched_by = self._watched_by, None
        if loop is not None and not loop.is_closed():
            loop.remove_reader(self._watched_fd)

    async def _writable(self) -> None:
        loop = asyncio.get_running_loop()
        await self._socket_ready(loop.add_writer, loop.remove_writer)

    async def _socket_ready(
        self, watch: Callable[[int, Callable[..., None], Any], object], unwatch: Callable[[int], object]
    ) -> None:
        """Wait until the socket is ready as ``watch`` (the loop's add_reader or add_writer) watches it."""
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fd = self._pgconn.socket
        watch(fd, _wake, ready)
        try:
            await ready
        finally:
            unwatch(fd)

    # --- rows -----------------------------------------------------------------------------

    def _first_row(self, result: pq.abc.PGresult) -> Row | None:
        if result.ntuples == 0:
            return None
        names = self._columns(result)
        self._loader.set_pgresult(result)
        return self._loader.load_row(0, lambda values: dict(zip(names, values, strict=True)))

    def _columns(self, result: pq.abc.PGresult) -> tuple[str, ...]:
        return tuple((result.fname(i) or b"").decode(self._encoding) for i in range(result.nfields))


def socket_has_input(fd: int) -> bool:
    """Whether a read on the socket would return at once (data, or the end of the stream): one poll."""
    readable, _, _ = select.select([fd], [], [], 0)
    return bool(readable)


def _type_of(value: Any) -> int:
    return _INT8_OID if isinstance(value, int) and not isinstance(value, bool) else _UNKNOWN_OID


def _wake(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)


def _first_failure(results: list[pq.abc.PGresult]) -> Exception | None:
    for result in results:
        if result.status not in _OK:
            return errors.error_from_result(result)
    return None


def _last(results: list[pq.abc.PGresult]) -> pq.abc.PGresult:
    if not results:
        raise errors.InternalError("PostgreSQL sent no result for a statement")
    return results[-1]

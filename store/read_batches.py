"""Hot single-statement reads sent to PostgreSQL together: one send, one answer, many requests.

Under load every statement on its own costs two process wake-ups (the server's backend to answer, this
process to read the answer), and on a busy machine each wake-up waits for a core: the request's time
goes to the scheduler, not to the query. Reads that arrive while the event loop is busy are therefore
queued, and once the loop has run every ready task they leave together in one pipeline (psycopg
pipeline mode) on one pooled connection: one round trip and one wake-up for the whole batch.

A batch that fails as a whole (the database unreachable) fails each read with the same error; a batch in
which one statement fails is run again one statement at a time, so each read gets its own answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from store.errors import StoreError, service_unavailable

Row = dict[str, Any]
Statement = tuple[str, Sequence[Any]]
# Runs statements on one connection and answers each one's first row, in order; raises when any fails.
SendBatch = Callable[[list[Statement]], Awaitable[list[Row | None]]]
SendOne = Callable[[Statement], Awaitable[Row | None]]


class ReadBatcher:
    """Collects the reads of one event-loop iteration and sends them as one batch (see module docstring)."""

    def __init__(self, send_batch: SendBatch, send_one: SendOne) -> None:
        self._send_batch = send_batch
        self._send_one = send_one
        self._pending: list[tuple[Statement, asyncio.Future[Row | None]]] = []
        self._flush_scheduled = False
        # Running batches are referenced here so the loop cannot drop them half-way.
        self._running: set[asyncio.Task[None]] = set()

    async def one(self, sql: str, params: Sequence[Any]) -> Row | None:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Row | None] = loop.create_future()
        self._pending.append(((sql, params), answer))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            # call_soon runs after the callbacks already due: the other requests of this iteration queue first.
            loop.call_soon(self._flush)
        return await answer

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        self._flush_scheduled = False
        task = asyncio.get_running_loop().create_task(self._run(batch))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, batch: list[tuple[Statement, asyncio.Future[Row | None]]]) -> None:
        try:
            await self._answer(batch)
        finally:
            # Whatever happened above (this task cancelled with its loop, a fault here), no read waits forever.
            for _, answer in batch:
                _settle(answer, error=service_unavailable("database"))

    async def _answer(self, batch: list[tuple[Statement, asyncio.Future[Row | None]]]) -> None:
        statements = [statement for statement, _ in batch]
        try:
            rows = await self._send_batch(statements)
        except Exception as exc:  # the batch's error belongs to its reads: each gets its own answer
            if len(batch) == 1 or _whole_batch_failure(exc):
                for _, answer in batch:
                    _settle(answer, error=exc)
                return
            await self._run_one_by_one(batch)
            return
        for (_, answer), row in zip(batch, rows, strict=True):
            _settle(answer, row=row)

    async def _run_one_by_one(self, batch: list[tuple[Statement, asyncio.Future[Row | None]]]) -> None:
        for statement, answer in batch:
            try:
                row = await self._send_one(statement)
            except Exception as exc:  # handed to the read that asked
                _settle(answer, error=exc)
            else:
                _settle(answer, row=row)

    async def drain(self) -> None:
        """Wait for the batches on the wire (before the pool under them closes)."""
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)


def _whole_batch_failure(exc: Exception) -> bool:
    """Errors that no statement caused alone (the database unreachable): retrying one by one cannot help."""
    return isinstance(exc, StoreError)


def _settle(answer: asyncio.Future[Row | None], *, row: Row | None = None, error: Exception | None = None) -> None:
    if answer.done():  # the request that asked was cancelled meanwhile
        return
    if error is not None:
        answer.set_exception(error)
    else:
        answer.set_result(row)

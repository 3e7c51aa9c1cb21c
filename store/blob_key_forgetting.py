"""Forgetting the blob keys of deleted and expired outputs whose blobs are gone: many at once, one statement.

A gone output's row keeps naming its blob until the blob is removed (a crash in between leaves a key the
sweeper still finds, removes and forgets: ``store.lifecycle``). Forgetting is its own write after the
removal, and under load every delete has one: here the forgettings that arrive while one statement is on
the wire wait and leave together as the next one (``… WHERE id IN (…)``), so many deletes share one
transaction and one round trip. Each caller still waits for the statement carrying its key, so once a
delete answers its key is forgotten, as before. A failed statement is not the delete's failure (the blob
is gone and the delete committed): its keys stay for the sweeper.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import weakref
from typing import TYPE_CHECKING

from store.errors import StoreError

if TYPE_CHECKING:
    from store.db import Database, Tx

log = logging.getLogger("outputlayer.blob_keys")

# The most keys one statement forgets; more wait for the next one.
MOST_KEYS_PER_STATEMENT = 64


class BlobKeyForgetter:
    """Forgets removed blobs' keys in shared statements, one statement on the wire per event loop."""

    def __init__(self, db: Database) -> None:
        self._db = db
        # One queue per event loop: its waiters' futures belong to it.
        self._queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Queue] = weakref.WeakKeyDictionary()

    async def forget(self, output_id: str) -> None:
        """Forget the blob key of the gone output ``output_id``; returns once the statement carrying it ended."""
        loop = asyncio.get_running_loop()
        queue = self._queues.get(loop)
        if queue is None:
            queue = self._queues[loop] = _Queue(self._db)
        await queue.forget(output_id)

    async def drain(self) -> None:
        """Wait for this loop's statements on the wire (before the database under them closes)."""
        queue = self._queues.get(asyncio.get_running_loop())
        if queue is not None:
            await queue.drain()


class _Queue:
    """The forgettings of one event loop. No task of its own: the caller that finds no statement on the
    wire sends one at once (with nothing queued, forgetting costs what it did alone), and the first caller
    queued behind a statement sends the next one, for everyone queued by then."""

    def __init__(self, db: Database) -> None:
        self._db = db
        # Each waiter's future answers True when that waiter is to send the next statement.
        self._waiting: list[tuple[str, asyncio.Future[bool]]] = []
        self._sending = False
        self._idle = asyncio.Event()
        self._idle.set()

    async def forget(self, output_id: str) -> None:
        if not self._sending:
            self._start_sending()
            await self._send([output_id], [])
            return
        turn: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((output_id, turn))
        try:
            mine = await asyncio.shield(turn)
        except asyncio.CancelledError:
            self._leave(output_id, turn)
            raise
        if mine:
            batch, self._waiting = (
                self._waiting[: MOST_KEYS_PER_STATEMENT - 1],
                self._waiting[MOST_KEYS_PER_STATEMENT - 1 :],
            )
            await self._send([output_id, *(queued for queued, _ in batch)], [done for _, done in batch])

    def _start_sending(self) -> None:
        self._sending = True
        self._idle.clear()

    async def _send(self, output_ids: list[str], others: list[asyncio.Future[bool]]) -> None:
        try:
            await self._db.write(functools.partial(forget_keys, output_ids=output_ids))
        except StoreError as exc:
            log.warning("blob keys left for the sweeper: %s", exc.message)
        except Exception:  # a delete has committed and its blob is gone: a bad statement is not its failure
            log.exception("blob keys left for the sweeper")
        finally:
            for done in others:
                _answer(done, False)
            self._hand_over()

    def _hand_over(self) -> None:
        """The statement ended: the first caller queued sends the next one, or nothing is on the wire."""
        if self._waiting:
            _, turn = self._waiting.pop(0)
            _answer(turn, True)
            return
        self._sending = False
        self._idle.set()

    def _leave(self, output_id: str, turn: asyncio.Future[bool]) -> None:
        """A cancelled caller: out of the queue, or, when it was to send the next statement, hands that on
        (its key is left for the sweeper when nobody sends it)."""
        if (output_id, turn) in self._waiting:
            self._waiting.remove((output_id, turn))
        elif turn.done() and turn.result():
            self._hand_over()

    async def drain(self) -> None:
        await self._idle.wait()


def _answer(turn: asyncio.Future[bool], mine: bool) -> None:
    if not turn.done():
        turn.set_result(mine)


def forget_keys(tx: Tx, output_ids: list[str]) -> int:
    """Forget the blob keys of these outputs, those that are gone (expired or deleted); how many changed.
    The id list is padded to a power of two with its own last id, so a few statement texts serve every
    batch (each is prepared once per connection on PostgreSQL)."""
    padded = [*output_ids, *[output_ids[-1]] * (_bucket(len(output_ids)) - len(output_ids))]
    return tx.execute(forget_keys_sql(len(padded)), padded, last=True)


@functools.lru_cache(maxsize=16)
def forget_keys_sql(count: int) -> str:
    """The statement forgetting the keys of ``count`` gone outputs. ``status <> 'ready'`` rather than
    ``status IN ('expired', 'deleted')``: no index serves an inequality, so PostgreSQL finds the rows by
    id whatever its statistics say (on a table not yet analysed it walked every gone row through the
    status index instead). A failed output has no key, so the two conditions forget the same keys."""
    return f"UPDATE outputs SET blob_key = NULL WHERE id IN ({', '.join('?' * count)}) AND status <> 'ready'"


def _bucket(count: int) -> int:
    return 1 << (count - 1).bit_length()

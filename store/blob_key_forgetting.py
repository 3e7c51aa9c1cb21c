"""Forgetting the blob keys of deleted and expired outputs whose blobs are gone: many at once, one statement.

A gone output's row keeps naming its blob until the blob is removed (a crash in between leaves a key the
sweeper still finds, removes and forgets: ``store.lifecycle``). Forgetting is its own write after the
removal, and under load every delete has one: here the forgettings that arrive while one is on the wire
wait and leave together as the next one (``… WHERE id IN (…)``), so many deletes share one transaction
and one round trip. Each caller still waits for the statement carrying its key, so once a delete answers
its key is forgotten, as before. A failed statement is not the delete's failure (the blob is gone and
the delete committed): its keys stay for the sweeper.
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
    """Forgets removed blobs' keys in shared statements, one batch in flight per event loop."""

    def __init__(self, db: Database) -> None:
        self._db = db
        # One queue per event loop: its waiters' futures and the task sending its batches belong to it.
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
    def __init__(self, db: Database) -> None:
        self._db = db
        self._waiting: list[tuple[str, asyncio.Future[None]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def forget(self, output_id: str) -> None:
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((output_id, done))
        if self._sender is None:
            # Started on the loop's next turn: the forgettings of this turn join the first statement.
            self._sender = asyncio.get_running_loop().create_task(self._send_while_waiting())
        # Shielded: a cancelled caller leaves its key in the batch, which others may be waiting for.
        await asyncio.shield(done)

    async def _send_while_waiting(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[:MOST_KEYS_PER_STATEMENT], self._waiting[MOST_KEYS_PER_STATEMENT:]
                ids = [output_id for output_id, _ in batch]
                try:
                    await self._db.write(functools.partial(forget_keys, output_ids=ids))
                except StoreError as exc:
                    log.warning("blob keys left for the sweeper: %s", exc.message)
                except Exception:  # the sender serves every later delete: it must outlive a bad statement
                    log.exception("blob keys left for the sweeper")
                finally:
                    for _, done in batch:
                        if not done.done():
                            done.set_result(None)
        finally:
            self._sender = None
            for _, done in self._waiting:  # cancelled with the loop: nobody waits forever
                if not done.done():
                    done.set_result(None)
            self._waiting = []

    async def drain(self) -> None:
        if self._sender is not None:
            await asyncio.gather(self._sender, return_exceptions=True)


def forget_keys(tx: Tx, output_ids: list[str]) -> int:
    """Forget the blob keys of these outputs, those that are gone (expired or deleted); how many changed.
    The id list is padded to a power of two with its own last id, so a few statement texts serve every
    batch (each is prepared once per connection on PostgreSQL)."""
    padded = [*output_ids, *[output_ids[-1]] * (_bucket(len(output_ids)) - len(output_ids))]
    return tx.execute(
        f"UPDATE outputs SET blob_key = NULL WHERE id IN ({', '.join('?' * len(padded))}) "
        "AND status IN ('expired', 'deleted')",
        padded,
        last=True,
    )


def _bucket(count: int) -> int:
    return 1 << (count - 1).bit_length()

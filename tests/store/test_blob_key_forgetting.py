"""Forgetting removed blobs' keys (store/blob_key_forgetting.py), on both backends: forgettings that arrive
together share one statement, a delete answers once its key is forgotten, and keys whose statement never
committed (the database lost, the process gone) stay with their rows for the sweeper, the invariant intact."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from store import Account, ArtifactService
from store.blob_key_forgetting import MOST_KEYS_PER_STATEMENT, BlobKeyForgetter
from store.db import Database, Tx
from store.errors import service_unavailable
from tests.factories import blob_keys, count, overrides, register, upload

pytestmark = pytest.mark.anyio

T = TypeVar("T")


class CountingWrites:
    """The real database, counting its write units; the first waits for ``on_the_wire`` to be set (a
    statement that takes its time on the wire)."""

    def __init__(self, inner: Database) -> None:
        self._inner = inner
        self.writes = 0
        self.on_the_wire = asyncio.Event()

    async def write(self, work: Callable[[Tx], T]) -> T:
        self.writes += 1
        if self.writes == 1:
            await self.on_the_wire.wait()
        return await self._inner.write(work)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class Unreachable:
    """A database whose writes all fail as an outage does (what a process dying before the write leaves)."""

    async def write(self, work: Callable[[Tx], T]) -> T:
        raise service_unavailable("database")


def naming_keys(service: ArtifactService, account: Account) -> int:
    """Gone outputs of the account whose rows still name a blob key."""
    return count(service, "outputs", "account_id = ? AND status = 'deleted' AND blob_key IS NOT NULL", (account.id,))


async def deleted_keeping_keys(service: ArtifactService, uploads: int) -> tuple[Account, list[str]]:
    """An account whose ``uploads`` outputs were deleted, their blobs removed, their keys never forgotten."""
    account = await register(service)
    ids = [(await upload(service, account, f"k{n}", b"x" * (n + 1))).body["outputId"] for n in range(uploads)]
    real = service.blob_keys
    service.blob_keys = BlobKeyForgetter(Unreachable())  # type: ignore[arg-type]
    try:
        for output_id in ids:
            assert (await service.delete_output(account, output_id))["status"] == "deleted"
    finally:
        service.blob_keys = real
    return account, ids


async def test_a_delete_whose_forgetting_fails_answers_and_leaves_its_key_to_the_sweeper(
    service: ArtifactService,
) -> None:
    account, _ = await deleted_keeping_keys(service, 3)
    assert naming_keys(service, account) == 3
    assert blob_keys(service) == []
    assert (await service.account(account.id)).storage_used_bytes == 0
    assert service.check().problems == []
    report = await service.sweep()
    assert report.blobs_deleted == 3
    assert naming_keys(service, account) == 0
    assert service.check().problems == []


@overrides(free_uploads=10)
async def test_forgettings_arriving_together_share_one_statement(service: ArtifactService) -> None:
    account, ids = await deleted_keeping_keys(service, 10)
    counting = CountingWrites(service.db)
    forgetter = BlobKeyForgetter(counting)  # type: ignore[arg-type]
    forgetting = [asyncio.ensure_future(forgetter.forget(output_id)) for output_id in ids]
    await asyncio.sleep(0)  # one turn of the loop: the first one's statement is on the wire, the rest queued
    counting.on_the_wire.set()
    await asyncio.gather(*forgetting)
    assert counting.writes == 2
    assert naming_keys(service, account) == 0


async def test_more_forgettings_than_one_statement_takes_leave_in_several(service: ArtifactService) -> None:
    account, ids = await deleted_keeping_keys(service, 2)
    counting = CountingWrites(service.db)
    forgetter = BlobKeyForgetter(counting)  # type: ignore[arg-type]
    unknown = [f"out_unknown{n}" for n in range(MOST_KEYS_PER_STATEMENT)]
    forgetting = [asyncio.ensure_future(forgetter.forget(output_id)) for output_id in [*unknown, *ids]]
    await asyncio.sleep(0)
    counting.on_the_wire.set()
    await asyncio.gather(*forgetting)
    # The first alone, then the most one statement takes, then the one left.
    assert counting.writes == 3
    assert naming_keys(service, account) == 0


async def test_concurrent_deletes_answer_with_their_keys_forgotten(service: ArtifactService) -> None:
    account = await register(service)
    ids = [(await upload(service, account, f"k{n}", b"y" * 10)).body["outputId"] for n in range(5)]
    bodies = await asyncio.gather(*(service.delete_output(account, output_id) for output_id in ids))
    assert [body["status"] for body in bodies] == ["deleted"] * 5
    assert naming_keys(service, account) == 0
    assert blob_keys(service) == []
    assert (await service.account(account.id)).storage_used_bytes == 0
    assert service.check().problems == []


async def _forgetting_queued(
    service: ArtifactService, ids: list[str]
) -> tuple[CountingWrites, BlobKeyForgetter, list[asyncio.Future[None]]]:
    """Forgettings of ``ids`` started on a forgetter whose first statement is held on the wire."""
    counting = CountingWrites(service.db)
    forgetter = BlobKeyForgetter(counting)  # type: ignore[arg-type]
    forgetting = [asyncio.ensure_future(forgetter.forget(output_id)) for output_id in ids]
    await asyncio.sleep(0)
    return counting, forgetter, forgetting


async def test_draining_waits_for_the_statements_on_the_wire_and_queued(service: ArtifactService) -> None:
    account, ids = await deleted_keeping_keys(service, 2)
    counting, forgetter, forgetting = await _forgetting_queued(service, ids)
    draining = asyncio.ensure_future(forgetter.drain())
    counting.on_the_wire.set()
    await draining
    assert all(task.done() for task in forgetting)
    assert naming_keys(service, account) == 0


async def test_a_cancelled_forgetting_does_not_stall_the_ones_queued_behind_it(service: ArtifactService) -> None:
    account, ids = await deleted_keeping_keys(service, 3)
    counting, _, forgetting = await _forgetting_queued(service, ids)
    forgetting[1].cancel()  # the one that would send the next statement
    counting.on_the_wire.set()
    outcomes = await asyncio.gather(*forgetting, return_exceptions=True)
    assert [isinstance(outcome, asyncio.CancelledError) for outcome in outcomes] == [False, True, False]
    assert naming_keys(service, account) == 1  # the cancelled one's key, for the sweeper
    assert (await service.sweep()).blobs_deleted == 1
    assert naming_keys(service, account) == 0

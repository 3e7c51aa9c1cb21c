"""A PostgreSQL pool ends with the event loop that used it, also when nobody closed it: the loop's end
never waits for the pool's workers."""

from __future__ import annotations

import asyncio
import threading

import pytest

from store import ArtifactService
from tests.factories import register

LOOPS = 8
# Each loop is a few statements; the margin is for a machine at load average 10.
DEADLINE_SECONDS = 120.0


def test_loops_that_end_without_closing_the_service_do_not_hang(service: ArtifactService, backend: str) -> None:
    if not backend.startswith("postgres"):
        pytest.skip("SQLite has no pool")

    async def busy() -> None:
        # Concurrent work grows the pool, so the loop may end while a connection is being opened.
        account = await register(service)
        await asyncio.gather(*(service.account(account.id) for _ in range(8)))

    failures: list[BaseException] = []

    def loops() -> None:
        try:
            for _ in range(LOOPS):
                asyncio.run(busy())
        except BaseException as exc:  # reported by the assertion below, not lost with the thread
            failures.append(exc)

    runner = threading.Thread(target=loops, daemon=True)
    runner.start()
    runner.join(DEADLINE_SECONDS)
    assert not runner.is_alive(), "an event loop did not end"
    assert failures == []

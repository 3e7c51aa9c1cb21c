"""Hot single-statement reads (``Database.one``): reads issued together each get their own answer, on
PostgreSQL where they travel in one pipeline, and one failing statement fails only its own read."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
import pytest

from store import ArtifactService, Settings, StoreError, open_service
from tests.factories import register
from tests.serving import free_port

pytestmark = pytest.mark.anyio

ACCOUNT_BY_ID = "SELECT id, free_remaining FROM accounts WHERE id = ?"
# The pool waits 10 s for a first connection; the rest is margin for a machine at load average 10.
DEADLINE_SECONDS = 60.0


async def test_reads_issued_together_each_answer_their_own_row(service: ArtifactService) -> None:
    accounts = [await register(service) for _ in range(6)]
    ids = [account.id for account in accounts] + ["key_missing"]
    rows = await asyncio.gather(*(service.db.one(ACCOUNT_BY_ID, (account_id,)) for account_id in ids))
    assert [row["id"] if row else None for row in rows] == [*ids[:-1], None]


async def test_a_failing_statement_fails_only_its_own_read(service: ArtifactService, backend: str) -> None:
    if not backend.startswith("postgres"):
        pytest.skip("SQLite answers each read inline; nothing is batched")
    account = await register(service)
    divisors = [2, 1, 2]  # 1 / (1 - 1): division by zero in the middle of the batch
    answers = await asyncio.gather(
        service.db.one(ACCOUNT_BY_ID, (account.id,)),
        *(service.db.one("SELECT 1 / (? - 1) AS x", (divisor,)) for divisor in divisors),
        return_exceptions=True,
    )
    first, *divided = answers
    assert isinstance(first, dict) and first["id"] == account.id
    assert divided[0] == {"x": 1} and divided[2] == {"x": 1}
    assert isinstance(divided[1], psycopg.errors.DivisionByZero)
    assert await service.db.one(ACCOUNT_BY_ID, (account.id,)) == first


async def test_reads_batched_against_an_unreachable_database_each_answer_service_unavailable(tmp_path: Path) -> None:
    url = f"postgresql://outputlayer:secret@127.0.0.1:{free_port()}/outputlayer"
    service = open_service(Settings(data_dir=tmp_path, database_url=url), run_migrations=False)
    try:
        answers = await asyncio.wait_for(
            asyncio.gather(*(service.db.one(ACCOUNT_BY_ID, (n,)) for n in range(3)), return_exceptions=True),
            DEADLINE_SECONDS,
        )
    finally:
        await service.aclose()
    assert [answer.code if isinstance(answer, StoreError) else answer for answer in answers] == [
        "service_unavailable"
    ] * 3

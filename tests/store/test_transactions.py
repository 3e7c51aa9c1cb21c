"""Units of work on both databases: a unit commits as a whole or not at all, its last statement commits it,
a deferred write fails the unit that sent it, a required statement answering no row commits nothing; on
PostgreSQL the connection a failed or cancelled unit used serves the next unit correctly (statements go
through libpq directly, store/pg_wire.py)."""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import weakref

import psycopg
import pytest

from store import ArtifactService, StoreError
from store.db import PostgresDatabase, RowMissing, Tx
from tests.factories import register

pytestmark = pytest.mark.anyio

FREE_OF = "SELECT free_remaining FROM accounts WHERE id = ?"
SET_FREE = "UPDATE accounts SET free_remaining = ? WHERE id = ?"
SET_FREE_RETURNING = (
    "UPDATE accounts SET free_remaining = ? WHERE id = ? AND free_remaining >= ? RETURNING free_remaining"
)
# Generous: a pooled connection is handed over at once, but the machine may be at load average 10.
DEADLINE_SECONDS = 60.0


class Refused(Exception):
    pass


async def _free(service: ArtifactService, account_id: str) -> int:
    row = await service.db.read(lambda tx: tx.one(FREE_OF, (account_id,)))
    assert row is not None
    return int(row["free_remaining"])


async def test_a_unit_that_raises_leaves_nothing_behind(service: ArtifactService) -> None:
    account = await register(service)
    before = await _free(service, account.id)

    def unit(tx: Tx) -> None:
        tx.execute(SET_FREE, (before + 7, account.id))
        tx.defer(SET_FREE, (before + 8, account.id))
        raise Refused

    with pytest.raises(Refused):
        await service.db.write(unit)
    assert await _free(service, account.id) == before


async def test_a_deferred_write_is_committed_with_the_unit(service: ArtifactService) -> None:
    account = await register(service)
    await service.db.write(lambda tx: tx.defer(SET_FREE, (41, account.id)))
    assert await _free(service, account.id) == 41


async def test_a_failing_deferred_write_fails_the_unit_and_undoes_its_other_writes(service: ArtifactService) -> None:
    account = await register(service)
    before = await _free(service, account.id)

    def unit(tx: Tx) -> int:
        tx.execute(SET_FREE, (before + 1, account.id))
        # A duplicate primary key: the failure surfaces at the unit's next round trip (here its COMMIT).
        tx.defer(
            "INSERT INTO server_secrets (name, value) VALUES (?, ?)",
            ("duplicate-probe", "a"),
        )
        tx.defer(
            "INSERT INTO server_secrets (name, value) VALUES (?, ?)",
            ("duplicate-probe", "b"),
        )
        return 1

    with pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError)):
        await service.db.write(unit)
    assert await _free(service, account.id) == before
    probe = await service.db.read(
        lambda tx: tx.one("SELECT value FROM server_secrets WHERE name = ?", ("duplicate-probe",))
    )
    assert probe is None


async def test_the_last_statement_commits_even_when_the_unit_raises_after_it(service: ArtifactService) -> None:
    account = await register(service)

    def unit(tx: Tx) -> None:
        tx.execute(SET_FREE, (12, account.id), last=True)
        raise Refused

    with pytest.raises(Refused):
        await service.db.write(unit)
    assert await _free(service, account.id) == 12


async def test_a_statement_after_the_last_one_is_refused(service: ArtifactService) -> None:
    account = await register(service)

    def unit(tx: Tx) -> None:
        tx.one(FREE_OF, (account.id,), last=True)
        tx.execute(SET_FREE, (99, account.id))

    with pytest.raises(RuntimeError):
        await service.db.write(unit)
    assert await _free(service, account.id) != 99


async def test_a_failing_last_statement_undoes_the_unit(service: ArtifactService) -> None:
    account = await register(service)
    before = await _free(service, account.id)

    def unit(tx: Tx) -> None:
        tx.execute(SET_FREE, (before + 3, account.id))
        tx.defer("INSERT INTO server_secrets (name, value) VALUES (?, ?)", ("last-probe", "a"))
        tx.execute("INSERT INTO server_secrets (name, value) VALUES (?, ?)", ("last-probe", "b"), last=True)

    with pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError)):
        await service.db.write(unit)
    assert await _free(service, account.id) == before


async def test_a_required_last_statement_answering_a_row_commits_the_unit(service: ArtifactService) -> None:
    account = await register(service)

    def unit(tx: Tx) -> int:
        tx.defer(SET_FREE, (20, account.id))
        row = tx.one(SET_FREE_RETURNING, (21, account.id, 0), last=True, required=True)
        assert row is not None
        return int(row["free_remaining"])

    assert await service.db.write(unit) == 21
    assert await _free(service, account.id) == 21


async def test_a_required_last_statement_answering_no_row_commits_nothing(service: ArtifactService) -> None:
    account = await register(service)
    before = await _free(service, account.id)
    for _ in range(3):  # the pool may hand out the same connection each time: it serves on

        def unit(tx: Tx) -> None:
            tx.execute(SET_FREE, (before + 1, account.id))
            tx.defer(SET_FREE, (before + 2, account.id))
            # The guard fails: no row has that many free uploads.
            tx.one(SET_FREE_RETURNING, (before + 3, account.id, 10**9), last=True, required=True)

        with pytest.raises(RowMissing):
            await service.db.write(unit)
        assert await _free(service, account.id) == before
    await service.db.write(lambda tx: tx.one(SET_FREE_RETURNING, (7, account.id, 0), last=True, required=True))
    assert await _free(service, account.id) == 7


async def test_a_required_statement_answering_no_row_fails_the_unit_before_its_end(service: ArtifactService) -> None:
    account = await register(service)
    before = await _free(service, account.id)

    def unit(tx: Tx) -> None:
        tx.execute(SET_FREE, (before + 1, account.id))
        tx.one(FREE_OF, ("no-such-account",), required=True)

    with pytest.raises(RowMissing):
        await service.db.write(unit)
    assert await _free(service, account.id) == before


async def test_values_round_trip_through_parameters_and_rows(service: ArtifactService) -> None:
    big = 2**40 + 3
    text = "Grüße, 世界 ✓"
    row = await service.db.read(
        lambda tx: tx.one("SELECT ? AS big, ? AS text, ? AS absent, ? + 1 AS sum", (big, text, None, big))
    )
    assert row == {"big": big, "text": text, "absent": None, "sum": big + 1}


async def test_after_a_failed_preparation_the_connection_and_the_statement_cache_still_work(
    service: ArtifactService, backend: str
) -> None:
    account = await register(service)
    for _ in range(3):  # the pool may hand out the same connection each time
        with pytest.raises(Exception):  # noqa: B017 - a syntax error, named per driver
            await service.db.write(lambda tx: tx.one("SELEKT ? AS x", (1,)))
        assert await _free(service, account.id) >= 0
        await service.db.write(lambda tx: tx.execute(SET_FREE, (5, account.id)))
        assert await _free(service, account.id) == 5


@pytest.mark.parametrize(
    ("first_write", "final"),
    [("execute", {}), ("defer", {"last": True, "required": True})],
    ids=["plain", "required-last"],
)
async def test_a_unit_cancelled_mid_statement_leaves_the_pool_serving(
    service: ArtifactService, backend: str, first_write: str, final: dict[str, bool]
) -> None:
    if not backend.startswith("postgres"):
        pytest.skip("SQLite statements run inline: nothing can be cancelled half-way")
    account = await register(service)

    def slow(tx: Tx) -> None:
        getattr(tx, first_write)(SET_FREE, (77, account.id))
        tx.one("SELECT pg_sleep(30) AS slept", **final)

    task = asyncio.ensure_future(service.db.write(slow))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Every connection of the pool still answers, and the cancelled unit's write is gone.
    answers = await asyncio.wait_for(asyncio.gather(*(_free(service, account.id) for _ in range(12))), DEADLINE_SECONDS)
    assert set(answers) == {answers[0]} and answers[0] != 77


@pytest.mark.parametrize("final", [{}, {"last": True, "required": True}], ids=["plain", "required-last"])
async def test_a_backend_killed_mid_transaction_fails_that_unit_only(
    service: ArtifactService, backend: str, final: dict[str, bool]
) -> None:
    if not backend.startswith("postgres"):
        pytest.skip("PostgreSQL backends only")
    account = await register(service)

    def suicidal(tx: Tx) -> None:
        tx.execute(SET_FREE, (55, account.id))
        tx.one("SELECT pg_terminate_backend(pg_backend_pid()) AS gone", **final)

    with pytest.raises(StoreError) as raised:
        await service.db.write(suicidal)
    assert raised.value.code == "service_unavailable"
    assert await asyncio.wait_for(_free(service, account.id), DEADLINE_SECONDS) != 55
    await service.db.write(lambda tx: tx.one(SET_FREE_RETURNING, (56, account.id, 0), **final))
    assert await _free(service, account.id) == 56


async def test_a_dropped_connection_takes_its_statement_cache_with_it(service: ArtifactService, backend: str) -> None:
    if not backend.startswith("postgres"):
        pytest.skip("PostgreSQL connections only")
    database = service.db
    assert isinstance(database, PostgresDatabase)
    connection = await psycopg.AsyncConnection.connect(service.settings.database_url, autocommit=True)
    wire = database._wire(connection)
    assert await wire.one("SELECT $1::bigint AS x", (3,)) == {"x": 3}
    assert database._wire(connection) is wire  # one wire per connection, its statements prepared once
    wire.unwatch()  # as every way a connection leaves the store does: the loop watches its socket till then
    await connection.close()
    gone = weakref.ref(connection)
    del connection, wire
    gc.collect()
    assert gone() is None

"""Expiry, sweeping, deletion and the storage invariant (SPEC section 7)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from store import Account, ArtifactService, ManualClock, Settings, StoreError, open_service
from tests.factories import (
    blob_key,
    blob_keys,
    count,
    failed_output_id,
    future_iso,
    overrides,
    partial_keys,
    partial_write_bytes,
    plant_blob,
    race,
    read_content,
    register,
    rows,
    upload,
    wait_for_partials,
)


def status_in_db(service: ArtifactService, output_id: str) -> str:
    (row,) = rows(service, "SELECT status FROM outputs WHERE id = ?", (output_id,))
    return str(row["status"])


async def used(service: ArtifactService, account: Account) -> int:
    return (await service.account(account.id)).storage_used_bytes


@pytest.fixture
def second_service(settings: Settings, clock: ManualClock) -> Iterator[ArtifactService]:
    """Another service on the same database and blobs (as a second server process would be)."""
    other = open_service(settings, clock=clock, run_migrations=False)
    yield other
    other.close()


# --- expiry on read ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_expiry_is_evaluated_on_read_before_any_sweep(service: ArtifactService, clock: ManualClock) -> None:
    """Past expiresAt an unswept output reads as expired: URLs null, content refused, listed as expired."""
    account = await register(service)
    created = await upload(service, account, "k", public=True, expiresAt=future_iso(service, 60))
    output_id = created.body["outputId"]
    clock.advance(60)
    result = await service.get_output(account, output_id)
    assert result.gone is True
    assert result.body["status"] == "expired"
    assert result.body["contentUrl"] is None and result.body["publicUrl"] is None
    contract = result.body["agent_contract"]
    assert (contract["content_accessible"], contract["safe_to_share"], contract["expires_in_seconds"]) == (
        False,
        False,
        None,
    )
    for read in (service.open_content(account, output_id), service.open_public(output_id)):
        with pytest.raises(StoreError) as caught:
            await read
        assert (caught.value.code, caught.value.status) == ("output_expired", 410)
    expired_page = await service.list_outputs(account, status="expired")
    assert [o["outputId"] for o in expired_page["outputs"]] == [output_id]
    assert expired_page["outputs"][0]["contentUrl"] is None
    assert (await service.list_outputs(account, status="ready"))["outputs"] == []
    assert status_in_db(service, output_id) == "ready", "nothing was swept yet"
    assert service.check().problems == []


@pytest.mark.anyio
async def test_output_is_readable_until_the_last_millisecond(service: ArtifactService, clock: ManualClock) -> None:
    """One millisecond before expiresAt the output is ready and its content opens."""
    account = await register(service)
    created = await upload(service, account, "k", expiresAt=future_iso(service, 60))
    clock.advance(59.999)
    assert (await service.get_output(account, created.body["outputId"])).status == "ready"
    content = await service.open_content(account, created.body["outputId"])
    assert await read_content(service, content) == b"hello, artifact"


# --- sweep ---------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_sweep_expires_due_outputs_deletes_blobs_and_gives_storage_back(
    service: ArtifactService, clock: ManualClock
) -> None:
    """A sweep marks due rows expired, removes their blobs and returns their bytes; live ones stay."""
    account = await register(service)
    short_a = await upload(service, account, "a", b"a" * 10, expiresAt=future_iso(service, 60))
    short_b = await upload(service, account, "b", b"b" * 20, expiresAt=future_iso(service, 120))
    kept = await upload(service, account, "c", b"c" * 40, expiresAt=future_iso(service, 3600))
    assert await used(service, account) == 70
    clock.advance(120)
    report = await service.sweep()
    assert (report.expired, report.blobs_deleted) == (2, 2)
    assert await used(service, account) == 40
    assert status_in_db(service, short_a.body["outputId"]) == "expired"
    assert status_in_db(service, short_b.body["outputId"]) == "expired"
    assert status_in_db(service, kept.body["outputId"]) == "ready"
    assert blob_keys(service) == [blob_key(account.id, kept.body["outputId"])]
    nulled = rows(service, "SELECT COUNT(*) AS n FROM outputs WHERE status = 'expired' AND blob_key IS NULL")
    assert nulled[0]["n"] == 2
    gone = await service.get_output(account, short_a.body["outputId"])
    assert (gone.status, gone.body["contentUrl"]) == ("expired", None)
    assert service.check().problems == []


@pytest.mark.anyio
async def test_sweeping_twice_gives_storage_back_once(service: ArtifactService, clock: ManualClock) -> None:
    """A second sweep finds nothing to do and changes nothing."""
    account = await register(service)
    await upload(service, account, "a", b"a" * 10, expiresAt=future_iso(service, 60))
    await upload(service, account, "b", b"b" * 25)
    clock.advance(61)
    first = await service.sweep()
    second = await service.sweep()
    assert (first.expired, first.blobs_deleted) == (1, 1)
    assert (second.expired, second.blobs_deleted, second.stale_slots) == (0, 0, 0)
    assert await used(service, account) == 25
    assert len(blob_keys(service)) == 1
    assert service.check().problems == []


@pytest.mark.anyio
@overrides(free_uploads=40)
@pytest.mark.parametrize(
    "sweepers", [pytest.param("same-service", id="one-service"), pytest.param("two", id="two-services")]
)
async def test_concurrent_sweeps_give_storage_back_exactly_once(
    service: ArtifactService,
    second_service: ArtifactService,
    clock: ManualClock,
    sweepers: str,
) -> None:
    """Two sweeps racing over the same due rows expire each once and return each byte once."""
    account = await register(service)
    sizes = [n + 1 for n in range(30)]
    for n, size in enumerate(sizes):
        await upload(service, account, f"due-{n}", b"d" * size, expiresAt=future_iso(service, 60))
    keeper = await upload(service, account, "keep", b"k" * 1000)
    assert await used(service, account) == sum(sizes) + 1000
    clock.advance(60)
    other = service if sweepers == "same-service" else second_service
    reports = await race([service.sweep, other.sweep])
    assert sum(r.expired for r in reports) == 30
    assert await used(service, account) == 1000
    assert count(service, "outputs", "status = 'expired'") == 30
    assert blob_keys(service) == [blob_key(account.id, keeper.body["outputId"])]
    assert (await service.sweep()).expired == 0
    assert await used(service, account) == 1000
    assert service.check().problems == []


@pytest.mark.anyio
async def test_sweep_reclaims_a_stale_in_flight_slot(service: ArtifactService, clock: ManualClock) -> None:
    """An upload abandoned mid-stream for over 60 s loses its slot and partial blob to the sweep."""
    account = await register(service)
    abandoned = await service.begin_upload(account, "k")
    abandoned.set_fields({"mimeType": "application/octet-stream"})
    await abandoned.write(b"p" * partial_write_bytes(service))
    (partial,) = await wait_for_partials(service, 1)
    assert partial.startswith(f"{account.id}/out_")
    clock.advance(30)
    assert (await service.sweep()).stale_slots == 0, "30 s idle is not stale yet"
    assert count(service, "idempotency_keys") == 1
    clock.advance(31)
    report = await service.sweep()
    assert report.stale_slots == 1
    assert count(service, "idempotency_keys") == 0
    assert partial_keys(service) == [] and blob_keys(service) == []
    assert (await service.account(account.id)).free_remaining == 5
    fresh = await upload(service, account, "k", b"second try")
    assert fresh.replayed is False
    assert service.check().problems == []


@pytest.mark.anyio
async def test_sweep_prunes_rate_events_older_than_the_window(service: ArtifactService, clock: ManualClock) -> None:
    """Rate events that left every window are deleted by the sweep; recent ones stay."""
    account = await register(service)
    await upload(service, account, "old-1")
    await upload(service, account, "old-2")
    old = count(service, "rate_events")
    assert old == 3, "one registration and two uploads"
    clock.advance(3000)
    await upload(service, account, "recent")
    clock.advance(601)
    report = await service.sweep()
    assert report.pruned_events == old
    assert count(service, "rate_events") == 1
    assert (await service.sweep()).pruned_events == 0


@pytest.mark.anyio
async def test_sweep_forgets_completed_keys_after_seven_days(service: ArtifactService, clock: ManualClock) -> None:
    """Completed idempotency keys past the 7-day retention are pruned; newer ones are kept."""
    account = await register(service)
    await upload(service, account, "old", expiresAt=future_iso(service, 20 * 86_400))
    clock.advance(86_400)
    await upload(service, account, "new", expiresAt=future_iso(service, 20 * 86_400))
    clock.advance(6 * 86_400 + 1)
    await service.sweep()
    assert [r["key"] for r in rows(service, "SELECT key FROM idempotency_keys")] == ["new"]


# --- delete --------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_delete_gives_storage_back_once_and_repeats_idempotently(
    service: ArtifactService, clock: ManualClock
) -> None:
    """DELETE removes the blob and returns the bytes once; deleting again returns the same deleted output."""
    account = await register(service)
    doomed = await upload(service, account, "a", b"a" * 30)
    await upload(service, account, "b", b"b" * 5)
    output_id = doomed.body["outputId"]
    first = await service.delete_output(account, output_id)
    assert first["status"] == "deleted"
    assert first["contentUrl"] is None and first["publicUrl"] is None
    assert "deletedAt" in first
    assert await used(service, account) == 5
    assert not await service.blobs.exists(blob_key(account.id, output_id))
    clock.advance(10)
    second = await service.delete_output(account, output_id)
    assert second == first
    assert await used(service, account) == 5
    assert (await service.account(account.id)).free_remaining == 3, "the upload unit is not refunded"
    shown = await service.get_output(account, output_id)
    assert (shown.gone, shown.status) == (True, "deleted")
    with pytest.raises(StoreError) as caught:
        await service.open_content(account, output_id)
    assert (caught.value.code, caught.value.status) == ("output_deleted", 410)
    assert service.check().problems == []


@pytest.mark.anyio
async def test_concurrent_deletes_give_storage_back_once(
    service: ArtifactService, second_service: ArtifactService
) -> None:
    """Several deletes of one output racing (in two services) return its bytes exactly once."""
    account = await register(service)
    doomed = await upload(service, account, "a", b"a" * 30)
    await upload(service, account, "b", b"b" * 7)

    def delete(active: ArtifactService) -> Callable[[], Awaitable[dict[str, Any]]]:
        return lambda: active.delete_output(account, doomed.body["outputId"])

    bodies = await race([delete(service if n % 2 else second_service) for n in range(6)])
    assert [b["status"] for b in bodies] == ["deleted"] * 6
    assert await used(service, account) == 7
    assert service.check().problems == []


@pytest.mark.anyio
@pytest.mark.parametrize("swept", [pytest.param(False, id="unswept"), pytest.param(True, id="swept")])
async def test_deleting_an_expired_output_answers_output_expired(
    service: ArtifactService, clock: ManualClock, swept: bool
) -> None:
    """DELETE on an expired output is 410 output_expired, swept or not, and changes nothing."""
    account = await register(service)
    created = await upload(service, account, "k", b"x" * 12, expiresAt=future_iso(service, 60))
    clock.advance(61)
    if swept:
        await service.sweep()
    before = await service.account(account.id)
    with pytest.raises(StoreError) as caught:
        await service.delete_output(account, created.body["outputId"])
    assert (caught.value.code, caught.value.status) == ("output_expired", 410)
    assert await service.account(account.id) == before
    assert (await service.get_output(account, created.body["outputId"])).status == "expired"


@pytest.mark.anyio
async def test_deleting_an_unknown_or_foreign_output_is_not_found(service: ArtifactService) -> None:
    """Another account's output and an id that never existed are both output_not_found."""
    owner, stranger = await register(service), await register(service)
    created = await upload(service, owner, "k")
    for output_id in (created.body["outputId"], "out_01JAAAAAAAAAAAAAAAAAAAAAAA"):
        with pytest.raises(StoreError) as caught:
            await service.delete_output(stranger, output_id)
        assert (caught.value.code, caught.value.status) == ("output_not_found", 404)
    assert (await service.get_output(owner, created.body["outputId"])).status == "ready"


@pytest.mark.anyio
async def test_deleting_a_failed_output_returns_no_storage(
    service: ArtifactService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed output holds no bytes: deleting it leaves storage untouched."""
    account = await register(service)
    await upload(service, account, "ok", b"x" * 9)
    failed_id = await failed_output_id(service, account, "bad", monkeypatch)
    deleted = await service.delete_output(account, failed_id)
    assert deleted["status"] == "deleted"
    assert await used(service, account) == 9
    assert service.check().problems == []


# --- the invariant check -------------------------------------------------------------------------


async def mixed_workload(
    service: ArtifactService, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> tuple[Account, Account]:
    alice, bob = await register(service), await register(service)
    await upload(service, alice, "a1", b"a" * 100, public=True)
    await upload(service, alice, "a1", b"a" * 100, public=True)  # replay
    deleted = await upload(service, alice, "a2", b"b" * 50)
    await service.delete_output(alice, deleted.body["outputId"])
    await upload(service, alice, "a3", b"c" * 70, expiresAt=future_iso(service, 60))
    await upload(service, bob, "b1", b"d" * 33, expiresAt=future_iso(service, 30))
    await upload(service, bob, "b2", b"e" * 44, expiresAt=future_iso(service, 600))
    await failed_output_id(service, bob, "b3", monkeypatch)
    clock.advance(45)
    await service.sweep()  # expires b1 only
    clock.advance(20)  # a3 is now expired but not swept
    open_upload = await service.begin_upload(bob, "b4")
    open_upload.set_fields({"mimeType": "text/plain"})
    await open_upload.write(b"f" * partial_write_bytes(service))  # an in-flight partial blob
    (partial,) = await wait_for_partials(service, 1)
    assert partial.startswith(f"{bob.id}/out_")
    return alice, bob


@pytest.mark.anyio
async def test_check_is_clean_after_a_mixed_workload(
    service: ArtifactService, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Uploads, replays, deletes, failures, swept and unswept expiries and an open upload: no drift."""
    alice, bob = await mixed_workload(service, clock, monkeypatch)
    report = service.check()
    assert report.problems == []
    assert (report.accounts, report.outputs) == (2, 6)
    assert await used(service, alice) == 170, "a3 is expired but not yet swept, so it still counts"
    assert await used(service, bob) == 44
    await service.sweep()
    assert await used(service, alice) == 100
    assert service.check().problems == []


async def _raise_storage(service: ArtifactService, account: Account) -> str:
    service.db.write_sync(
        lambda tx: tx.execute(
            "UPDATE accounts SET storage_used_bytes = storage_used_bytes + 1 WHERE id = ?", (account.id,)
        )
    )
    return account.id


async def _lower_storage(service: ArtifactService, account: Account) -> str:
    service.db.write_sync(
        lambda tx: tx.execute("UPDATE accounts SET storage_used_bytes = 0 WHERE id = ?", (account.id,))
    )
    return account.id


async def _delete_blob(service: ArtifactService, account: Account) -> str:
    (row,) = rows(
        service, "SELECT id FROM outputs WHERE account_id = ? AND status = 'ready' AND public = 1", (account.id,)
    )
    key = blob_key(account.id, row["id"])
    assert key in blob_keys(service)
    service.blobs.delete_sync(key)
    return str(row["id"])


async def _orphan_blob(service: ArtifactService, account: Account) -> str:
    await plant_blob(service, blob_key(account.id, "out_01JORPHANORPHANORPHANORPHA"), b"nobody's")
    return "out_01JORPHANORPHANORPHANORPHA"


async def _orphan_blob_of_unknown_account(service: ArtifactService, account: Account) -> str:
    await plant_blob(service, blob_key("key_01JNOBODYNOBODYNOBODYNOBOD", "out_01JSTRAYSTRAYSTRAYSTRAYSTR"), b"stray")
    return "out_01JSTRAYSTRAYSTRAYSTRAYSTR"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(_raise_storage, id="storage-used-too-high"),
        pytest.param(_lower_storage, id="storage-used-too-low"),
        pytest.param(_delete_blob, id="blob-of-ready-output-missing"),
        pytest.param(_orphan_blob, id="orphan-blob"),
        pytest.param(_orphan_blob_of_unknown_account, id="orphan-blob-of-unknown-account"),
    ],
)
async def test_check_reports_drift(
    service: ArtifactService,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
    corrupt: Callable[[ArtifactService, Account], Awaitable[str]],
) -> None:
    """Each kind of corruption made directly in the database or blob store is reported, naming what drifted."""
    alice, _bob = await mixed_workload(service, clock, monkeypatch)
    assert service.check().problems == []
    culprit = await corrupt(service, alice)
    problems = service.check().problems
    assert len(problems) == 1, problems
    assert culprit in problems[0]


@pytest.mark.anyio
@pytest.mark.parametrize("ending", [pytest.param("delete", id="delete"), pytest.param("expiry", id="expiry")])
async def test_blob_removal_that_fails_is_retried_by_the_next_sweep(
    service: ArtifactService,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
    ending: str,
) -> None:
    """When the blob store is down the row still ends and its bytes come back once; a later sweep removes the blob."""
    account = await register(service)
    doomed = await upload(service, account, "a", b"a" * 20, expiresAt=future_iso(service, 60))
    await upload(service, account, "b", b"b" * 5)
    output_id = doomed.body["outputId"]
    key = blob_key(account.id, output_id)

    async def blob_store_down(_key: str) -> None:
        raise StoreError("service_unavailable", "The blob store is temporarily unavailable.")

    with monkeypatch.context() as patch:
        patch.setattr(service.blobs, "delete", blob_store_down)
        if ending == "delete":
            assert (await service.delete_output(account, output_id))["status"] == "deleted"
        else:
            clock.advance(60)
            assert (await service.sweep()).expired == 1
        assert await service.blobs.exists(key), "the blob could not be removed yet"
        assert await used(service, account) == 5
        assert service.check().problems == []
    await service.sweep()
    assert not await service.blobs.exists(key)
    await service.sweep()
    assert await used(service, account) == 5
    assert len(blob_keys(service)) == 1
    assert service.check().problems == []

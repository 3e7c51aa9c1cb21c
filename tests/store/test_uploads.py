"""Uploads through the store (SPEC sections 5, 6 and 7): charging, idempotency, and what failures leave behind."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from store import Account, ArtifactService, ManualClock, Settings, StoreError, UploadSession
from store.clock import iso_ms
from tests.factories import (
    blob_key,
    blob_keys,
    break_blob_commits,
    count,
    future_iso,
    overrides,
    partial_keys,
    partial_write_bytes,
    read_blob,
    register,
    rows,
    upload,
    upload_error,
    wait_for_partials,
)

MIB = 1024 * 1024


def slots(service: ArtifactService, account: Account) -> list[dict[str, Any]]:
    return rows(service, "SELECT key, state, output_id FROM idempotency_keys WHERE account_id = ?", (account.id,))


def outputs(service: ArtifactService, account: Account) -> list[dict[str, Any]]:
    return rows(service, "SELECT id, status, size_bytes FROM outputs WHERE account_id = ? ORDER BY id", (account.id,))


async def assert_untouched(service: ArtifactService, account: Account, key: str) -> None:
    """Nothing of a refused upload remains: no charge, no blob, no partial, no row, no slot for its key."""
    now = await service.account(account.id)
    assert (now.free_remaining, now.credits_remaining, now.storage_used_bytes) == (
        account.free_remaining,
        account.credits_remaining,
        account.storage_used_bytes,
    )
    assert [s for s in slots(service, account) if s["key"] == key] == []
    assert partial_keys(service) == []
    assert service.check().problems == []


# --- success and charging ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_upload_stores_the_bytes_and_charges_one_free_unit(service: ArtifactService) -> None:
    """A new upload: one ready row, one blob with the exact bytes, one free unit and its size charged."""
    account = await register(service)
    assert (account.free_remaining, account.credits_remaining, account.storage_used_bytes) == (5, 0, 0)
    content = b"col1,col2\n1,2\n"
    result = await upload(service, account, "k1", content, mimeType="text/csv", label="data.csv")
    body = result.body
    assert result.replayed is False
    assert body["status"] == "ready"
    assert body["sizeBytes"] == len(content)
    assert body["mimeType"] == "text/csv"
    assert body["label"] == "data.csv"
    assert body["outputId"].startswith("out_")
    assert body["contentUrl"] == f"http://testserver/v1/outputs/{body['outputId']}/content"
    assert body["publicUrl"] is None
    assert (result.account.free_remaining, result.account.credits_remaining) == (4, 0)
    assert result.account.storage_used_bytes == len(content)
    stored = await service.account(account.id)
    assert stored == result.account
    assert blob_keys(service) == [blob_key(account.id, body["outputId"])]
    assert await read_blob(service, blob_key(account.id, body["outputId"])) == content
    assert [(o["id"], o["status"], o["size_bytes"]) for o in outputs(service, account)] == [
        (body["outputId"], "ready", len(content))
    ]
    assert partial_keys(service) == []


@pytest.mark.anyio
async def test_free_units_are_spent_before_credits(service: ArtifactService) -> None:
    """Five free uploads, then quota_exhausted; after a grant each upload spends one credit."""
    account = await register(service)
    balances = []
    for n in range(5):
        result = await upload(service, account, f"free-{n}", f"free {n}".encode())
        balances.append((result.account.free_remaining, result.account.credits_remaining))
    assert balances == [(4, 0), (3, 0), (2, 0), (1, 0), (0, 0)]
    refused = await upload_error(service, account, "paid-0", b"paid 0")
    assert refused.code == "quota_exhausted"
    granted = service.grant(account.id, credits=2, storage_bytes=0)
    assert (granted.free_remaining, granted.credits_remaining) == (0, 2)
    first = await upload(service, account, "paid-0", b"paid 0")
    second = await upload(service, account, "paid-1", b"paid 1")
    assert (first.account.free_remaining, first.account.credits_remaining) == (0, 1)
    assert (second.account.free_remaining, second.account.credits_remaining) == (0, 0)
    assert (await upload_error(service, account, "paid-2")).code == "quota_exhausted"
    assert count(service, "outputs", "account_id = ?", (account.id,)) == 7
    assert service.check().problems == []


@pytest.mark.anyio
async def test_granted_credits_are_used_only_after_free_units(service: ArtifactService) -> None:
    """With both free units and credits, the free ones go first."""
    account = await register(service)
    service.grant(account.id, credits=3, storage_bytes=0)
    result = await upload(service, account, "k")
    assert (result.account.free_remaining, result.account.credits_remaining) == (4, 3)


@pytest.mark.anyio
async def test_uploads_sum_their_sizes_into_storage_used(service: ArtifactService) -> None:
    """storage_used_bytes is the sum of the stored sizes."""
    account = await register(service)
    sizes = [1, 10, 1000, 65_537]
    for n, size in enumerate(sizes):
        await upload(service, account, f"k{n}", b"x" * size)
    assert (await service.account(account.id)).storage_used_bytes == sum(sizes)


@pytest.mark.anyio
async def test_large_upload_is_streamed_to_one_blob(service: ArtifactService) -> None:
    """A multi-MiB upload in many chunks ends as one blob with the exact bytes and size.

    6 MiB: past the file store's 1 MiB spill and past one 5 MiB S3 part, so both backends stream it.
    """
    account = await register(service)
    chunk = bytes(range(256)) * 1024
    session = await service.begin_upload(account, "big")
    async with session:
        session.set_fields({"mimeType": "application/octet-stream"})
        for _ in range(24):
            await session.write(chunk)
        result = await session.finish()
    assert result.body["sizeBytes"] == 24 * len(chunk)
    assert blob_keys(service) == [blob_key(account.id, result.body["outputId"])]
    assert await read_blob(service, blob_key(account.id, result.body["outputId"])) == chunk * 24
    assert partial_keys(service) == []


# --- replay and conflict -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_replay_returns_the_same_output_without_charge_or_new_blob(service: ArtifactService) -> None:
    """Same key, same request: same body, replayed, no second charge, row or blob."""
    account = await register(service)
    first = await upload(service, account, "k", b"payload", label="a")
    for _ in range(3):
        again = await upload(service, account, "k", b"payload", label="a")
        assert again.replayed is True
        assert again.body == first.body
    after = await service.account(account.id)
    assert (after.free_remaining, after.storage_used_bytes) == (4, len(b"payload"))
    assert len(blob_keys(service)) == 1
    assert len(outputs(service, account)) == 1
    assert partial_keys(service) == []


@pytest.mark.anyio
async def test_replay_shows_the_current_representation(service: ArtifactService, clock: ManualClock) -> None:
    """A replay later on reports the output as it is now (expires_in_seconds has moved on)."""
    account = await register(service)
    first = await upload(service, account, "k", expiresAt=future_iso(service, 1000))
    clock.advance(400)
    again = await upload(service, account, "k", expiresAt=first.body["expiresAt"])
    assert again.replayed is True
    assert again.body["outputId"] == first.body["outputId"]
    assert again.body["agent_contract"]["expires_in_seconds"] == 600


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("content", "changed"),
    [
        pytest.param(b"other bytes", {}, id="content"),
        pytest.param(b"payload", {"mimeType": "application/json"}, id="mime-type"),
        pytest.param(b"payload", {"label": "b"}, id="label"),
        pytest.param(b"payload", {"public": True}, id="public"),
        pytest.param(b"payload", {"metadata": {"jobId": "j2"}}, id="metadata"),
        pytest.param(b"payload", {"expiresAt": "explicit-default"}, id="expires-at-explicit-default"),
    ],
)
async def test_same_key_with_a_different_request_conflicts(
    service: ArtifactService, content: bytes, changed: dict[str, Any]
) -> None:
    """A completed key reused with another fingerprint answers idempotency_conflict and charges nothing."""
    account = await register(service)
    first = await upload(service, account, "k", b"payload", label="a", metadata={"jobId": "j1"})
    if changed.get("expiresAt") == "explicit-default":
        changed = {"expiresAt": first.body["expiresAt"]}
    fields = {"label": "a", "metadata": {"jobId": "j1"}, **changed}
    before = await service.account(account.id)
    error = await upload_error(service, account, "k", content, **fields)
    assert error.code == "idempotency_conflict"
    assert error.status == 409
    assert await service.account(account.id) == before
    assert len(blob_keys(service)) == 1
    assert len(outputs(service, account)) == 1
    assert partial_keys(service) == []
    assert [s["state"] for s in slots(service, account)] == ["completed"]


@pytest.mark.anyio
async def test_replay_after_delete_shows_deleted(service: ArtifactService) -> None:
    """Replaying the key of a deleted output answers with the output, now deleted, and charges nothing."""
    account = await register(service)
    first = await upload(service, account, "k")
    await service.delete_output(account, first.body["outputId"])
    before = await service.account(account.id)
    again = await upload(service, account, "k")
    assert again.replayed is True
    assert again.body["outputId"] == first.body["outputId"]
    assert again.body["status"] == "deleted"
    assert "deletedAt" in again.body
    assert again.body["contentUrl"] is None
    assert await service.account(account.id) == before
    assert len(outputs(service, account)) == 1


@pytest.mark.anyio
async def test_keys_are_scoped_to_their_account(service: ArtifactService) -> None:
    """Two accounts using the same key get two outputs, each charged to its own account."""
    alice, bob = await register(service), await register(service)
    a = await upload(service, alice, "shared-key", b"alice")
    b = await upload(service, bob, "shared-key", b"bob's bytes")
    assert a.replayed is False and b.replayed is False
    assert a.body["outputId"] != b.body["outputId"]
    assert (await service.account(alice.id)).free_remaining == 4
    assert (await service.account(bob.id)).free_remaining == 4
    assert len(blob_keys(service)) == 2


@pytest.mark.anyio
async def test_json_and_multipart_uploads_of_one_artifact_share_a_fingerprint(service: ArtifactService) -> None:
    """The same artifact sent as JSON, then as multipart fields in another order, is a replay."""
    account = await register(service)
    content = b'{"rows": 3}'
    expires = future_iso(service, 3600)
    document = {
        "mimeType": "application/json",
        "content": base64.b64encode(content).decode(),
        "label": "rows.json",
        "public": True,
        "expiresAt": expires,
        "metadata": {"tags": ["a"], "agentId": "agent-1"},
    }
    session = await service.begin_upload(account, "k")
    async with session:
        await session.accept_json(document)
        first = await session.finish()
    session = await service.begin_upload(account, "k")
    async with session:
        session.add_form_field("metadata", '{"agentId": "agent-1", "tags": ["a"]}')
        await session.write(content[:4])
        session.add_form_field("public", "true")
        await session.write(content[4:])
        session.add_form_field("mimeType", "application/json; charset=utf-8")
        session.add_form_field("expiresAt", expires)
        session.add_form_field("label", "rows.json")
        again = await session.finish()
    assert first.replayed is False
    assert again.replayed is True
    assert again.body["outputId"] == first.body["outputId"]


# --- validation failures -------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("content", "fields", "code"),
    [
        pytest.param(b"x", {"mimeType": "text/markdown"}, "invalid_mime_type", id="mime"),
        pytest.param(b"x", {"expiresAt": "2001-01-01T00:00:00Z"}, "invalid_expiry", id="expiry-past"),
        pytest.param(b"x", {"metadata": {"colour": "red"}}, "invalid_metadata", id="metadata"),
        pytest.param(b"x", {"label": "a\tb"}, "invalid_request", id="label"),
        pytest.param(b"x", {"public": "yes"}, "invalid_request", id="public"),
        pytest.param(b"", {}, "invalid_request", id="empty-content"),
        pytest.param(b"x", {"mimeType": None}, "invalid_request", id="mime-missing"),
        pytest.param(b"x", {"shape": "round"}, "invalid_request", id="unknown-field"),
    ],
)
async def test_validation_failure_leaves_nothing_and_releases_the_key(
    service: ArtifactService, content: bytes, fields: dict[str, Any], code: str
) -> None:
    """A 4xx validation error charges nothing, leaves no blob or row, and the same key then succeeds."""
    account = await register(service)
    error = await upload_error(service, account, "k", content, **fields)
    assert error.code == code, error.message
    assert error.status == 400
    assert blob_keys(service) == []
    assert outputs(service, account) == []
    await assert_untouched(service, account, "k")
    retried = await upload(service, account, "k", b"good content")
    assert retried.replayed is False
    assert retried.body["status"] == "ready"
    assert retried.account.free_remaining == 4


@pytest.mark.anyio
@overrides(max_upload_bytes=6 * MIB)
async def test_payload_over_the_limit_mid_stream_leaves_nothing(service: ArtifactService) -> None:
    """Bytes past the limit end the upload with payload_too_large: no charge, blob, partial, row or slot.

    6 MiB is past both backends' point of writing through (a partial file; an S3 multipart upload).
    """
    account = await register(service)
    session = await service.begin_upload(account, "k")
    with pytest.raises(StoreError) as caught:
        async with session:
            session.set_fields({"mimeType": "application/octet-stream"})
            for n in range(6):
                await session.write(bytes([97 + n]) * MIB)
            (partial,) = await wait_for_partials(service, 1)  # the bytes so far reached the blob store
            assert partial.startswith(f"{account.id}/out_")
            await session.write(b"z")
    assert caught.value.code == "payload_too_large"
    assert caught.value.status == 400
    assert blob_keys(service) == []
    assert outputs(service, account) == []
    await assert_untouched(service, account, "k")


@pytest.mark.anyio
@overrides(max_upload_bytes=1000)
async def test_payload_exactly_at_the_limit_is_accepted(service: ArtifactService) -> None:
    """The limit is inclusive: limit bytes pass, limit + 1 do not."""
    account = await register(service)
    assert (await upload(service, account, "at", b"x" * 1000)).body["sizeBytes"] == 1000
    assert (await upload_error(service, account, "over", b"x" * 1001)).code == "payload_too_large"


@pytest.mark.anyio
@overrides(max_upload_bytes=1000)
async def test_known_size_over_the_limit_is_refused_before_any_write(service: ArtifactService) -> None:
    """A size known up front above the limit is refused when the upload opens: no slot, no writer, no partial."""
    account = await register(service)
    with pytest.raises(StoreError) as caught:
        await service.begin_upload(account, "k", size=1001)
    assert caught.value.code == "payload_too_large"
    assert slots(service, account) == []
    assert blob_keys(service) == [] and partial_keys(service) == []
    await assert_untouched(service, account, "k")


@pytest.mark.anyio
@overrides(max_upload_bytes=1000, storage_limit_bytes=5000)
async def test_least_size_feeds_only_the_storage_pre_check(service: ArtifactService) -> None:
    """A lower bound on the size (a body's length less its framing) is no refusal of its own above the
    file limit; above the free storage it is ``storage_limit_reached`` before any byte is sent."""
    account = await register(service)
    session = await service.begin_upload(account, "k", min_size=1001)
    assert [s["key"] for s in slots(service, account)] == ["k"]
    await session.abort()
    with pytest.raises(StoreError) as caught:
        await service.begin_upload(account, "k", min_size=5001)
    assert caught.value.code == "storage_limit_reached"
    await assert_untouched(service, account, "k")


# --- quota failures ------------------------------------------------------------------------------


@pytest.mark.anyio
@overrides(free_uploads=0)
async def test_quota_exhausted_is_refused_before_the_body_and_releases_the_key(service: ArtifactService) -> None:
    """With no free units or credits, opening the upload fails; after a grant the same key succeeds."""
    account = await register(service)
    with pytest.raises(StoreError) as caught:
        await service.begin_upload(account, "k")
    assert caught.value.code == "quota_exhausted"
    assert caught.value.status == 402
    assert blob_keys(service) == [] and outputs(service, account) == []
    await assert_untouched(service, account, "k")
    service.grant(account.id, credits=1, storage_bytes=0)
    result = await upload(service, account, "k")
    assert (result.replayed, result.account.credits_remaining) == (False, 0)


async def _feed(session: UploadSession, content: bytes) -> None:
    """A plain-text upload's fields and content, not finished yet."""
    session.set_fields({"mimeType": "text/plain"})
    await session.write(content)


@pytest.mark.anyio
@overrides(free_uploads=1)
async def test_quota_taken_by_a_concurrent_upload_is_refused_at_settle(service: ArtifactService) -> None:
    """Two uploads open with one unit left: the second to finish gets quota_exhausted and leaves nothing."""
    account = await register(service)
    first = await service.begin_upload(account, "k1")
    second = await service.begin_upload(account, "k2")
    async with first:
        await _feed(first, b"first")
        await first.finish()
    with pytest.raises(StoreError) as caught:
        async with second:
            await _feed(second, b"second")
            await second.finish()
    assert caught.value.code == "quota_exhausted"
    assert len(blob_keys(service)) == 1
    assert [o["status"] for o in outputs(service, account)] == ["ready"]
    assert [s["key"] for s in slots(service, account)] == ["k1"]
    after = await service.account(account.id)
    assert (after.free_remaining, after.storage_used_bytes) == (0, len(b"first"))
    assert partial_keys(service) == []
    assert service.check().problems == []


class _GrantBeforeNextRead:
    """The real database; ``arm`` commits a grant just before its next read (between a settle's refused
    charge and the read that names the refusal: a purchase landing at that instant)."""

    def __init__(self, service: ArtifactService) -> None:
        self._service = service
        self._inner = service.db
        self._account_id: str | None = None

    def arm(self, account_id: str) -> None:
        self._account_id = account_id

    async def read(self, work: Any) -> Any:
        if self._account_id is not None:
            account_id, self._account_id = self._account_id, None
            self._service.grant(account_id, credits=1, storage_bytes=0)
        return await self._inner.read(work)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.mark.anyio
@overrides(free_uploads=1)
async def test_a_grant_landing_after_a_refused_charge_lets_the_settle_through_once_more(
    settings: Settings, service: ArtifactService, clock: ManualClock
) -> None:
    """The settle's charge is refused (the last unit went to a concurrent upload), then a credit is
    granted before the refusal is named: the settle runs again and charges the credit, once."""
    granting = _GrantBeforeNextRead(service)
    racing = ArtifactService(settings, granting, service.blobs, clock=clock)  # type: ignore[arg-type]
    account = await register(racing)
    first = await racing.begin_upload(account, "k1")
    second = await racing.begin_upload(account, "k2")
    async with first:
        await _feed(first, b"first")
        await first.finish()
    async with second:
        await _feed(second, b"second")
        granting.arm(account.id)
        result = await second.finish()
    assert (result.replayed, result.account.free_remaining, result.account.credits_remaining) == (False, 0, 0)
    after = await service.account(account.id)
    assert (after.free_remaining, after.credits_remaining, after.storage_used_bytes) == (0, 0, len(b"firstsecond"))
    assert [o["status"] for o in outputs(service, account)] == ["ready", "ready"]
    assert sorted((s["key"], s["state"]) for s in slots(service, account)) == [
        ("k1", "completed"),
        ("k2", "completed"),
    ]
    assert len(blob_keys(service)) == 2
    assert service.check().problems == []


@pytest.mark.anyio
async def test_an_upload_whose_slot_was_reclaimed_is_refused_at_settle_without_charge(
    service: ArtifactService, clock: ManualClock
) -> None:
    """A stalled upload's key is reclaimed by a retry; the stalled one then finishing answers upload_failed,
    stores no row and charges nothing, and the retry's output is the key's."""
    account = await register(service)
    stalled = await service.begin_upload(account, "k")
    clock.advance(service.settings.stale_upload_seconds * 1000 + 1)
    retry = await upload(service, account, "k", b"the retry")
    with pytest.raises(StoreError) as caught:
        async with stalled:
            stalled.set_fields({"mimeType": "text/plain"})
            await stalled.write(b"stalled")
            await stalled.finish()
    assert caught.value.code == "upload_failed"
    assert [o["id"] for o in outputs(service, account)] == [retry.body["outputId"]]
    assert blob_keys(service) == [blob_key(account.id, retry.body["outputId"])]
    after = await service.account(account.id)
    assert (after.free_remaining, after.storage_used_bytes) == (account.free_remaining - 1, len(b"the retry"))
    replay = await upload(service, account, "k", b"the retry")
    assert replay.replayed and replay.body["outputId"] == retry.body["outputId"]
    assert service.check().problems == []


@pytest.mark.anyio
@overrides(storage_limit_bytes=100)
async def test_storage_limit_at_settle_leaves_nothing_and_the_key_works_after_a_delete(
    service: ArtifactService,
) -> None:
    """used + size > limit answers storage_limit_reached; deleting frees room and the same key succeeds."""
    account = await register(service)
    kept = await upload(service, account, "k1", b"x" * 60)
    before = await service.account(account.id)
    error = await upload_error(service, account, "k2", b"y" * 41)
    assert error.code == "storage_limit_reached"
    assert error.status == 402
    assert len(blob_keys(service)) == 1 and len(outputs(service, account)) == 1
    await assert_untouched(service, before, "k2")
    exact = await upload(service, account, "k3", b"z" * 40)
    assert exact.account.storage_used_bytes == 100
    await service.delete_output(account, kept.body["outputId"])
    retried = await upload(service, account, "k2", b"y" * 41)
    assert retried.replayed is False
    assert retried.account.storage_used_bytes == 81


@pytest.mark.anyio
@overrides(storage_limit_bytes=100)
async def test_storage_limit_is_refused_up_front_from_the_declared_length(service: ArtifactService) -> None:
    """A declared length that cannot fit is refused when the upload opens, before any byte is sent."""
    account = await register(service)
    with pytest.raises(StoreError) as caught:
        await service.begin_upload(account, "k", size=101)
    assert caught.value.code == "storage_limit_reached"
    assert slots(service, account) == []
    await assert_untouched(service, account, "k")


# --- backend failure -----------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"doomed bytes", id="buffered"),
        # Past the file spill and one S3 part: the partial file / the multipart upload must go too.
        pytest.param(b"d" * (6 * MIB), id="streamed"),
    ],
)
async def test_blob_commit_failure_records_a_failed_output_and_charges_nothing(
    service: ArtifactService, monkeypatch: pytest.MonkeyPatch, content: bytes
) -> None:
    """A blob store failure answers upload_failed, keeps a failed row, frees the key and charges nothing."""
    account = await register(service)
    with monkeypatch.context() as patch:
        break_blob_commits(patch)
        error = await upload_error(service, account, "k", content, label="doomed")
    assert error.code == "upload_failed"
    assert (error.status, error.retryable) == (422, True)
    (failed,) = outputs(service, account)
    assert failed["status"] == "failed"
    assert failed["size_bytes"] == 0
    assert slots(service, account) == []
    assert blob_keys(service) == [] and partial_keys(service) == []
    await assert_untouched(service, account, "k")
    shown = await service.get_output(account, failed["id"])
    assert shown.body["status"] == "failed"
    assert shown.body["contentUrl"] is None
    with pytest.raises(StoreError) as content_error:
        await service.open_content(account, failed["id"])
    assert content_error.value.code == "upload_failed"
    retried = await upload(service, account, "k", content, label="doomed")
    assert retried.replayed is False
    assert retried.body["outputId"] != failed["id"]
    assert retried.account.free_remaining == 4
    assert len(blob_keys(service)) == 1


# --- in-flight and stale slots -------------------------------------------------------------------


@pytest.mark.anyio
async def test_key_in_flight_answers_idempotency_in_flight(service: ArtifactService) -> None:
    """While an upload holds its key, another with the same key gets 503 idempotency_in_flight (retry in 5 s)."""
    account = await register(service)
    holder = await service.begin_upload(account, "k")
    async with holder:
        holder.set_fields({"mimeType": "text/plain"})
        await holder.write(b"first")
        with pytest.raises(StoreError) as caught:
            await service.begin_upload(account, "k")
        first = await holder.finish()
    assert caught.value.code == "idempotency_in_flight"
    assert (caught.value.status, caught.value.retryable, caught.value.retry_after) == (503, True, 5)
    again = await upload(service, account, "k", b"first")
    assert again.replayed is True
    assert again.body["outputId"] == first.body["outputId"]
    assert (await service.account(account.id)).free_remaining == 4


@pytest.mark.anyio
async def test_slot_59_seconds_idle_is_still_in_flight(service: ArtifactService, clock: ManualClock) -> None:
    """A slot is only stale after 60 s without progress."""
    account = await register(service)
    holder = await service.begin_upload(account, "k")
    async with holder:
        clock.advance(59)
        with pytest.raises(StoreError) as caught:
            await service.begin_upload(account, "k")
        assert caught.value.code == "idempotency_in_flight"
        holder.set_fields({"mimeType": "text/plain"})
        await holder.write(b"x")
        await holder.finish()


@pytest.mark.anyio
async def test_upload_making_progress_keeps_its_slot(service: ArtifactService, clock: ManualClock) -> None:
    """An upload that keeps writing for minutes is not reclaimed: its heartbeat keeps the slot alive."""
    account = await register(service)
    holder = await service.begin_upload(account, "k")
    async with holder:
        holder.set_fields({"mimeType": "text/plain"})
        for _ in range(12):
            clock.advance(15)
            await holder.write(b"chunk")
        with pytest.raises(StoreError) as caught:
            await service.begin_upload(account, "k")
        assert caught.value.code == "idempotency_in_flight"
        result = await holder.finish()
    assert result.body["sizeBytes"] == 60


@pytest.mark.anyio
async def test_stale_slot_is_reclaimed_and_its_partial_blob_removed(
    service: ArtifactService, clock: ManualClock
) -> None:
    """A slot idle for over 60 s (a crashed upload) is taken over by the next request with its key."""
    account = await register(service)
    crashed = await service.begin_upload(account, "k")
    crashed.set_fields({"mimeType": "application/octet-stream"})
    await crashed.write(b"p" * partial_write_bytes(service))
    (partial,) = await wait_for_partials(service, 1)
    assert partial.startswith(f"{account.id}/out_")
    clock.advance(61)
    result = await upload(service, account, "k", b"fresh")
    assert result.replayed is False
    assert result.body["sizeBytes"] == 5
    assert partial_keys(service) == []
    assert blob_keys(service) == [blob_key(account.id, result.body["outputId"])]
    (slot,) = slots(service, account)
    assert (slot["state"], slot["output_id"]) == ("completed", result.body["outputId"])
    assert service.check().problems == []


@pytest.mark.anyio
async def test_reclaimed_upload_cannot_complete_later(service: ArtifactService, clock: ManualClock) -> None:
    """The crashed upload, if it wakes up after its slot was reclaimed and reused, is not charged or stored."""
    account = await register(service)
    zombie = await service.begin_upload(account, "k")
    zombie.set_fields({"mimeType": "text/plain"})
    await zombie.write(b"old")
    clock.advance(61)
    winner = await upload(service, account, "k", b"new")
    with pytest.raises(StoreError) as caught:
        async with zombie:
            await zombie.finish()
    assert caught.value.code == "upload_failed"
    after = await service.account(account.id)
    assert (after.free_remaining, after.storage_used_bytes) == (4, 3)
    ready = [o for o in outputs(service, account) if o["status"] == "ready"]
    assert [o["id"] for o in ready] == [winner.body["outputId"]]
    assert (await upload(service, account, "k", b"new")).replayed is True
    assert service.check().problems == []


@pytest.mark.anyio
async def test_completed_key_older_than_seven_days_can_be_reused(service: ArtifactService, clock: ManualClock) -> None:
    """After the 7-day retention the key starts a fresh upload (new output, new charge), even with new bytes."""
    account = await register(service)
    first = await upload(service, account, "k", b"week one", expiresAt=future_iso(service, 30 * 86_400))
    clock.advance(7 * 86_400 - 1)
    assert (await upload_error(service, account, "k", b"week two")).code == "idempotency_conflict"
    clock.advance(2)
    second = await upload(service, account, "k", b"week two")
    assert second.replayed is False
    assert second.body["outputId"] != first.body["outputId"]
    assert second.account.free_remaining == 3
    assert len(blob_keys(service)) == 2
    assert (await upload(service, account, "k", b"week two")).body["outputId"] == second.body["outputId"]


@pytest.mark.anyio
async def test_expires_at_is_stored_as_the_instant_sent(service: ArtifactService) -> None:
    """expiresAt comes back as the instant sent, in ISO 8601 UTC with milliseconds."""
    account = await register(service)
    when = service.clock.now_ms() + 3_600_123
    result = await upload(service, account, "k", expiresAt=iso_ms(when))
    assert result.body["expiresAt"] == iso_ms(when)
    assert result.body["createdAt"] == iso_ms(service.clock.now_ms())


@pytest.mark.anyio
@overrides(free_uploads=1, storage_limit_bytes=15)
async def test_replay_answers_even_when_quota_and_storage_are_used_up(service: ArtifactService) -> None:
    """A replay costs nothing, so it succeeds with no units and no storage left."""
    account = await register(service)
    first = await upload(service, account, "k", b"x" * 15)
    assert (first.account.free_remaining, first.account.storage_used_bytes) == (0, 15)
    assert (await upload_error(service, account, "other", b"y")).code == "quota_exhausted"
    again = await upload(service, account, "k", b"x" * 15)
    assert (again.replayed, again.body["outputId"]) == (True, first.body["outputId"])


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("settings_overrides", "limit"),
    [
        pytest.param({}, 26_214_400, id="legacy-25mb"),
        pytest.param({"max_upload_bytes": 1_000_000}, 1_000_000, id="configured"),
        pytest.param({"plan_enforcement": True}, 5_242_880, id="free-plan-5mb"),
        pytest.param({"plan_enforcement": True, "max_upload_bytes": 1_000}, 5_242_880, id="plan-over-configured"),
    ],
)
async def test_per_file_limit_follows_the_plan_only_when_enforced(
    service: ArtifactService, settings: Settings, limit: int
) -> None:
    """The per-file limit is the configured one, or the plan tier's when plan enforcement is on."""
    account = await register(service)
    assert service.upload_limit(account) == limit
    with pytest.raises(StoreError) as caught:
        await service.begin_upload(account, "k", size=limit + 1)
    assert caught.value.code == "payload_too_large"
    session = await service.begin_upload(account, "k", size=limit)
    await session.abort()
    assert slots(service, account) == []

"""Races (SPEC sections 6 and 7): one output, one charge and one blob per key; quota settled atomically.

Every race is gated: all contenders are started in a task group and wait on one event, so they
are inside the server together; every race is bounded by ``anyio.fail_after``.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

import anyio
import httpx2
import pytest

from store import Account, ArtifactService, Settings, StoreError, UploadResult
from store.blobs import open_blob_store
from tests.factories import balance, blob_keys, count, overrides, partial_keys, race, register, upload, upload_document
from tests.serving import OUTPUTLAYER, running_server

CONTENT = b"the one and only artifact\n" * 40


def assert_one_output_one_charge_one_blob(
    statuses: list[tuple[int, str | None, bool]], service: ArtifactService
) -> None:
    """statuses: (HTTP status, error code, replayed) for each contender of a same-key race."""
    for status, code, _replayed in statuses:
        assert (status, code) in ((201, None), (503, "idempotency_in_flight")), statuses
    created = [s for s in statuses if s[0] == 201 and not s[2]]
    assert len(created) == 1, f"exactly one 201 is the original, the others are replays or 503: {statuses}"
    assert any(s[0] == 503 or s[2] for s in statuses), "the race did not overlap"
    assert count(service, "outputs") == 1
    assert len(blob_keys(service)) == 1
    assert partial_keys(service) == []
    assert service.check().problems == []


# --- (1) identical uploads with one key ------------------------------------------------------------


@pytest.mark.anyio
async def test_ten_identical_rest_uploads_make_one_output_one_charge_one_blob(
    client: httpx2.AsyncClient, auth: dict[str, str], service: ArtifactService
) -> None:
    """10 concurrent identical POSTs, one key: one output, one unit charged, one blob; others replay or 503."""
    body = upload_document(CONTENT, label="race.txt")
    headers = {**auth, "Idempotency-Key": "same-key"}

    async def post() -> httpx2.Response:
        return await client.post("/v1/outputs", json=body, headers=headers)

    responses = await race([post] * 10)
    statuses = []
    output_ids = set()
    for response in responses:
        payload = response.json()
        replayed = response.headers.get("Idempotent-Replayed") == "true"
        statuses.append((response.status_code, payload.get("error"), replayed))
        if response.status_code == 201:
            output_ids.add(payload["outputId"])
        else:
            assert response.headers["Retry-After"] == "5"
            assert payload["agent_contract"]["next_actions"][0]["action"] == "retry_after_wait"
    assert_one_output_one_charge_one_blob(statuses, service)
    assert len(output_ids) == 1
    account = await balance(client, auth)
    assert (account["freeRemaining"], account["creditsRemaining"]) == (4, 0)
    assert account["storageUsedBytes"] == len(CONTENT)
    retried = await client.post("/v1/outputs", json=body, headers=headers)
    assert (retried.status_code, retried.headers.get("Idempotent-Replayed")) == (201, "true")
    assert retried.json()["outputId"] in output_ids


@pytest.mark.anyio
async def test_ten_identical_service_uploads_make_one_output_one_charge_one_blob(service: ArtifactService) -> None:
    """The same race straight through the service: one original, replays or in-flight refusals, one charge."""
    account = await register(service)

    async def attempt() -> UploadResult | StoreError:
        try:
            return await upload(service, account, "same-key", CONTENT, label="race.txt")
        except StoreError as exc:
            return exc

    outcomes = await race([attempt] * 10)
    statuses = [(201, None, o.replayed) if isinstance(o, UploadResult) else (o.status, o.code, False) for o in outcomes]
    assert_one_output_one_charge_one_blob(statuses, service)
    assert len({o.body["outputId"] for o in outcomes if isinstance(o, UploadResult)}) == 1
    after = await service.account(account.id)
    assert (after.free_remaining, after.credits_remaining, after.storage_used_bytes) == (4, 0, len(CONTENT))


# --- (2) and (3) distinct keys racing for the last units or bytes ------------------------------------


async def rest_contenders(
    client: httpx2.AsyncClient, auth: dict[str, str], contents: list[bytes]
) -> list[Callable[[], Awaitable[tuple[int, str | None, int]]]]:
    def contender(n: int, content: bytes) -> Callable[[], Awaitable[tuple[int, str | None, int]]]:
        async def post() -> tuple[int, str | None, int]:
            response = await client.post(
                "/v1/outputs", json=upload_document(content), headers={**auth, "Idempotency-Key": f"key-{n}"}
            )
            payload = response.json()
            return response.status_code, payload.get("error"), payload.get("sizeBytes", 0)

        return post

    return [contender(n, content) for n, content in enumerate(contents)]


def service_contenders(
    service: ArtifactService, account: Account, contents: list[bytes]
) -> list[Callable[[], Awaitable[tuple[int, str | None, int]]]]:
    def contender(n: int, content: bytes) -> Callable[[], Awaitable[tuple[int, str | None, int]]]:
        async def attempt() -> tuple[int, str | None, int]:
            try:
                result = await upload(service, account, f"key-{n}", content)
            except StoreError as exc:
                return exc.status, exc.code, 0
            return 201, None, int(result.body["sizeBytes"])

        return attempt

    return [contender(n, content) for n, content in enumerate(contents)]


async def quota_race(
    door: str,
    client: httpx2.AsyncClient,
    service: ArtifactService,
    contents: list[bytes],
) -> tuple[list[tuple[int, str | None, int]], Account]:
    if door == "rest":
        registered = await client.post("/v1/keys/register", json={})
        assert registered.status_code == 201
        auth = {"Authorization": f"Bearer {registered.json()['apiKey']}"}
        account = await service.account(registered.json()["accountId"])
        contenders = await rest_contenders(client, auth, contents)
    else:
        account = await register(service)
        contenders = service_contenders(service, account, contents)
    return await race(contenders), account


N = 8
DOORS = [pytest.param("rest", id="rest"), pytest.param("service", id="service")]


@pytest.mark.anyio
@overrides(free_uploads=N - 1)
@pytest.mark.parametrize("door", DOORS)
async def test_uploads_racing_for_the_last_units_charge_exactly_the_units_left(
    client: httpx2.AsyncClient, service: ArtifactService, door: str
) -> None:
    """8 distinct uploads race for 7 units: exactly 7 succeed, exactly 1 gets 402 quota_exhausted."""
    contents = [bytes([65 + n]) * (100 + n) for n in range(N)]
    outcomes, account = await quota_race(door, client, service, contents)
    assert sorted((status, code) for status, code, _ in outcomes) == [(201, None)] * (N - 1) + [
        (402, "quota_exhausted")
    ]
    after = await service.account(account.id)
    assert (after.free_remaining, after.credits_remaining) == (0, 0)
    assert after.storage_used_bytes == sum(size for status, _, size in outcomes if status == 201)
    assert count(service, "outputs", "account_id = ? AND status = 'ready'", (account.id,)) == N - 1
    assert count(service, "outputs", "account_id = ?", (account.id,)) == N - 1
    assert len(blob_keys(service)) == N - 1
    assert partial_keys(service) == []
    assert service.check().problems == []


@pytest.mark.anyio
@overrides(free_uploads=2 * N, storage_limit_bytes=(N - 1) * 100)
@pytest.mark.parametrize("door", DOORS)
async def test_uploads_racing_for_the_last_bytes_never_exceed_the_storage_limit(
    client: httpx2.AsyncClient, service: ArtifactService, door: str
) -> None:
    """8 uploads of 100 bytes race for room for 7: exactly 7 succeed, 1 gets 402 storage_limit_reached."""
    contents = [bytes([97 + n]) * 100 for n in range(N)]
    outcomes, account = await quota_race(door, client, service, contents)
    assert sorted((status, code) for status, code, _ in outcomes) == [(201, None)] * (N - 1) + [
        (402, "storage_limit_reached")
    ]
    after = await service.account(account.id)
    assert after.storage_used_bytes == (N - 1) * 100 == after.storage_limit_bytes
    assert after.free_remaining == 2 * N - (N - 1), "the refused upload was not charged"
    assert count(service, "outputs", "account_id = ?", (account.id,)) == N - 1
    assert len(blob_keys(service)) == N - 1
    assert partial_keys(service) == []
    assert service.check().problems == []


# --- (1) against a real server process -------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.anyio
async def test_ten_identical_uploads_to_a_real_server_make_one_output(settings: Settings) -> None:
    """10 concurrent identical POSTs over TCP to `outputlayer serve`: one output, one charge; `check` exits 0.

    The server runs on the test's backend pair (its database and blob store come from ``settings``).
    """
    data_dir = settings.data_dir
    env = {
        "OUTPUTLAYER_RATE_LIMITS": "off",
        "OUTPUTLAYER_DATABASE_URL": settings.database_url,
        "OUTPUTLAYER_BLOB_URL": settings.blob_url,
    }
    body = upload_document(CONTENT, label="race.txt")
    with running_server(data_dir, env) as server:
        async with httpx2.AsyncClient(base_url=server.base_url, timeout=60) as http:
            registered = await http.post("/v1/keys/register", json={})
            assert registered.status_code == 201
            auth = {"Authorization": f"Bearer {registered.json()['apiKey']}"}
            headers = {**auth, "Idempotency-Key": "same-key"}

            async def post() -> httpx2.Response:
                return await http.post("/v1/outputs", json=body, headers=headers)

            responses = await race([post] * 10)
            originals = 0
            for response in responses:
                assert response.status_code in (201, 503), response.text
                if response.status_code == 503:
                    assert response.json()["error"] == "idempotency_in_flight"
                    assert response.headers["Retry-After"] == "5"
                elif response.headers.get("Idempotent-Replayed") != "true":
                    originals += 1
            assert originals == 1
            listing = await http.get("/v1/outputs", headers=auth)
            assert listing.status_code == 200
            outputs = listing.json()["outputs"]
            assert len(outputs) == 1
            assert outputs[0]["sizeBytes"] == len(CONTENT)
            assert listing.headers["X-OutputLayer-Free-Remaining"] == "4"
            assert listing.headers["X-OutputLayer-Credits-Remaining"] == "0"
            assert listing.headers["X-OutputLayer-Storage-Used-Bytes"] == str(len(CONTENT))
    assert server.process.returncode is not None, "the server was stopped"
    blobs = open_blob_store(settings.blob_url)
    try:
        assert len(blob_keys(blobs)) == 1
        assert partial_keys(blobs) == []
    finally:
        blobs.close()
    check_env = {k: v for k, v in os.environ.items() if not k.startswith("OUTPUTLAYER_")}
    check_env.update({"OUTPUTLAYER_DATA_DIR": str(data_dir), **env})
    with anyio.fail_after(60):
        checked = await anyio.run_process([OUTPUTLAYER, "check"], env=check_env, check=False)
    assert checked.returncode == 0, checked.stderr.decode()

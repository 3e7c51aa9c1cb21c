"""REST-only parts of upload links (SPEC section 14): the headers of ``POST /v1/uploads`` and the state
``GET /v1/uploads/{uploadId}`` reports. The scenarios both doors share are in tests/contract."""

from __future__ import annotations

import httpx2
import pytest

from store import ManualClock
from tests.conftest import assert_contract, assert_error

pytestmark = pytest.mark.anyio

FIELDS = {"mimeType": "application/pdf", "label": "q3.pdf"}


async def create(client: httpx2.AsyncClient, auth: dict[str, str], key: str = "k1") -> httpx2.Response:
    return await client.post("/v1/uploads", json=FIELDS, headers={**auth, "Idempotency-Key": key})


async def test_creating_a_link_needs_the_key_and_an_idempotency_key(
    client: httpx2.AsyncClient, auth: dict[str, str]
) -> None:
    missing_key = await client.post("/v1/uploads", json=FIELDS, headers={"Idempotency-Key": "k"})
    assert_error(missing_key, 401, "missing_api_key", retryable=False, action="register_key")
    no_idempotency = await client.post("/v1/uploads", json=FIELDS, headers=auth)
    assert_error(no_idempotency, 400, "missing_idempotency_key", retryable=False, action="check_capabilities")
    not_object = await client.post("/v1/uploads", json=[FIELDS], headers={**auth, "Idempotency-Key": "k"})
    assert_error(not_object, 400, "invalid_request", retryable=False, action="check_capabilities")
    unknown = await client.post(
        "/v1/uploads", json={**FIELDS, "content": "aGk="}, headers={**auth, "Idempotency-Key": "k"}
    )
    assert_error(unknown, 400, "invalid_request", retryable=False, action="check_capabilities")
    created = await create(client, auth)
    assert created.status_code == 201
    assert created.headers["x-outputlayer-free-remaining"] == "5"  # nothing charged yet


async def test_upload_state_goes_from_pending_to_completed(client: httpx2.AsyncClient, auth: dict[str, str]) -> None:
    link = (await create(client, auth)).json()
    pending = await client.get(f"/v1/uploads/{link['uploadId']}", headers=auth)
    assert pending.status_code == 200
    body = pending.json()
    assert (body["status"], body["outputId"], body["uploadUrl"]) == ("pending", None, link["uploadUrl"])
    assert assert_contract(body)["next_actions"][0]["action"] == "upload_content"

    stored = (await client.put(link["uploadUrl"], content=b"%PDF-1.7 tiny")).json()
    done = (await client.get(f"/v1/uploads/{link['uploadId']}", headers=auth)).json()
    assert (done["status"], done["outputId"], done["uploadUrl"]) == ("completed", stored["outputId"], None)
    first = assert_contract(done)["next_actions"][0]
    assert (first["action"], first["endpoint"]) == ("get_output", f"/v1/outputs/{stored['outputId']}")


async def test_an_unused_link_expires_and_the_same_request_renews_it(
    client: httpx2.AsyncClient, auth: dict[str, str], clock: ManualClock
) -> None:
    link = (await create(client, auth)).json()
    clock.advance(3601)
    expired = (await client.get(f"/v1/uploads/{link['uploadId']}", headers=auth)).json()
    assert (expired["status"], expired["uploadUrl"]) == ("expired", None)
    assert assert_contract(expired)["next_actions"][0]["action"] == "create_new_output"
    renewed = (await create(client, auth)).json()
    assert renewed["uploadId"] == link["uploadId"] and renewed["uploadUrl"] != link["uploadUrl"]
    assert (await client.put(renewed["uploadUrl"], content=b"%PDF late")).status_code == 201


async def test_another_accounts_upload_is_not_found(client: httpx2.AsyncClient, auth: dict[str, str]) -> None:
    link = (await create(client, auth)).json()
    other = (await client.post("/v1/keys/register", json={})).json()["apiKey"]
    response = await client.get(f"/v1/uploads/{link['uploadId']}", headers={"Authorization": f"Bearer {other}"})
    assert_error(response, 404, "not_found", retryable=False, action="check_capabilities")


async def test_the_upload_link_takes_only_put(client: httpx2.AsyncClient, auth: dict[str, str]) -> None:
    link = (await create(client, auth)).json()
    response = await client.get(link["uploadUrl"])
    assert_error(response, 405, "wrong_method", retryable=False, action="check_capabilities")

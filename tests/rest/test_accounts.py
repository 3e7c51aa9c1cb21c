"""REST accounts: registration, quota and credits, storage limits, billing routes (SPEC sections 4, 7, 8)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest

from rest.app import create_app
from store import ArtifactService, ManualClock, Settings
from tests.conftest import REQUEST_ID, assert_contract, assert_error
from tests.factories import action_codes, post_upload

API_KEY = re.compile(r"^ol_live_[0-9a-f]{64}$")
ACCOUNT_ID = re.compile(r"^key_[0-9A-HJKMNP-TV-Z]{26}$")
QUOTA_HEADERS = (
    "x-outputlayer-free-remaining",
    "x-outputlayer-credits-remaining",
    "x-outputlayer-storage-used-bytes",
    "x-outputlayer-storage-limit-bytes",
)


def quota(response: httpx2.Response) -> tuple[int, int, int, int]:
    """(free, credits, storage used, storage limit) from the X-OutputLayer-* headers."""
    free, credits, used, limit = (int(response.headers[name]) for name in QUOTA_HEADERS)
    return free, credits, used, limit


async def account_id(service: ArtifactService, auth: dict[str, str]) -> str:
    return (await service.authenticate(auth["Authorization"].removeprefix("Bearer "))).id


@contextlib.asynccontextmanager
async def client_at(settings: Settings, service: ArtifactService, ip: str) -> AsyncIterator[httpx2.AsyncClient]:
    """A client whose requests come from ``ip`` (the shared fixture's come from 127.0.0.1)."""
    app = create_app(settings, service=service, sweeper=False)
    async with app.router.lifespan_context(app) as state:

        async def with_state(scope: Any, receive: Any, send: Any) -> None:
            await app({**scope, "state": dict(state or {})}, receive, send)

        transport = httpx2.ASGITransport(app=with_state, client=(ip, 40000))
        async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


# --- registration ----------------------------------------------------------------------------


@pytest.mark.any_backend
@pytest.mark.anyio
async def test_register_returns_a_key_and_account_id_with_the_register_contract(client: httpx2.AsyncClient) -> None:
    """201 with an ol_live_ key, a key_ account id, create_new_output then check_capabilities."""
    response = await client.post("/v1/keys/register", json={})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"apiKey", "accountId", "agent_contract"}
    assert API_KEY.match(body["apiKey"])
    assert ACCOUNT_ID.match(body["accountId"])
    contract = assert_contract(body)
    assert contract["retryable"] is False
    assert action_codes(body) == ["create_new_output", "check_capabilities"]
    first = body["agent_contract"]["next_actions"][0]
    assert (first["method"], first["endpoint"]) == ("POST", "/v1/outputs")
    assert REQUEST_ID.match(response.headers["x-request-id"])
    assert response.headers["ratelimit-limit"] == "10"
    assert response.headers["ratelimit-remaining"] == "9"
    balance = await client.get("/v1/credits/balance", headers={"Authorization": f"Bearer {body['apiKey']}"})
    assert balance.status_code == 200


@pytest.mark.any_backend
@pytest.mark.anyio
async def test_each_registration_gets_a_new_key_and_account(client: httpx2.AsyncClient) -> None:
    """Two registrations never share a key or an account."""
    first = (await client.post("/v1/keys/register")).json()
    second = (await client.post("/v1/keys/register")).json()
    assert first["apiKey"] != second["apiKey"]
    assert first["accountId"] != second["accountId"]


@pytest.mark.any_backend
@pytest.mark.parametrize(
    "request_args",
    [
        pytest.param({}, id="no-body"),
        pytest.param({"content": b""}, id="empty-body"),
        pytest.param({"json": {}}, id="empty-object"),
        pytest.param({"json": {"email": "agent@example.com"}}, id="email"),
        pytest.param({"json": {"email": "a" * 242 + "@example.com"}}, id="email-254-chars"),
        pytest.param({"json": {"email": None}}, id="email-null"),
    ],
)
@pytest.mark.anyio
async def test_register_accepts_an_empty_body_or_an_optional_email(
    client: httpx2.AsyncClient, request_args: dict[str, Any]
) -> None:
    """Registration takes no body, an empty object, or an email of at most 254 characters."""
    response = await client.post("/v1/keys/register", **request_args)
    assert response.status_code == 201, response.text
    assert API_KEY.match(response.json()["apiKey"])


@pytest.mark.any_backend
@pytest.mark.parametrize(
    "request_args",
    [
        pytest.param({"json": {"email": "a" * 243 + "@example.com"}}, id="email-255-chars"),
        pytest.param({"json": {"email": 42}}, id="email-not-a-string"),
        pytest.param({"json": {"email": ["a@b.co"]}}, id="email-list"),
        pytest.param({"json": {"name": "agent"}}, id="unknown-field"),
        pytest.param({"json": ["a@b.co"]}, id="not-an-object"),
        pytest.param({"content": b"{not json", "headers": {"Content-Type": "application/json"}}, id="malformed-json"),
    ],
)
@pytest.mark.anyio
async def test_register_refuses_invalid_bodies_with_invalid_request(
    client: httpx2.AsyncClient, request_args: dict[str, Any]
) -> None:
    """A bad registration body answers 400 invalid_request and creates no key."""
    response = await client.post("/v1/keys/register", **request_args)
    body = assert_error(response, 400, "invalid_request", retryable=False, action="check_capabilities")
    assert "apiKey" not in body


@pytest.mark.anyio
async def test_registration_is_limited_to_10_per_hour_per_ip(
    client: httpx2.AsyncClient, clock: ManualClock, settings: Settings, service: ArtifactService
) -> None:
    """The 11th registration from one IP within an hour is 429; other IPs and the next hour are free."""
    for n in range(10):
        response = await client.post("/v1/keys/register", json={})
        assert response.status_code == 201
        assert response.headers["ratelimit-remaining"] == str(9 - n)
    clock.advance(600)
    refused = await client.post("/v1/keys/register", json={})
    body = assert_error(refused, 429, "rate_limited", retryable=True, action="retry_after_wait")
    wait = body["agent_contract"]["next_actions"][0]
    assert (wait["method"], wait["endpoint"]) == ("POST", "/v1/keys/register")
    assert refused.headers["retry-after"] == "3000"
    assert wait["retry_after_seconds"] == 3000
    assert refused.headers["ratelimit-limit"] == "10"
    assert refused.headers["ratelimit-remaining"] == "0"
    assert refused.headers["ratelimit-reset"] == "3000"
    async with client_at(settings, service, "203.0.113.9") as elsewhere:
        assert (await elsewhere.post("/v1/keys/register", json={})).status_code == 201
    clock.advance(3000)
    assert (await client.post("/v1/keys/register", json={})).status_code == 201


# --- balance ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_balance_of_a_new_account(client: httpx2.AsyncClient, auth: dict[str, str]) -> None:
    """A new account: its id, plan free, 5 free uploads, 0 credits, 250 MB storage; create_new_output recommended."""
    response = await client.get("/v1/credits/balance", headers=auth)
    assert response.status_code == 200
    body = response.json()
    assert ACCOUNT_ID.match(body["accountId"])
    assert {k: v for k, v in body.items() if k not in ("agent_contract", "accountId")} == {
        "planTier": "free",
        "freeRemaining": 5,
        "creditsRemaining": 0,
        "storageUsedBytes": 0,
        "storageLimitBytes": 262_144_000,
    }
    assert action_codes(body) == ["create_new_output", "check_capabilities"]
    assert quota(response) == (5, 0, 0, 262_144_000)
    assert response.headers["ratelimit-limit"] == "60"


@pytest.mark.parametrize("settings_overrides", [pytest.param({"free_uploads": 0}, id="no-free-uploads")])
@pytest.mark.anyio
async def test_balance_recommends_buying_credits_when_nothing_is_left(
    client: httpx2.AsyncClient, auth: dict[str, str], service: ArtifactService
) -> None:
    """With free uploads and credits both 0 the balance recommends buy_credits; after a grant, uploading."""
    body = (await client.get("/v1/credits/balance", headers=auth)).json()
    assert action_codes(body) == ["buy_credits", "check_capabilities"]
    buy = body["agent_contract"]["next_actions"][0]
    assert (buy["method"], buy["endpoint"]) == ("POST", "/v1/credits/checkout")
    service.grant(await account_id(service, auth), 3, 1000)
    granted = await client.get("/v1/credits/balance", headers=auth)
    assert granted.json()["creditsRemaining"] == 3
    assert granted.json()["storageLimitBytes"] == 262_145_000
    assert action_codes(granted.json())[0] == "create_new_output"
    assert quota(granted) == (0, 3, 0, 262_145_000)


# --- quota -----------------------------------------------------------------------------------


@pytest.mark.parametrize("settings_overrides", [pytest.param({"free_uploads": 2}, id="two-free-uploads")])
@pytest.mark.anyio
async def test_free_uploads_then_402_then_granted_credits_are_spent(
    client: httpx2.AsyncClient, auth: dict[str, str], service: ArtifactService
) -> None:
    """Free uploads go first, then 402 quota_exhausted; granted credits work again, one per upload."""
    first = await post_upload(client, auth, b"one")
    assert quota(first)[:3] == (1, 0, 3)
    second = await post_upload(client, auth, b"two")
    assert quota(second)[:3] == (0, 0, 6)

    refused = await post_upload(client, auth, b"three", key="after-grant")
    body = assert_error(refused, 402, "quota_exhausted", retryable=False, action="buy_credits")
    assert action_codes(body) == ["buy_credits", "check_capabilities"]
    assert quota(refused)[:3] == (0, 0, 6)

    service.grant(await account_id(service, auth), 2, 0)
    third = await post_upload(client, auth, b"three", key="after-grant")
    assert third.status_code == 201, third.text
    assert "idempotent-replayed" not in third.headers
    assert quota(third)[:3] == (0, 1, 11)
    fourth = await post_upload(client, auth, b"four")
    assert quota(fourth)[:3] == (0, 0, 15)
    refused_five = await post_upload(client, auth, b"five")
    assert_error(refused_five, 402, "quota_exhausted", retryable=False, action="buy_credits")
    balance = (await client.get("/v1/credits/balance", headers=auth)).json()
    assert (balance["freeRemaining"], balance["creditsRemaining"], balance["storageUsedBytes"]) == (0, 0, 15)


@pytest.mark.parametrize("settings_overrides", [pytest.param({"free_uploads": 1}, id="one-free-upload")])
@pytest.mark.anyio
async def test_free_uploads_are_spent_before_credits(
    client: httpx2.AsyncClient, auth: dict[str, str], service: ArtifactService
) -> None:
    """With a free upload and credits both available, the free upload is used first."""
    service.grant(await account_id(service, auth), 5, 0)
    first = await post_upload(client, auth)
    assert quota(first)[:2] == (0, 5)
    second = await post_upload(client, auth)
    assert quota(second)[:2] == (0, 4)


@pytest.mark.parametrize("settings_overrides", [pytest.param({"free_uploads": 1}, id="one-free-upload")])
@pytest.mark.anyio
async def test_a_replay_is_served_even_when_the_quota_is_exhausted(
    client: httpx2.AsyncClient, auth: dict[str, str]
) -> None:
    """Replaying a completed key costs nothing, so it succeeds with no quota left."""
    created = await post_upload(client, auth, key="only")
    replay = await post_upload(client, auth, key="only")
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["outputId"] == created.json()["outputId"]


# --- storage ---------------------------------------------------------------------------------


@pytest.mark.parametrize("settings_overrides", [pytest.param({"storage_limit_bytes": 10}, id="ten-bytes")])
@pytest.mark.anyio
async def test_storage_limit_reached_is_402_with_the_delete_template_and_nothing_charged(
    client: httpx2.AsyncClient, auth: dict[str, str], service: ArtifactService
) -> None:
    """used + size > limit answers 402 storage_limit_reached; after a delete the same key succeeds."""
    kept = await post_upload(client, auth, b"123456")
    assert kept.status_code == 201
    assert quota(kept) == (4, 0, 6, 10)
    refused = await post_upload(client, auth, b"12345", key="too-big")
    body = assert_error(refused, 402, "storage_limit_reached", retryable=False, action="delete_output")
    assert action_codes(body) == ["delete_output", "buy_credits", "check_capabilities"]
    delete = body["agent_contract"]["next_actions"][0]
    assert (delete["method"], delete["endpoint"]) == ("DELETE", "/v1/outputs/{outputId}")
    balance = (await client.get("/v1/credits/balance", headers=auth)).json()
    assert (balance["freeRemaining"], balance["storageUsedBytes"]) == (4, 6)
    assert len(list(service.blobs.keys())) == 1

    exact = await post_upload(client, auth, b"1234")
    assert exact.status_code == 201, "used + size == limit is allowed"
    assert quota(exact)[2:] == (10, 10)
    await client.delete(f"/v1/outputs/{kept.json()['outputId']}", headers=auth)
    retried = await post_upload(client, auth, b"12345", key="too-big")
    assert retried.status_code == 201, retried.text
    assert quota(retried)[2:] == (9, 10)
    assert service.check().problems == []


@pytest.mark.parametrize("settings_overrides", [pytest.param({"storage_limit_bytes": 1000}, id="1000-bytes")])
@pytest.mark.anyio
async def test_storage_limit_is_checked_from_content_length_before_the_body_is_read(
    client: httpx2.AsyncClient, auth: dict[str, str]
) -> None:
    """A multipart upload whose Content-Length cannot fit is refused without reading the body."""
    boundary = "b0und"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="mimeType"\r\n\r\napplication/octet-stream\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="content"; filename="x.bin"\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    data = b"x" * 40_000
    pulled: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        for piece in (head, data, tail):
            pulled.append(len(piece))
            yield piece

    headers = {
        **auth,
        "Idempotency-Key": "early",
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Content-Length": str(len(head) + len(data) + len(tail)),
    }
    response = await client.post("/v1/outputs", content=body(), headers=headers)
    assert_error(response, 402, "storage_limit_reached", retryable=False, action="delete_output")
    assert pulled == []


# --- credits and billing ---------------------------------------------------------------------


@pytest.mark.any_backend
@pytest.mark.parametrize("pack", ["basic", "pro", "agency"])
@pytest.mark.anyio
async def test_checkout_answers_503_billing_disabled_while_billing_is_off(
    client: httpx2.AsyncClient, auth: dict[str, str], pack: str
) -> None:
    """Without PayPal settings checkout answers 503 billing_disabled with Retry-After, not retryable."""
    response = await client.post("/v1/credits/checkout", headers=auth, json={"packId": pack})
    assert_error(response, 503, "billing_disabled", retryable=False, action="check_capabilities")
    assert int(response.headers["retry-after"]) > 0
    assert quota(response) == (5, 0, 0, 262_144_000)
    assert response.headers["ratelimit-limit"] == "60"


@pytest.mark.any_backend
@pytest.mark.parametrize(
    "document",
    [
        pytest.param({"packId": "gold"}, id="unknown-pack"),
        pytest.param({}, id="missing-pack"),
        pytest.param({"packId": "basic", "coupon": "x"}, id="unknown-field"),
    ],
)
@pytest.mark.anyio
async def test_checkout_with_a_bad_body_is_invalid_request(
    client: httpx2.AsyncClient, auth: dict[str, str], document: dict[str, Any]
) -> None:
    """A checkout body that names no valid pack answers 400 invalid_request."""
    response = await client.post("/v1/credits/checkout", headers=auth, json=document)
    assert_error(response, 400, "invalid_request", retryable=False, action="check_capabilities")


@pytest.mark.any_backend
@pytest.mark.anyio
async def test_verify_of_an_unknown_purchase_is_404_purchase_not_found(
    client: httpx2.AsyncClient, auth: dict[str, str]
) -> None:
    """An unknown purchaseId answers 404 purchase_not_found with retry_checkout."""
    response = await client.get("/v1/credits/verify?purchaseId=purch_01HZZZZZZZZZZZZZZZZZZZZZZZ", headers=auth)
    body = assert_error(response, 404, "purchase_not_found", retryable=False, action="retry_checkout")
    retry = body["agent_contract"]["next_actions"][0]
    assert (retry["method"], retry["endpoint"]) == ("POST", "/v1/credits/checkout")
    assert quota(response)[0] == 5


@pytest.mark.any_backend
@pytest.mark.anyio
async def test_verify_without_a_purchase_id_is_invalid_request(
    client: httpx2.AsyncClient, auth: dict[str, str]
) -> None:
    """GET /v1/credits/verify needs purchaseId."""
    response = await client.get("/v1/credits/verify", headers=auth)
    assert_error(response, 400, "invalid_request", retryable=False, action="check_capabilities")


@pytest.mark.any_backend
@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", "/v1/credits/balance", id="balance"),
        pytest.param("POST", "/v1/credits/checkout", id="checkout"),
        pytest.param("GET", "/v1/credits/verify?purchaseId=purch_x", id="verify"),
    ],
)
@pytest.mark.anyio
async def test_credit_routes_need_a_key(client: httpx2.AsyncClient, method: str, path: str) -> None:
    """The credits family answers 401 missing_api_key without a Bearer key."""
    response = await client.request(method, path, json={"packId": "basic"} if method == "POST" else None)
    assert_error(response, 401, "missing_api_key", retryable=False, action="register_key")
    assert "x-outputlayer-free-remaining" not in response.headers


@pytest.mark.any_backend
@pytest.mark.anyio
async def test_paypal_webhook_answers_503_billing_disabled_while_billing_is_off(client: httpx2.AsyncClient) -> None:
    """With billing off the webhook refuses events with the error envelope, not a crash."""
    event = {"id": "WH-1", "event_type": "PAYMENT.CAPTURE.COMPLETED", "resource": {"id": "CAP-1"}}
    response = await client.post("/webhooks/paypal", json=event)
    assert_error(response, 503, "billing_disabled", retryable=False, action="check_capabilities")
    assert "retry-after" in response.headers


@pytest.mark.any_backend
@pytest.mark.anyio
async def test_paypal_webhook_accepts_only_post(client: httpx2.AsyncClient) -> None:
    """GET /webhooks/paypal is a known path with the wrong method: 405 wrong_method."""
    response = await client.get("/webhooks/paypal")
    assert_error(response, 405, "wrong_method", retryable=False, action="check_capabilities")
    assert "POST" in response.headers["allow"]

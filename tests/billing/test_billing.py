"""Billing through PayPal (SPEC section 7, steps 1-4) against the local fake PayPal, on both backends.

The server under test talks to the fake over real HTTP exactly as to PayPal's hosts; the test plays
the buyer (approving on the fake) and PayPal (delivering signed webhooks to ``/webhooks/paypal``).
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import anyio
import httpx2
import pytest

from store import ArtifactService, ManualClock, Settings
from tests.conftest import assert_contract, assert_error, b64
from tests.factories import balance, count
from tests.paypal_fake import CLIENT_SECRET, TOKEN_SECONDS, Delivery, FakePayPal

BASIC = {"credits": 200, "storage": 2_147_483_648, "price": "6.99"}
FREE_STORAGE = 262_144_000


async def checkout(client: httpx2.AsyncClient, auth: dict[str, str], pack: str = "basic") -> dict[str, Any]:
    response = await client.post("/v1/credits/checkout", headers=auth, json={"packId": pack})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def order_id_of(paypal: FakePayPal, purchase_id: str) -> str:
    (order_id,) = [o["id"] for o in paypal.orders.values() if o["purchase_units"][0]["custom_id"] == purchase_id]
    return order_id


async def ordered(
    client: httpx2.AsyncClient, auth: dict[str, str], paypal: FakePayPal, pack: str = "basic"
) -> tuple[str, str]:
    """A checkout's purchaseId and the PayPal order behind it."""
    purchase_id: str = (await checkout(client, auth, pack))["purchaseId"]
    return purchase_id, order_id_of(paypal, purchase_id)


async def deliver(client: httpx2.AsyncClient, delivery: Delivery) -> httpx2.Response:
    return await client.post("/webhooks/paypal", content=delivery.body, headers=delivery.headers)


async def delivered(client: httpx2.AsyncClient, delivery: Delivery) -> None:
    response = await deliver(client, delivery)
    assert response.status_code == 200, response.text
    assert response.json() == {"received": True}


async def verify(client: httpx2.AsyncClient, auth: dict[str, str], purchase_id: str) -> dict[str, Any]:
    response = await client.get("/v1/credits/verify", headers=auth, params={"purchaseId": purchase_id})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert_contract(body)
    return body


def recommended(body: dict[str, Any]) -> str:
    action: str = body["agent_contract"]["next_actions"][0]["action"]
    return action


async def bought(client: httpx2.AsyncClient, auth: dict[str, str], paypal: FakePayPal, pack: str = "basic") -> str:
    """A purchase taken through the whole webhook flow; its purchaseId."""
    purchase_id, order_id = await ordered(client, auth, paypal, pack)
    await delivered(client, paypal.approve(order_id))
    await delivered(client, paypal.capture_event(order_id))
    return purchase_id


# --- step 1: checkout ----------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(("pack", "price"), [("basic", "6.99"), ("pro", "16.99"), ("agency", "44.99")])
async def test_checkout_creates_a_paypal_order_and_a_pending_purchase(
    client: httpx2.AsyncClient,
    auth: dict[str, str],
    paypal: FakePayPal,
    service: ArtifactService,
    pack: str,
    price: str,
) -> None:
    """201 with purchaseId, packId, the order's approve link as checkoutUrl and status pending; the order is
    intent CAPTURE for the pack's price in USD, custom_id and PayPal-Request-Id = purchaseId."""
    body = await checkout(client, auth, pack)
    assert body["purchaseId"].startswith("purch_") and body["packId"] == pack and body["status"] == "pending"
    order_id = order_id_of(paypal, body["purchaseId"])
    assert body["checkoutUrl"] == f"{paypal.base_url}/checkoutnow?token={order_id}"
    assert recommended(body) == "retry_after_wait"
    (create,) = [r for r in paypal.requests if r[1] == "/v2/checkout/orders"]
    sent = json.loads(create[3])
    assert sent["intent"] == "CAPTURE"
    assert sent["purchase_units"][0]["amount"] == {"currency_code": "USD", "value": price}
    assert sent["purchase_units"][0]["custom_id"] == body["purchaseId"]
    assert create[2]["paypal-request-id"] == body["purchaseId"]
    row = count(
        service, "purchases", "id = ? AND status = 'pending' AND provider_order_id = ?", (body["purchaseId"], order_id)
    )
    assert row == 1
    assert (await verify(client, auth, body["purchaseId"]))["status"] == "pending"


@pytest.mark.anyio
@pytest.mark.parametrize("document", [{"packId": "gold"}, {}, {"packId": "basic", "extra": 1}, [1]])
async def test_checkout_of_an_unknown_pack_is_invalid_request(
    client: httpx2.AsyncClient, auth: dict[str, str], paypal: FakePayPal, document: Any
) -> None:
    response = await client.post("/v1/credits/checkout", headers=auth, json=document)
    assert_error(response, 400, "invalid_request", retryable=False, action="check_capabilities")
    assert paypal.calls["create"] == 0


@pytest.mark.anyio
async def test_checkout_while_paypal_is_down_is_503_retryable_and_stores_nothing(
    client: httpx2.AsyncClient, auth: dict[str, str], paypal: FakePayPal, service: ArtifactService
) -> None:
    paypal.down = True
    response = await client.post("/v1/credits/checkout", headers=auth, json={"packId": "basic"})
    assert_error(response, 503, "service_unavailable", retryable=True, action="retry_after_wait")
    assert "retry-after" in response.headers
    assert count(service, "purchases") == 0


@pytest.mark.anyio
async def test_a_lost_create_reply_is_retried_with_the_same_request_id_and_makes_one_order(
    client: httpx2.AsyncClient, auth: dict[str, str], paypal: FakePayPal
) -> None:
    """PayPal created the order but its answer was lost: the retry carries the same PayPal-Request-Id."""
    paypal.lose_next_reply.add("create")
    body = await checkout(client, auth)
    assert paypal.calls["create"] == 2
    assert len(paypal.orders) == 1
    assert order_id_of(paypal, body["purchaseId"])
    ids = {r[2]["paypal-request-id"] for r in paypal.requests if r[1] == "/v2/checkout/orders"}
    assert ids == {body["purchaseId"]}


@pytest.mark.anyio
async def test_the_access_token_is_cached_until_it_expires(
    client: httpx2.AsyncClient, auth: dict[str, str], paypal: FakePayPal, clock: ManualClock
) -> None:
    await checkout(client, auth)
    await checkout(client, auth)
    assert paypal.calls["token"] == 1
    token_requests = [r for r in paypal.requests if r[1] == "/v1/oauth2/token"]
    assert token_requests[0][3] == b"grant_type=client_credentials"
    assert token_requests[0][2]["authorization"].startswith("Basic ")
    clock.advance(TOKEN_SECONDS)
    await checkout(client, auth)
    assert paypal.calls["token"] == 2


# --- step 2 and 3: webhooks, exactly once --------------------------------------------------------


@pytest.mark.anyio
async def test_the_webhook_flow_captures_then_credits_the_pack_once(
    client: httpx2.AsyncClient, auth: dict[str, str], paypal: FakePayPal, service: ArtifactService
) -> None:
    """APPROVED → capture (PayPal-Request-Id purchaseId-capture); COMPLETED → credits, storage, tier; replays
    of both events answer 200 and credit nothing more."""
    purchase_id, order_id = await ordered(client, auth, paypal)
    approved = paypal.approve(order_id)
    await delivered(client, approved)
    (capture,) = [r for r in paypal.requests if r[1].endswith("/capture")]
    assert capture[2]["paypal-request-id"] == f"{purchase_id}-capture"
    completed = paypal.capture_event(order_id)
    for delivery in (completed, approved, completed):
        await delivered(client, delivery)
    account = await balance(client, auth)
    assert account["creditsRemaining"] == BASIC["credits"]
    assert account["storageLimitBytes"] == FREE_STORAGE + BASIC["storage"]
    assert account["planTier"] == "basic"
    body = await verify(client, auth, purchase_id)
    assert (body["status"], body["creditsAdded"]) == ("confirmed", BASIC["credits"])
    assert recommended(body) == "check_capabilities"
    assert count(service, "billing_captures") == 1
    assert paypal.calls["capture"] == 1


@pytest.mark.anyio
async def test_concurrent_deliveries_of_one_capture_credit_once(
    client: httpx2.AsyncClient, auth: dict[str, str], paypal: FakePayPal, service: ArtifactService
) -> None:
    _, order_id = await ordered(client, auth, paypal)
    paypal.paid_elsewhere(order_id)
    completed = paypal.capture_event(order_id)
    statuses: list[int] = []

    async def send() -> None:
        statuses.append((await deliver(client, completed)).status_code)

    async with anyio.create_task_group() as group:
        for _ in range(8):
            group.start_soon(send)
    assert statuses == [200] * 8
    assert (await balance(client, auth))["creditsRemaining"] == BASIC["credits"]
    assert count(service, "billing_captures") == 1


@pytest.mark.anyio
async def test_a_higher_pack_raises_the_tier_and_a_lower_one_keeps_it(
    client: httpx2.AsyncClient, auth: dict[str, str], paypal: FakePayPal
) -> None:
    await bought(client, auth, paypal, "pro")
    await bought(client, auth, paypal, "basic")
    account = await balance(client, auth)
    assert account["planTier"] == "pro"
    assert account["creditsRemaining"] == 800
    assert account["storageLimitBytes"] == FREE_STORAGE + 10_737_418_240 + BASIC["storage"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "delivery_change",
    [
        pytest.param("tampered", id="tampered-body"),
        pytest.param("unsigned", id="no-transmission-headers"),
        pytest.param("forged", id="forged-signature"),
    ],
)
async def test_an_unverified_webhook_answers_400_and_changes_nothing(
    client: httpx2.AsyncClient, auth: dict[str, str], paypal: FakePayPal, service: ArtifactService, delivery_change: str
) -> None:
    _, order_id = await ordered(client, auth, paypal)
    paypal.paid_elsewhere(order_id)
    genuine = paypal.capture_event(order_id)
    if delivery_change == "tampered":
        event = genuine.event
        event["resource"]["id"] = "FORGEDCAPTURE"
        delivery = Delivery(genuine.headers, json.dumps(event).encode())
    elif delivery_change == "unsigned":
        delivery = Delivery({"Content-Type": "application/json"}, genuine.body)
    else:
        delivery = Delivery({**genuine.headers, "PAYPAL-TRANSMISSION-SIG": "Zm9yZ2Vk"}, genuine.body)
    response = await deliver(client, delivery)
    assert_error(response, 400, "invalid_request", retryable=False, action="check_capabilities")
    assert count(service, "billing_captures") == 0
    assert count(service, "purchases", "status = 'pending'") == 1


@pytest.mark.anyio
async def test_a_webhook_that_is_not_json_is_invalid_request(client: httpx2.AsyncClient, paypal: FakePayPal) -> None:
    response = await client.post("/webhooks/paypal", content=b"{not json", headers={"Content-Type": "application/json"})
    assert_error(response, 400, "invalid_request", retryable=False, action="check_capabilities")
    assert paypal.calls["verify"] == 0


@pytest.mark.anyio
async def test_a_webhook_while_paypal_is_down_is_503_and_changes_nothing(
    client: httpx2.AsyncClient, auth: dict[str, str], paypal: FakePayPal, service: ArtifactService
) -> None:
    _, order_id = await ordered(client, auth, paypal)
    paypal.paid_elsewhere(order_id)
    completed = paypal.capture_event(order_id)
    paypal.down = True
    response = await deliver(client, completed)
    assert_error(response, 503, "service_unavailable", retryable=True, action="retry_after_wait")
    assert count(service, "billing_captures") == 0
    paypal.down = False
    await delivered(client, completed)
    assert (await balance(client, auth))["creditsRemaining"] == BASIC["credits"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "amount",
    [{"currency_code": "USD", "value": "1.00"}, {"currency_code": "EUR", "value": "6.99"}],
    ids=["amount", "currency"],
)
async def test_a_capture_that_does_not_match_the_pack_credits_nothing(
    client: httpx2.AsyncClient,
    auth: dict[str, str],
    paypal: FakePayPal,
    amount: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    purchase_id, order_id = await ordered(client, auth, paypal)
    paypal.paid_elsewhere(order_id, amount)
    with caplog.at_level(logging.WARNING, logger="outputlayer.billing"):
        await delivered(client, paypal.capture_event(order_id))
    assert "does not match" in caplog.text
    assert (await balance(client, auth))["creditsRemaining"] == 0
    body = await verify(client, auth, purchase_id)
    assert (body["status"], body["creditsAdded"]) == ("failed", 0)
    assert recommended(body) == "retry_checkout"


@pytest.mark.anyio
async def test_a_capture_whose_custom_id_names_no_purchase_credits_nothing(
    client: httpx2.AsyncClient, auth: dict[str, str], paypal: FakePayPal, service: ArtifactService
) -> None:
    _, order_id = await ordered(client, auth, paypal)
    capture = paypal.paid_elsewhere(order_id)
    stranger = {**capture, "custom_id": "purch_NOSUCHPURCHASE", "supplementary_data": {}}
    await delivered(client, paypal.event("PAYMENT.CAPTURE.COMPLETED", "capture", stranger))
    assert count(service, "billing_captures") == 0
    assert (await balance(client, auth))["creditsRemaining"] == 0


@pytest.mark.anyio
async def test_other_event_types_are_acknowledged_and_ignored(
    client: httpx2.AsyncClient, paypal: FakePayPal, service: ArtifactService
) -> None:
    await delivered(client, paypal.event("PAYMENT.SALE.COMPLETED", "sale", {"id": "X1"}))
    assert count(service, "billing_captures") == 0


# --- declines and refunds ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_capture_declined_at_capture_time_fails_the_purchase(
    client: httpx2.AsyncClient, auth: dict[str, str], paypal: FakePayPal
) -> None:
    purchase_id = (await checkout(client, auth))["purchaseId"]
    paypal.decline_next_capture = True
    await delivered(client, paypal.approve(order_id_of(paypal, purchase_id)))
    body = await verify(client, auth, purchase_id)
    assert (body["status"], body["creditsAdded"]) == ("failed", 0)
    assert recommended(body) == "retry_checkout"


@pytest.mark.anyio
async def test_payment_capture_denied_fails_the_purchase(
    client: httpx2.AsyncClient, auth: dict[str, str], paypal: FakePayPal
) -> None:
    purchase_id, order_id = await ordered(client, auth, paypal)
    paypal.paid_elsewhere(order_id)
    await delivered(client, paypal.capture_event(order_id, "PAYMENT.CAPTURE.DENIED"))
    assert (await verify(client, auth, purchase_id))["status"] == "failed"
    assert (await balance(client, auth))["creditsRemaining"] == 0


@pytest.mark.anyio
@pytest.mark.parametrize("event_type", ["PAYMENT.CAPTURE.REFUNDED", "PAYMENT.CAPTURE.REVERSED"])
@pytest.mark.parametrize("billing_overrides", [{"free_uploads": 0}], indirect=True)
async def test_a_refund_takes_the_credits_back_never_below_zero_and_keeps_storage_and_tier(
    client: httpx2.AsyncClient, auth: dict[str, str], paypal: FakePayPal, event_type: str
) -> None:
    purchase_id = await bought(client, auth, paypal)
    spent = await client.post(
        "/v1/outputs",
        headers={**auth, "Idempotency-Key": uuid.uuid4().hex},
        json={"mimeType": "text/plain", "content": b64(b"x")},
    )
    assert spent.status_code == 201
    assert (await balance(client, auth))["creditsRemaining"] == BASIC["credits"] - 1
    refund = paypal.refund_event(order_id_of(paypal, purchase_id), event_type)
    await delivered(client, refund)
    await delivered(client, refund)
    account = await balance(client, auth)
    assert account["creditsRemaining"] == 0
    assert account["planTier"] == "basic"
    assert account["storageLimitBytes"] == FREE_STORAGE + BASIC["storage"]
    body = await verify(client, auth, purchase_id)
    assert (body["status"], body["creditsAdded"]) == ("refunded", BASIC["credits"])


# --- step 4: verify recovers lost webhooks -------------------------------------------------------


@pytest.mark.anyio
async def test_verify_captures_an_approved_order_whose_webhook_was_lost(
    client: httpx2.AsyncClient, auth: dict[str, str], paypal: FakePayPal
) -> None:
    purchase_id = (await checkout(client, auth))["purchaseId"]
    paypal.approve(order_id_of(paypal, purchase_id))  # the delivery never arrives
    body = await verify(client, auth, purchase_id)
    assert (body["status"], body["creditsAdded"]) == ("confirmed", BASIC["credits"])
    assert (await balance(client, auth))["creditsRemaining"] == BASIC["credits"]


@pytest.mark.anyio
async def test_verify_credits_a_completed_order_and_the_late_webhook_credits_nothing_more(
    client: httpx2.AsyncClient, auth: dict[str, str], paypal: FakePayPal, service: ArtifactService
) -> None:
    purchase_id, order_id = await ordered(client, auth, paypal)
    paypal.paid_elsewhere(order_id)
    assert (await verify(client, auth, purchase_id))["status"] == "confirmed"
    await delivered(client, paypal.capture_event(order_id))
    assert (await verify(client, auth, purchase_id))["creditsAdded"] == BASIC["credits"]
    assert (await balance(client, auth))["creditsRemaining"] == BASIC["credits"]
    assert count(service, "billing_captures") == 1


@pytest.mark.anyio
async def test_verify_while_paypal_is_down_answers_pending_from_the_database(
    client: httpx2.AsyncClient, auth: dict[str, str], paypal: FakePayPal
) -> None:
    purchase_id = (await checkout(client, auth))["purchaseId"]
    paypal.paid_elsewhere(order_id_of(paypal, purchase_id))
    paypal.down = True
    body = await verify(client, auth, purchase_id)
    assert body["status"] == "pending"
    assert body["agent_contract"]["retryable"] is True
    paypal.down = False
    assert (await verify(client, auth, purchase_id))["status"] == "confirmed"


@pytest.mark.anyio
async def test_verify_of_another_accounts_purchase_is_purchase_not_found(
    client: httpx2.AsyncClient, auth: dict[str, str], paypal: FakePayPal
) -> None:
    purchase_id = (await checkout(client, auth))["purchaseId"]
    other = (await client.post("/v1/keys/register", json={})).json()["apiKey"]
    response = await client.get(
        "/v1/credits/verify", headers={"Authorization": f"Bearer {other}"}, params={"purchaseId": purchase_id}
    )
    assert_error(response, 404, "purchase_not_found", retryable=False, action="retry_checkout")


# --- plans and secrets ---------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("billing_overrides", [{"plan_enforcement": True}], indirect=True)
async def test_a_purchase_applies_its_tier_when_plan_enforcement_is_on(
    client: httpx2.AsyncClient, auth: dict[str, str], paypal: FakePayPal
) -> None:
    before = (await client.get("/v1/capabilities", headers=auth)).json()
    assert before["upload"]["max_size_bytes"] == before["plan_tiers"]["free"]["max_file_size_bytes"]
    await bought(client, auth, paypal, "pro")
    after = (await client.get("/v1/capabilities", headers=auth)).json()
    assert after["upload"]["max_size_bytes"] == after["plan_tiers"]["pro"]["max_file_size_bytes"]
    assert after["rate_limits"]["authenticated"]["POST /v1/outputs"]["limit"] == 120
    response = await client.post(
        "/v1/outputs", headers={**auth, "Idempotency-Key": "k1"}, json={"mimeType": "text/plain", "content": b64(b"x")}
    )
    assert response.status_code == 201
    assert response.headers["ratelimit-limit"] == "120"


@pytest.mark.anyio
async def test_secrets_never_reach_logs_responses_or_urls(
    client: httpx2.AsyncClient,
    auth: dict[str, str],
    paypal: FakePayPal,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG):
        purchase_id = await bought(client, auth, paypal)
        body = await verify(client, auth, purchase_id)
        capabilities = (await client.get("/v1/capabilities")).text
    tokens = {r[2]["authorization"].split(" ", 1)[1] for r in paypal.requests if r[1] != "/v1/oauth2/token"}
    assert tokens
    for secret in (CLIENT_SECRET, *tokens):
        assert secret not in caplog.text
        assert secret not in json.dumps(body) and secret not in capabilities
        assert all(secret not in path for _, path, _, _ in paypal.requests)
    assert CLIENT_SECRET not in repr(settings)
    assert capabilities and json.loads(capabilities)["billing"]["enabled"] is True


@pytest.mark.anyio
@pytest.mark.parametrize("kept", ["custom_id", "supplementary_data", "links"])
async def test_a_capture_event_is_matched_by_any_one_of_its_references(
    client: httpx2.AsyncClient, auth: dict[str, str], paypal: FakePayPal, kept: str
) -> None:
    """custom_id, supplementary_data.related_ids.order_id or the ``up`` link to the order: one is enough."""
    _, order_id = await ordered(client, auth, paypal)
    capture = paypal.paid_elsewhere(order_id)
    references = {"custom_id", "supplementary_data", "links"}
    stripped = {k: v for k, v in capture.items() if k not in references - {kept}}
    await delivered(client, paypal.event("PAYMENT.CAPTURE.COMPLETED", "capture", stripped))
    assert (await balance(client, auth))["creditsRemaining"] == BASIC["credits"]


@pytest.mark.anyio
async def test_a_lost_capture_reply_is_retried_with_the_same_request_id_and_captures_once(
    client: httpx2.AsyncClient, auth: dict[str, str], paypal: FakePayPal
) -> None:
    purchase_id, order_id = await ordered(client, auth, paypal)
    paypal.lose_next_reply.add("capture")
    await delivered(client, paypal.approve(order_id))
    assert paypal.calls["capture"] == 2
    assert len(paypal.captures(order_id)) == 1
    ids = {r[2]["paypal-request-id"] for r in paypal.requests if r[1].endswith("/capture")}
    assert ids == {f"{purchase_id}-capture"}
    assert (await verify(client, auth, purchase_id))["status"] == "confirmed"


@pytest.mark.anyio
@pytest.mark.parametrize("billing_overrides", [{"paypal_client_secret": "wrong-secret-0123"}], indirect=True)
async def test_refused_paypal_credentials_answer_503_and_are_not_logged(
    client: httpx2.AsyncClient, auth: dict[str, str], paypal: FakePayPal, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        response = await client.post("/v1/credits/checkout", headers=auth, json={"packId": "basic"})
    assert_error(response, 503, "service_unavailable", retryable=True, action="retry_after_wait")
    assert paypal.calls["create"] == 0
    assert "wrong-secret-0123" not in caplog.text and "wrong-secret-0123" not in response.text

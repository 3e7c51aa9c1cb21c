"""Billing exactly once across processes (SPEC section 7, step 3): two ``outputlayer serve`` processes on one
database, one fake PayPal, and the same PayPal deliveries sent to both at once credit a purchase once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.multiprocess.cluster import Backend, assert_check_passes, balance, register, request, serving, together
from tests.paypal_fake import Delivery, FakePayPal, paypal_env, running_fake_paypal

pytestmark = pytest.mark.slow

RATES_OFF = {"OUTPUTLAYER_RATE_LIMITS": "off"}


@pytest.fixture
def paypal() -> Iterator[FakePayPal]:
    with running_fake_paypal() as fake:
        yield fake


def deliver(server: Any, delivery: Delivery) -> int:
    status: int = request(
        server, "POST", "/webhooks/paypal", content=delivery.body, headers=delivery.headers
    ).status_code
    return status


def test_the_same_deliveries_to_two_processes_credit_once(shared: Backend, paypal: FakePayPal) -> None:
    """APPROVED and COMPLETED each delivered to both processes at once (twice over): one capture at PayPal,
    one row in billing_captures, the pack's credits exactly once, and both processes answer confirmed."""
    with serving(shared, 2, {**RATES_OFF, **paypal_env(paypal)}) as servers:
        auth, account_id = register(servers[0])
        started = request(servers[0], "POST", "/v1/credits/checkout", json={"packId": "basic"}, headers=auth)
        assert started.status_code == 201, started.text
        purchase_id = started.json()["purchaseId"]
        (order_id,) = list(paypal.orders)
        approved = paypal.approve(order_id)
        statuses = together([lambda s=s: deliver(s, approved) for s in servers * 2])
        assert statuses == [200] * 4
        completed = paypal.capture_event(order_id)
        statuses = together([lambda s=s: deliver(s, completed) for s in servers * 2])
        assert statuses == [200] * 4
        assert len(paypal.captures(order_id)) == 1
        for server in servers:
            assert balance(server, auth)["creditsRemaining"] == 200
            verified = request(server, "GET", "/v1/credits/verify", params={"purchaseId": purchase_id}, headers=auth)
            assert (verified.json()["status"], verified.json()["creditsAdded"]) == ("confirmed", 200)
    assert shared.scalar("SELECT COUNT(*) AS n FROM billing_captures") == 1
    assert shared.scalar("SELECT credits_remaining FROM accounts WHERE id = ?", (account_id,)) == 200
    assert_check_passes(shared)


def test_verify_on_two_processes_at_once_credits_a_lost_webhook_once(shared: Backend, paypal: FakePayPal) -> None:
    """The buyer approved but no webhook arrived: concurrent verify calls on both processes capture and credit
    once (the capture carries PayPal-Request-Id, the credit the capture id's unique key)."""
    with serving(shared, 2, {**RATES_OFF, **paypal_env(paypal)}) as servers:
        auth, account_id = register(servers[0])
        started = request(servers[1], "POST", "/v1/credits/checkout", json={"packId": "pro"}, headers=auth)
        purchase_id = started.json()["purchaseId"]
        (order_id,) = list(paypal.orders)
        paypal.approve(order_id)  # never delivered

        def verify(server: Any) -> str:
            found = request(server, "GET", "/v1/credits/verify", params={"purchaseId": purchase_id}, headers=auth)
            status: str = found.json()["status"]
            return status

        outcomes = together([lambda s=s: verify(s) for s in servers * 3])
        assert "confirmed" in outcomes and set(outcomes) <= {"confirmed", "pending"}
        assert len(paypal.captures(order_id)) == 1
        assert balance(servers[0], auth)["creditsRemaining"] == 600
    assert shared.scalar("SELECT COUNT(*) AS n FROM billing_captures") == 1
    assert shared.scalar("SELECT credits_remaining FROM accounts WHERE id = ?", (account_id,)) == 600

"""Fixtures for the billing tests: a fake PayPal per test, and settings that bill through it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.paypal_fake import CLIENT_ID, CLIENT_SECRET, WEBHOOK_ID, FakePayPal, running_fake_paypal


@pytest.fixture
def paypal() -> Iterator[FakePayPal]:
    with running_fake_paypal() as fake:
        yield fake


@pytest.fixture
def billing_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    """More settings for a test: ``parametrize("billing_overrides", [{…}], indirect=True)``."""
    extra: dict[str, Any] = getattr(request, "param", {})
    return extra


@pytest.fixture
def settings_overrides(paypal: FakePayPal, billing_overrides: dict[str, Any]) -> dict[str, Any]:
    return {
        "paypal_base_url": paypal.base_url,
        "paypal_client_id": CLIENT_ID,
        "paypal_client_secret": CLIENT_SECRET,
        "paypal_webhook_id": WEBHOOK_ID,
        **billing_overrides,
    }

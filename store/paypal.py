"""The PayPal REST client: OAuth2 client credentials, Orders v2 and webhook signature verification.

Only PayPal's documented calls, so the same code runs against the sandbox
(``https://api-m.sandbox.paypal.com``), the live host and the test suite's local fake:

* ``POST /v1/oauth2/token`` (HTTP Basic client id/secret, form ``grant_type=client_credentials``);
  the access token is cached until shortly before its ``expires_in`` runs out.
* ``POST /v2/checkout/orders``, ``GET /v2/checkout/orders/{id}``, ``POST /v2/checkout/orders/{id}/capture``.
* ``POST /v1/notifications/verify-webhook-signature``.

Timeouts are short: a request thread never waits on PayPal for long. A call is retried only when
repeating it cannot do anything twice: reads, the token request, and writes that carry a
``PayPal-Request-Id`` (PayPal answers a repeated id with the first result). The client secret and
access tokens never appear in a log line, an exception message, a URL or a ``repr``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import anyio
import httpx

from store.clock import Clock

log = logging.getLogger("outputlayer.paypal")

TIMEOUT = httpx.Timeout(10.0, connect=3.0)
ATTEMPTS = 2
RETRY_PAUSE_SECONDS = 0.2
# A token is renewed this long before PayPal says it expires, so no request carries a dying token.
TOKEN_MARGIN_MS = 60_000
TRANSMISSION_HEADERS = (
    "paypal-auth-algo",
    "paypal-cert-url",
    "paypal-transmission-id",
    "paypal-transmission-sig",
    "paypal-transmission-time",
)


class PayPalUnavailable(Exception):
    """PayPal could not be reached, timed out, or answered 5xx/429: try again later."""


class PayPalRefused(Exception):
    """PayPal answered 4xx; ``issue`` is the first ``details[].issue`` (e.g. ``ORDER_ALREADY_CAPTURED``)."""

    def __init__(self, status: int, name: str, issue: str) -> None:
        super().__init__(f"PayPal answered {status} {name} {issue}".strip())
        self.status = status
        self.name = name
        self.issue = issue


@dataclass(frozen=True, slots=True)
class CreatedOrder:
    order_id: str
    approve_url: str


@dataclass(slots=True)
class _Token:
    value: str = field(repr=False)
    expires_at_ms: int


class PayPalClient:
    """One PayPal REST application (client id and secret) on one host."""

    def __init__(self, base_url: str, client_id: str, client_secret: str, clock: Clock) -> None:
        self.base_url = base_url.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self._clock = clock
        self._token: _Token | None = None
        self._token_lock = anyio.Lock()

    def __repr__(self) -> str:
        return f"PayPalClient(base_url={self.base_url!r})"

    # --- Orders v2 ---------------------------------------------------------------------------

    async def create_order(self, request_id: str, amount: str, currency: str, custom_id: str) -> CreatedOrder:
        """Create an order (intent CAPTURE) for one purchase unit; ``request_id`` makes a retry create one order."""
        body = {
            "intent": "CAPTURE",
            "purchase_units": [
                {
                    "reference_id": custom_id,
                    "custom_id": custom_id,
                    "amount": {"currency_code": currency, "value": amount},
                }
            ],
        }
        order = await self._call("POST", "/v2/checkout/orders", body=body, request_id=request_id)
        order_id = order.get("id")
        url = approve_link(order)
        if not isinstance(order_id, str) or not order_id or url is None:
            raise PayPalUnavailable("PayPal answered an order without an id or an approve link")
        return CreatedOrder(order_id, url)

    async def get_order(self, order_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/v2/checkout/orders/{_segment(order_id)}")

    async def capture_order(self, order_id: str, request_id: str) -> dict[str, Any]:
        return await self._call(
            "POST", f"/v2/checkout/orders/{_segment(order_id)}/capture", body={}, request_id=request_id
        )

    # --- webhooks ----------------------------------------------------------------------------

    async def verify_webhook(self, transmission: dict[str, str], webhook_id: str, raw_event: bytes) -> bool:
        """Ask PayPal whether this delivery is genuine; ``raw_event`` is passed on byte for byte."""
        fields = {
            "auth_algo": transmission["paypal-auth-algo"],
            "cert_url": transmission["paypal-cert-url"],
            "transmission_id": transmission["paypal-transmission-id"],
            "transmission_sig": transmission["paypal-transmission-sig"],
            "transmission_time": transmission["paypal-transmission-time"],
            "webhook_id": webhook_id,
        }
        # The event goes in exactly as received: re-serialising it could change the bytes PayPal signed.
        body = json.dumps(fields)[:-1].encode() + b', "webhook_event": ' + raw_event + b"}"
        answer = await self._call("POST", "/v1/notifications/verify-webhook-signature", raw_body=body, retry=True)
        return answer.get("verification_status") == "SUCCESS"

    # --- transport ---------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        raw_body: bytes | None = None,
        request_id: str | None = None,
        retry: bool = False,
    ) -> dict[str, Any]:
        content = raw_body if raw_body is not None else (json.dumps(body).encode() if body is not None else None)
        headers = {"Accept": "application/json"}
        if content is not None:
            headers["Content-Type"] = "application/json"
        if request_id is not None:
            headers["PayPal-Request-Id"] = request_id
        safe_to_repeat = retry or method == "GET" or request_id is not None
        async with httpx.AsyncClient(base_url=self.base_url, timeout=TIMEOUT) as http:
            for attempt in range(1, ATTEMPTS + 1):
                try:
                    response = await self._send(http, method, path, content, headers)
                    if response.status_code == 401:
                        # An expired or revoked token was not used for anything: renew it and try once more.
                        self._token = None
                        response = await self._send(http, method, path, content, headers)
                    return _answer(response, method, path)
                except PayPalUnavailable as exc:
                    if not safe_to_repeat or attempt == ATTEMPTS:
                        raise
                    log.warning("paypal %s %s failed (%s); retrying", method, path, exc)
                    await anyio.sleep(RETRY_PAUSE_SECONDS)
        raise AssertionError("unreachable")

    async def _send(
        self, http: httpx.AsyncClient, method: str, path: str, content: bytes | None, headers: dict[str, str]
    ) -> httpx.Response:
        token = await self._access_token(http)
        try:
            return await http.request(
                method, path, content=content, headers={**headers, "Authorization": f"Bearer {token}"}
            )
        except httpx.HTTPError as exc:
            raise PayPalUnavailable(f"{method} {path} failed: {type(exc).__name__}") from None

    async def _access_token(self, http: httpx.AsyncClient) -> str:
        async with self._token_lock:
            now = self._clock.now_ms()
            if self._token is not None and self._token.expires_at_ms > now:
                return self._token.value
            try:
                response = await http.post(
                    "/v1/oauth2/token",
                    data={"grant_type": "client_credentials"},
                    auth=(self._client_id, self._client_secret),
                    headers={"Accept": "application/json"},
                )
            except httpx.HTTPError as exc:
                raise PayPalUnavailable(f"token request failed: {type(exc).__name__}") from None
            if response.status_code >= 500 or response.status_code == 429:
                raise PayPalUnavailable(f"token request answered {response.status_code}")
            if response.status_code != 200:
                # Wrong client id or secret: an operator must fix the settings; retrying later will not help
                # but the client still sees a retryable outage rather than a payment failure.
                log.error(
                    "paypal token request refused with %d: check the PayPal client id and secret", response.status_code
                )
                raise PayPalUnavailable(f"token request answered {response.status_code}")
            document = _json(response)
            value = document.get("access_token")
            lifetime = document.get("expires_in")
            if not isinstance(value, str) or not value:
                raise PayPalUnavailable("token answer without access_token")
            seconds = int(lifetime) if isinstance(lifetime, int | float) else 0
            self._token = _Token(value, now + max(seconds * 1000 - TOKEN_MARGIN_MS, 0))
            return value


def approve_link(order: dict[str, Any]) -> str | None:
    """The URL the buyer opens: the ``approve`` link, or ``payer-action`` in newer integrations."""
    links = order.get("links")
    if not isinstance(links, list):
        return None
    for rel in ("approve", "payer-action"):
        for link in links:
            if isinstance(link, dict) and link.get("rel") == rel and isinstance(link.get("href"), str):
                href: str = link["href"]
                return href
    return None


def _answer(response: httpx.Response, method: str, path: str) -> dict[str, Any]:
    status = response.status_code
    if status >= 500 or status == 429:
        raise PayPalUnavailable(f"{method} {path} answered {status}")
    if status >= 400:
        document = _json(response, strict=False)
        details = document.get("details")
        issue = ""
        if isinstance(details, list) and details and isinstance(details[0], dict):
            issue = str(details[0].get("issue", ""))
        raise PayPalRefused(status, str(document.get("name", "")), issue)
    return _json(response)


def _json(response: httpx.Response, *, strict: bool = True) -> dict[str, Any]:
    try:
        document = response.json()
    except ValueError:
        document = None
    if isinstance(document, dict):
        return document
    if strict:
        raise PayPalUnavailable(f"PayPal answered {response.status_code} without a JSON object")
    return {}


def _segment(value: str) -> str:
    """An id as one URL path segment (ids come from PayPal or our database, but never trust a path)."""
    return quote(value, safe="")

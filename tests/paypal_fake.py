"""A local fake of the PayPal REST API, faithful to PayPal's documentation of each call it serves.

A real HTTP server (Starlette under uvicorn, on a free 127.0.0.1 port, in a thread of the test
process) so the server under test talks to it exactly as to ``https://api-m.sandbox.paypal.com``:

* ``POST /v1/oauth2/token``: HTTP Basic client id/secret, form ``grant_type=client_credentials``;
  answers ``{scope, access_token, token_type: "Bearer", app_id, expires_in, nonce}``.
* ``POST /v2/checkout/orders``: ``intent`` ``CAPTURE``, ``purchase_units[].amount {currency_code,
  value}``, ``custom_id``; 201 ``{id, status: "CREATED", links: [self, approve, update, capture]}``.
  A repeated ``PayPal-Request-Id`` answers the first result (200) and creates nothing.
* ``GET /v2/checkout/orders/{id}``: the order, with ``purchase_units[].payments.captures[]`` once captured.
* ``POST /v2/checkout/orders/{id}/capture``: 201 with the completed order; 422 ``ORDER_NOT_APPROVED``,
  ``ORDER_ALREADY_CAPTURED`` or (knob) ``INSTRUMENT_DECLINED``; ``PayPal-Request-Id`` honoured.
* ``POST /v1/notifications/verify-webhook-signature``: ``{auth_algo, cert_url, transmission_id,
  transmission_sig, transmission_time, webhook_id, webhook_event}`` → ``{verification_status}``;
  SUCCESS only for a transmission this fake signed, with the same event and webhook id.

Knobs a test turns: ``down`` (every call answers 503), ``decline_next_capture``; and the buyer's and
PayPal's side of the flow: :meth:`FakePayPal.approve`, :meth:`FakePayPal.event` (a signed delivery),
:meth:`FakePayPal.capture_event` / :meth:`refund_event` / :meth:`approved_event` shaped like PayPal's
``PAYMENT.CAPTURE.*`` (capture resource) and ``CHECKOUT.ORDER.APPROVED`` (order resource) events.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.serving import free_port

CLIENT_ID = "fake-client-id"
CLIENT_SECRET = "fake-client-secret-do-not-log"
WEBHOOK_ID = "1WH00000000000000"
TOKEN_SECONDS = 32_400


@dataclass
class Delivery:
    """A webhook as PayPal posts it: the five ``PAYPAL-*`` transmission headers and the raw JSON body."""

    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.body)
        return document


@dataclass
class FakePayPal:
    base_url: str = ""
    down: bool = False
    decline_next_capture: bool = False
    # Calls ("create", "capture", …) whose next reply is lost: the work is done, the caller sees a 503.
    lose_next_reply: set[str] = field(default_factory=set)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    # Every request seen: (method, path, headers, body); a test can look for leaked secrets.
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    _tokens: set[str] = field(default_factory=set)
    _replies: dict[tuple[str, str], tuple[int, dict[str, Any]]] = field(default_factory=dict)
    _transmissions: dict[str, bytes] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- the API -----------------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/oauth2/token", self._token, methods=["POST"]),
                Route("/v2/checkout/orders", self._create_order, methods=["POST"]),
                Route("/v2/checkout/orders/{order_id}", self._get_order, methods=["GET"]),
                Route("/v2/checkout/orders/{order_id}/capture", self._capture, methods=["POST"]),
                Route("/v1/notifications/verify-webhook-signature", self._verify, methods=["POST"]),
            ]
        )

    async def _seen(self, request: Request, call: str) -> bytes:
        body = await request.body()
        with self._lock:
            self.requests.append((request.method, request.url.path, dict(request.headers), body))
            self.calls[call] += 1
        return body

    async def _token(self, request: Request) -> Response:
        body = await self._seen(request, "token")
        if self.down:
            return _error(503, "SERVICE_UNAVAILABLE")
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return JSONResponse({"error": "invalid_client", "error_description": "Client Authentication failed"}, 401)
        if body != b"grant_type=client_credentials" or "x-www-form-urlencoded" not in request.headers.get(
            "content-type", ""
        ):
            return JSONResponse({"error": "unsupported_grant_type"}, 400)
        token = "A21AA" + secrets.token_urlsafe(24)
        self._tokens.add(token)
        return JSONResponse(
            {
                "scope": "https://uri.paypal.com/services/payments/payment",
                "access_token": token,
                "token_type": "Bearer",
                "app_id": "APP-80W284485P519543T",
                "expires_in": TOKEN_SECONDS,
                "nonce": secrets.token_hex(8),
            }
        )

    def _authorized(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme == "Bearer" and token in self._tokens

    def _guard(self, request: Request) -> Response | None:
        if self.down:
            return _error(503, "SERVICE_UNAVAILABLE")
        if not self._authorized(request):
            return _error(401, "AUTHENTICATION_FAILURE")
        return None

    def _replayed(self, request: Request, route: str) -> Response | None:
        request_id = request.headers.get("paypal-request-id")
        if request_id and (route, request_id) in self._replies:
            status, document = self._replies[(route, request_id)]
            return JSONResponse(document, 200 if status == 201 else status)
        return None

    def _remember(self, request: Request, route: str, status: int, document: dict[str, Any]) -> Response:
        request_id = request.headers.get("paypal-request-id")
        if request_id:
            self._replies[(route, request_id)] = (status, document)
        if route in self.lose_next_reply:
            self.lose_next_reply.discard(route)
            return _error(503, "SERVICE_UNAVAILABLE")
        return JSONResponse(document, status)

    async def _create_order(self, request: Request) -> Response:
        body = await self._seen(request, "create")
        refused = self._guard(request) or self._replayed(request, "create")
        if refused is not None:
            return refused
        try:
            document = json.loads(body)
            unit = document["purchase_units"][0]
            amount = {"currency_code": unit["amount"]["currency_code"], "value": unit["amount"]["value"]}
            assert document["intent"] == "CAPTURE" and len(document["purchase_units"]) == 1
        except (ValueError, KeyError, IndexError, TypeError, AssertionError):
            return _error(400, "INVALID_REQUEST", "MALFORMED_REQUEST_JSON")
        order_id = secrets.token_hex(8).upper()
        order = {
            "id": order_id,
            "intent": "CAPTURE",
            "status": "CREATED",
            "purchase_units": [
                {
                    "reference_id": unit.get("reference_id", "default"),
                    "custom_id": unit.get("custom_id"),
                    "amount": amount,
                }
            ],
            "create_time": _now(),
        }
        with self._lock:
            self.orders[order_id] = order
        return self._remember(request, "create", 201, self._representation(order_id))

    def _representation(self, order_id: str) -> dict[str, Any]:
        order = json.loads(json.dumps(self.orders[order_id]))
        base = f"{self.base_url}/v2/checkout/orders/{order_id}"
        links = [{"href": base, "rel": "self", "method": "GET"}]
        if order["status"] in ("CREATED", "APPROVED"):
            links += [
                {"href": f"{self.base_url}/checkoutnow?token={order_id}", "rel": "approve", "method": "GET"},
                {"href": base, "rel": "update", "method": "PATCH"},
                {"href": f"{base}/capture", "rel": "capture", "method": "POST"},
            ]
        order["links"] = links
        return order

    async def _get_order(self, request: Request) -> Response:
        await self._seen(request, "get")
        refused = self._guard(request)
        if refused is not None:
            return refused
        order_id = request.path_params["order_id"]
        if order_id not in self.orders:
            return _error(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID")
        return JSONResponse(self._representation(order_id))

    async def _capture(self, request: Request) -> Response:
        await self._seen(request, "capture")
        refused = self._guard(request) or self._replayed(request, "capture")
        if refused is not None:
            return refused
        order_id = request.path_params["order_id"]
        with self._lock:
            order = self.orders.get(order_id)
            if order is None:
                return _error(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID")
            if order["status"] == "COMPLETED":
                return _error(422, "UNPROCESSABLE_ENTITY", "ORDER_ALREADY_CAPTURED")
            if order["status"] != "APPROVED":
                return _error(422, "UNPROCESSABLE_ENTITY", "ORDER_NOT_APPROVED")
            if self.decline_next_capture:
                self.decline_next_capture = False
                document = {"name": "UNPROCESSABLE_ENTITY", "details": [{"issue": "INSTRUMENT_DECLINED"}]}
                return self._remember(request, "capture", 422, document)
            unit = order["purchase_units"][0]
            capture = self._new_capture(order_id, unit)
            unit["payments"] = {"captures": [capture]}
            order["status"] = "COMPLETED"
        return self._remember(request, "capture", 201, self._representation(order_id))

    def _new_capture(self, order_id: str, unit: dict[str, Any]) -> dict[str, Any]:
        capture_id = secrets.token_hex(8).upper()
        return {
            "id": capture_id,
            "status": "COMPLETED",
            "amount": dict(unit["amount"]),
            "custom_id": unit.get("custom_id"),
            "final_capture": True,
            "supplementary_data": {"related_ids": {"order_id": order_id}},
            "create_time": _now(),
            "links": [
                {"href": f"{self.base_url}/v2/payments/captures/{capture_id}", "rel": "self", "method": "GET"},
                {
                    "href": f"{self.base_url}/v2/payments/captures/{capture_id}/refund",
                    "rel": "refund",
                    "method": "POST",
                },
                {"href": f"{self.base_url}/v2/checkout/orders/{order_id}", "rel": "up", "method": "GET"},
            ],
        }

    async def _verify(self, request: Request) -> Response:
        body = await self._seen(request, "verify")
        refused = self._guard(request)
        if refused is not None:
            return refused
        try:
            document = json.loads(body)
            fields = [
                document[name]
                for name in ("auth_algo", "cert_url", "transmission_id", "transmission_sig", "transmission_time")
            ]
            event = document["webhook_event"]
            webhook_id = document["webhook_id"]
        except (ValueError, KeyError, TypeError):
            return _error(400, "VALIDATION_ERROR", "MISSING_REQUIRED_PARAMETER")
        transmission_id = fields[2]
        signed = self._transmissions.get(transmission_id)
        genuine = (
            signed is not None
            and json.loads(signed) == event
            and webhook_id == WEBHOOK_ID
            and fields[3] == _signature(transmission_id, signed)
        )
        return JSONResponse({"verification_status": "SUCCESS" if genuine else "FAILURE"})

    # --- the buyer's and PayPal's side -------------------------------------------------------

    def approve(self, order_id: str) -> Delivery:
        """The buyer approves on PayPal's page; PayPal then sends ``CHECKOUT.ORDER.APPROVED``."""
        with self._lock:
            self.orders[order_id]["status"] = "APPROVED"
        return self.approved_event(order_id)

    def approved_event(self, order_id: str) -> Delivery:
        order = self._representation(order_id)
        return self.event("CHECKOUT.ORDER.APPROVED", "checkout-order", order)

    def captures(self, order_id: str) -> list[dict[str, Any]]:
        units = self.orders[order_id]["purchase_units"]
        found: list[dict[str, Any]] = units[0].get("payments", {}).get("captures", [])
        return found

    def capture_event(self, order_id: str, event_type: str = "PAYMENT.CAPTURE.COMPLETED") -> Delivery:
        """``PAYMENT.CAPTURE.COMPLETED`` (or ``DENIED``) with the order's capture as its resource."""
        capture = dict(self.captures(order_id)[0])
        if event_type == "PAYMENT.CAPTURE.DENIED":
            capture["status"] = "DECLINED"
        return self.event(event_type, "capture", capture)

    def paid_elsewhere(self, order_id: str, amount: dict[str, str] | None = None) -> dict[str, Any]:
        """Approve and capture an order without our server (as if its capture call were lost)."""
        with self._lock:
            order = self.orders[order_id]
            unit = order["purchase_units"][0]
            capture = self._new_capture(order_id, {**unit, "amount": amount or unit["amount"]})
            unit["payments"] = {"captures": [capture]}
            order["status"] = "COMPLETED"
        return capture

    def refund_event(self, order_id: str, event_type: str = "PAYMENT.CAPTURE.REFUNDED") -> Delivery:
        """A refund resource whose ``up`` link names the refunded capture, as PayPal sends it."""
        capture = self.captures(order_id)[0]
        refund_id = secrets.token_hex(8).upper()
        resource = {
            "id": refund_id,
            "status": "COMPLETED",
            "amount": dict(capture["amount"]),
            "custom_id": capture.get("custom_id"),
            "create_time": _now(),
            "links": [
                {"href": f"{self.base_url}/v2/payments/refunds/{refund_id}", "rel": "self", "method": "GET"},
                {"href": f"{self.base_url}/v2/payments/captures/{capture['id']}", "rel": "up", "method": "GET"},
            ],
        }
        return self.event(event_type, "refund", resource)

    def event(self, event_type: str, resource_type: str, resource: dict[str, Any]) -> Delivery:
        """A signed delivery of an event, as PayPal posts it to the registered webhook URL."""
        event = {
            "id": "WH-" + secrets.token_hex(10).upper(),
            "event_version": "1.0",
            "create_time": _now(),
            "resource_type": resource_type,
            "resource_version": "2.0",
            "event_type": event_type,
            "summary": f"{event_type} event",
            "resource": resource,
            "links": [],
        }
        body = json.dumps(event).encode()
        transmission_id = secrets.token_hex(16)
        with self._lock:
            self._transmissions[transmission_id] = body
        headers = {
            "PAYPAL-AUTH-ALGO": "SHA256withRSA",
            "PAYPAL-CERT-URL": f"{self.base_url}/v1/notifications/certs/CERT-360caa42-fca2a594-1d93a270",
            "PAYPAL-TRANSMISSION-ID": transmission_id,
            "PAYPAL-TRANSMISSION-SIG": _signature(transmission_id, body),
            "PAYPAL-TRANSMISSION-TIME": _now(),
            "Content-Type": "application/json",
        }
        return Delivery(headers, body)


def _signature(transmission_id: str, body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(transmission_id.encode() + body).digest()).decode()


def _error(status: int, name: str, issue: str | None = None) -> JSONResponse:
    document: dict[str, Any] = {"name": name, "message": name.replace("_", " ").lower(), "debug_id": "f00d"}
    if issue:
        document["details"] = [{"issue": issue, "description": issue.replace("_", " ").lower()}]
    return JSONResponse(document, status)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@contextlib.contextmanager
def running_fake_paypal() -> Iterator[FakePayPal]:
    """The fake on a free loopback port, served by uvicorn in a thread; stopped after."""
    fake = FakePayPal()
    port = free_port()
    fake.base_url = f"http://127.0.0.1:{port}"
    config = uvicorn.Config(fake.app(), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="fake-paypal", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the fake PayPal did not start")
        time.sleep(0.01)
    try:
        yield fake
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def paypal_env(fake: FakePayPal) -> dict[str, str]:
    """The ``OUTPUTLAYER_PAYPAL_*`` settings of a server that bills through ``fake``."""
    return {
        "OUTPUTLAYER_PAYPAL_BASE_URL": fake.base_url,
        "OUTPUTLAYER_PAYPAL_CLIENT_ID": CLIENT_ID,
        "OUTPUTLAYER_PAYPAL_CLIENT_SECRET": CLIENT_SECRET,
        "OUTPUTLAYER_PAYPAL_WEBHOOK_ID": WEBHOOK_ID,
    }

"""Account routes: key registration and the credits family (SPEC sections 4 and 7)."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from rest.endpoint import Call, client_ip, endpoint, read_json, route
from rest.responses import JSONResponse
from store import WEBHOOK_BODY_LIMIT, RegisterKey, StoreError, family_of, parse_request


async def register_key(call: Call) -> Response:
    request = parse_request(RegisterKey, await read_json(call.request), "Invalid registration body.")
    body, call.rate = await call.service.register(email=request.email, client=client_ip(call.request))
    return JSONResponse(body, status_code=201)


async def balance(call: Call) -> Response:
    return JSONResponse(call.service.balance(call.owner))


async def checkout(call: Call) -> Response:
    document = await read_json(call.request)
    body = await call.service.checkout(call.owner, document)
    return JSONResponse(body, status_code=201)


async def verify(call: Call) -> Response:
    purchase_id = call.request.query_params.get("purchaseId")
    if not purchase_id:
        raise StoreError("invalid_request", "purchaseId is required.")
    body = await call.service.verify_purchase(call.owner, purchase_id)
    return JSONResponse(body)


async def paypal_webhook(call: Call) -> Response:
    """PayPal's deliveries: the raw body goes to the store unchanged (its signature covers those bytes)."""
    body = bytearray()
    async for chunk in call.request.stream():
        body.extend(chunk)
        if len(body) > WEBHOOK_BODY_LIMIT:
            raise StoreError("invalid_request", f"The webhook body is larger than {WEBHOOK_BODY_LIMIT} bytes.")
    return JSONResponse(await call.service.paypal_webhook(call.request.headers, bytes(body)))


def account_routes() -> list[Route]:
    return [
        route("/v1/keys/register", POST=endpoint(register_key, auth=False)),
        route("/v1/credits/balance", GET=endpoint(balance, family=family_of("balance"))),
        route("/v1/credits/checkout", POST=endpoint(checkout, family=family_of("checkout"))),
        route("/v1/credits/verify", GET=endpoint(verify, family=family_of("verify_purchase"))),
        route("/webhooks/paypal", POST=endpoint(paypal_webhook, auth=False)),
    ]

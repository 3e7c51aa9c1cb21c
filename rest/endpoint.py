"""The endpoint wrapper every route goes through: request id, key-in-query refusal, auth, rate limit,
error rendering and the quota/rate headers of SPEC section 1.

A route handler receives a :class:`Call` (service, account, request id) and returns a response;
everything it raises as a :class:`StoreError` is rendered here, once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from rest.errors import error_response, unexpected_error
from store import (
    Account,
    ArtifactService,
    OwnedOutput,
    RateFamily,
    RateLimited,
    RateState,
    StoreError,
    parse_json_object,
)

log = logging.getLogger("outputlayer.rest")

KEY_PARAMETERS = frozenset({"api_key", "apikey", "key", "token", "access_token"})
DISCOVERY_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": (
        "X-Request-Id, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, Retry-After, "
        "X-OutputLayer-Free-Remaining, X-OutputLayer-Credits-Remaining, "
        "X-OutputLayer-Storage-Used-Bytes, X-OutputLayer-Storage-Limit-Bytes"
    ),
}


@dataclass(slots=True)
class Call:
    request: Request
    service: ArtifactService
    request_id: str
    account: Account | None = None
    rate: RateState | None = None
    # The path's output as the authentication read it (routes declared with ``reads_output``).
    found: OwnedOutput | None = None

    @property
    def owner(self) -> Account:
        assert self.account is not None
        return self.account


Handler = Callable[[Call], Awaitable[Response]]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def refuse_key_in_query(request: Request) -> None:
    """API keys never travel in URLs: they end up in logs, proxies and browser history."""
    if not request.scope.get("query_string"):
        return
    for name, value in request.query_params.multi_items():
        if name.lower() in KEY_PARAMETERS or value.startswith("ol_live_"):
            raise StoreError(
                "invalid_request",
                "API keys must not be sent in the query string; use the Authorization: Bearer header.",
            )


def single_header(request: Request, name: str) -> str | None:
    """The one value of header ``name``; a request that sends it twice is ambiguous and refused
    (SPEC section 15) instead of silently taking the first."""
    values = request.headers.getlist(name)
    if len(values) > 1:
        raise StoreError("invalid_request", f"Send the {name} header once; this request has {len(values)}.")
    return values[0] if values else None


def route(path: str, **by_method: Callable[[Request], Awaitable[Response]]) -> Route:
    """One route for every method of a path, so a wrong method's 405 lists them all in ``Allow``."""

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await by_method[method](request)

    return Route(path, dispatch, methods=list(by_method))


def endpoint(
    handler: Handler,
    *,
    auth: bool = True,
    family: RateFamily | None = None,
    cors: bool = False,
    optional_auth: bool = False,
    reads_output: bool = False,
) -> Callable[[Request], Awaitable[Response]]:
    """Wrap ``handler``; ``family`` is its use case's rate limit (``store.family_of``; per key when
    authenticated, else per IP). ``reads_output``: authenticate and read the path's ``output_id`` in one
    statement."""

    async def run(request: Request) -> Response:
        service: ArtifactService = request.state.service
        call = Call(request, service, service.ids.new("req"))
        try:
            refuse_key_in_query(request)
            header = single_header(request, "Authorization")
            if reads_output:
                output_id = request.path_params["output_id"]
                call.account, call.found = await service.authenticate_with_output(bearer_token(header), output_id)
            elif auth or (optional_auth and header):
                call.account = await service.authenticate(bearer_token(header))
            if family is not None:
                subject = call.account.id if call.account is not None and auth else client_ip(request)
                call.rate = await service.enforce_rate(family, subject)
            response = await handler(call)
        except RateLimited as exc:
            call.rate = exc.state
            response = error_response(exc, request, call.request_id)
        except StoreError as exc:
            response = error_response(exc, request, call.request_id)
        except ClientDisconnect:
            # The client left mid-request (the upload session has already let go of its key and
            # blob); nobody reads this answer, and it is no server fault: one line, no traceback.
            log.warning("client disconnected during %s %s (%s)", request.method, request.url.path, call.request_id)
            response = error_response(
                StoreError("invalid_request", "The client disconnected."), request, call.request_id
            )
        except Exception as exc:  # top-level boundary: log it, never show a stack trace
            response = unexpected_error(exc, request, call.request_id)
        decorate(response, call, cors=cors)
        return response

    return run


def decorate(response: Response, call: Call, *, cors: bool = False) -> None:
    """Add the headers every response carries. None of them is set elsewhere, so they are appended
    to the raw list directly (MutableHeaders scans the list on every assignment: measurably slower)."""
    raw = response.raw_headers
    raw.append((b"x-request-id", call.request_id.encode()))
    account = call.account
    if account is not None:
        raw.append((b"x-outputlayer-free-remaining", str(account.free_remaining).encode()))
        raw.append((b"x-outputlayer-credits-remaining", str(account.credits_remaining).encode()))
        raw.append((b"x-outputlayer-storage-used-bytes", str(account.storage_used_bytes).encode()))
        raw.append((b"x-outputlayer-storage-limit-bytes", str(account.storage_limit_bytes).encode()))
    if call.rate is not None:
        raw.append((b"ratelimit-limit", str(call.rate.limit).encode()))
        raw.append((b"ratelimit-remaining", str(call.rate.remaining).encode()))
        raw.append((b"ratelimit-reset", str(call.rate.reset_seconds).encode()))
    if cors:
        raw.extend((name.lower().encode(), value.encode()) for name, value in DISCOVERY_CORS.items())


def content_length(call: Call) -> int | None:
    """The declared body length, if any."""
    value = call.request.headers.get("content-length")
    if value is None:
        return None
    if not value.isdigit():
        raise StoreError("invalid_request", "Content-Length must be a non-negative integer.")
    return int(value)


async def read_json(request: Request, limit: int = 65_536) -> dict[str, Any] | None:
    """A small JSON object body (None when empty); oversize, too deep, malformed or non-object bodies
    are invalid requests."""
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise StoreError("invalid_request", f"The request body is larger than {limit} bytes.")
    if not body:  # whitespace alone is not JSON: refused like any other malformed body
        return None
    return parse_json_object(bytes(body), max_bytes=limit)


def bearer_token(authorization: str | None) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header; ``None`` for any other scheme or no key."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None

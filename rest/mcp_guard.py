"""What ``/mcp`` answers before and around the MCP SDK (SPEC sections 11 and 15): a body over the
limit or nested too deep is a JSON-RPC error carrying the REST code, and the SDK's own plain-text
refusals (bad ``Host`` 421, bad ``Origin`` 403, wrong ``Accept`` 406, …) are rewritten as JSON-RPC
errors with the same status, so every answer of the endpoint is JSON.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Send

from outputlayer_mcp.wire import jsonrpc_error, request_id_of, screen
from rest.errors import error_body
from rest.responses import JSONResponse
from store import StoreError


async def guarded_mcp(app: ASGIApp, request: Request, request_id: str, max_bytes: int, send: Send) -> None:
    """Read the body (at most ``max_bytes``), screen it, then hand it to ``app`` as if unread."""
    scope, receive = request.scope, request.receive
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > max_bytes:
            break
    problem = screen(bytes(body), max_bytes=max_bytes)
    if problem is not None:
        answer = jsonrpc_error(
            request_id_of(bytes(body[:max_bytes])), problem, error_body(problem, request, request_id)
        )
        await JSONResponse(answer, status_code=problem.status)(scope, receive, send)
        return
    await app(scope, _replay(bytes(body), receive), _json_refusals(request, request_id, send))


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that yields the already-read body once, then defers to the real one."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _json_refusals(request: Request, request_id: str, send: Send) -> Send:
    """Pass responses through, except non-JSON refusals, which become JSON-RPC errors."""
    held: Message | None = None

    async def relay(message: Message) -> None:
        nonlocal held
        if message["type"] == "http.response.start" and _is_non_json_refusal(message):
            held = message
            return
        if held is not None and message["type"] == "http.response.body":
            status = int(held["status"])
            text = bytes(message.get("body", b"")).decode("utf-8", "replace").strip()
            error = StoreError(
                "payload_too_large" if status == 413 else "invalid_request", text or f"Refused with HTTP {status}."
            )
            answer = jsonrpc_error(None, error, error_body(error, request, request_id))
            response = JSONResponse(answer, status_code=status)
            await send(
                {"type": "http.response.start", "status": status, "headers": [*response.raw_headers, *_extra(held)]}
            )
            await send({"type": "http.response.body", "body": response.body})
            held = None
            return
        await send(message)

    return relay


def _is_non_json_refusal(message: Message) -> bool:
    """An error status whose body is not JSON (the SDK sends its refusals untyped or as plain text)."""
    if int(message["status"]) < 400:
        return False
    types = [bytes(v) for n, v in message.get("headers", []) if n.lower() == b"content-type"]
    return not any(t.startswith(b"application/json") for t in types)


def _extra(message: Message) -> list[tuple[bytes, bytes]]:
    """Headers of the refused response worth keeping (the request id; not its length or type)."""
    return [(n, v) for n, v in message.get("headers", []) if n.lower() not in (b"content-type", b"content-length")]

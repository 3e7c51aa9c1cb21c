"""JSON-RPC answers for messages refused before the MCP SDK sees them (SPEC sections 11 and 15):
too large or too deep. A refused request still gets an answer, addressed to its ``id`` when the
``id`` can be read, so a client never waits forever.
"""

from __future__ import annotations

import json
import re
from typing import Any

from mcp.shared.message import SessionMessage
from mcp.types import JSONRPCError
from pydantic import ValidationError

from outputlayer_mcp.results import Where, error_envelope_contract
from store import MAX_DEPTH, StoreError, check_depth, nesting_depth

# JSON-RPC 2.0: the message is not a valid request object (here: over a limit of this server).
INVALID_REQUEST = -32600
# A string literal, one structural character, or one bare scalar (number, true, false, null).
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}:,]|[^\s\[\]{}:,"]+')


def screen(message: str | bytes, *, max_bytes: int) -> StoreError | None:
    """Why ``message`` must not be parsed (size over ``max_bytes``, nesting over 64), else None."""
    if len(message) > max_bytes:
        return StoreError(
            "payload_too_large",
            f"This MCP request is larger than {max_bytes} bytes. To store a large artifact, call the "
            "create_upload_link tool and send the bytes to the link it returns (curl -T FILE URL).",
        )
    # Only the depth is checked here: a malformed message is left to the SDK, which answers it.
    depth = nesting_depth(message)
    if depth > MAX_DEPTH:
        return StoreError(
            "invalid_request", f"This MCP request is nested {depth} levels deep; the limit is {MAX_DEPTH}."
        )
    return None


def request_id_of(message: str | bytes) -> str | int | None:
    """The top-level ``id`` of a JSON-RPC message read token by token (the message as a whole may be
    unparseable, e.g. too deep); None when there is none."""
    data = message.encode("utf-8", "replace") if isinstance(message, str) else message
    depth = 0
    previous = b""
    expecting_value = False
    for match in _TOKEN.finditer(data):
        token = match.group()
        if expecting_value:
            if token[:1] in (b"{", b"["):
                return None
            value = json.loads(token)
            return value if isinstance(value, str | int) and not isinstance(value, bool) else None
        if token in (b"{", b"["):
            depth += 1
        elif token in (b"}", b"]"):
            depth -= 1
        elif depth == 1 and token == b":" and previous == b'"id"':
            expecting_value = True
        previous = token
    return None


def jsonrpc_error(request_id: str | int | None, error: StoreError, data: dict[str, Any]) -> dict[str, Any]:
    """A JSON-RPC error whose ``data`` is the REST error envelope (``error`` code, message, contract)."""
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "error": {"code": INVALID_REQUEST, "message": f"{error.code}: {error.message}", "data": data},
    }


def stdio_refusal(item: SessionMessage | Exception) -> tuple[str | int | None, StoreError] | None:
    """For a message read over stdio: (id, error) when it must be refused, None when it may pass.

    The SDK hands over a line it could not parse (e.g. nested past its parser's limit) as an
    exception carrying the line, and would answer nothing; a parsed request whose parameters are
    nested over 64 levels is refused too, so the limit is the same over stdio and HTTP.
    """
    if isinstance(item, ValidationError):
        line = next((e["input"] for e in item.errors() if isinstance(e.get("input"), str | bytes)), b"")
        error = screen(line, max_bytes=len(line) + 1) or StoreError(
            "invalid_request", "This MCP message is not valid JSON-RPC."
        )
        return request_id_of(line), error
    if isinstance(item, Exception):
        return None
    message = item.message
    params = getattr(message, "params", None)
    if params is None:
        return None
    try:
        check_depth(params, what="This MCP request")
    except StoreError as error:
        request_id = getattr(message, "id", None)
        return (request_id if isinstance(request_id, str | int) else None), error
    return None


def stdio_error_message(request_id: str | int | None, error: StoreError, where: Where) -> SessionMessage:
    data = {"error": error.code, "message": error.message, "agent_contract": error_envelope_contract(error, where)}
    body = jsonrpc_error(request_id, error, data)
    return SessionMessage(JSONRPCError.model_validate(body))

"""Store answers → MCP tool results.

Every result carries the body REST would send as ``structuredContent`` and one short line of text
for clients that show text only; errors are ``isError`` results whose structured content is the
REST error envelope. Contracts come from :mod:`store.contract`, never from here: an error's retry
actions point at the REST request equivalent to the tool call (``Where``), so an agent gets the same
contract whichever door it used.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from mcp.types import (
    BlobResourceContents,
    CallToolResult,
    ContentBlock,
    EmbeddedResource,
    ImageContent,
    ResourceLink,
    TextContent,
)

from store.contract import error_contract
from store.direct import Inline
from store.errors import StoreError

RESOURCE_PREFIX = "outputlayer://outputs/"


@dataclass(frozen=True, slots=True)
class Where:
    """The REST request a tool call stands for (method and path), for the contracts of its errors."""

    method: str
    path: str


def resource_uri(output_id: str) -> str:
    return f"{RESOURCE_PREFIX}{output_id}"


def output_result(
    body: dict[str, Any], *, replayed: bool | None = None, inline: Inline | None = None, note: str | None = None
) -> CallToolResult:
    """An output in a live state (ready or failed): its fields and contract, a link to its bytes."""
    structured = dict(body)
    ready = body["status"] == "ready"
    if ready:
        structured["resourceUri"] = resource_uri(body["outputId"])
    if replayed is not None:
        structured["replayed"] = replayed
    content: list[ContentBlock] = [TextContent(text=_output_line(body, replayed, note))]
    if ready:
        content.append(_link(body))
    if inline is not None:
        content.append(_inline_block(body["outputId"], inline))
    return CallToolResult(content=content, structured_content=structured)


def gone_result(body: dict[str, Any], error: StoreError, request_id: str) -> CallToolResult:
    """An expired or deleted output read by id: like REST's 410, the output itself plus the error code."""
    structured = {**body, "error": error.code, "message": error.message, "request_id": request_id}
    text = f"{error.code}: {error.message} {_next(body)}"
    return CallToolResult(content=[TextContent(text=text)], structured_content=structured, is_error=True)


def error_result(error: StoreError, where: Where, request_id: str) -> CallToolResult:
    """A refused call: the REST error envelope, with its contract."""
    body = {
        "error": error.code,
        "message": error.message,
        "request_id": request_id,
        **error.fields,
        "agent_contract": error_envelope_contract(error, where),
    }
    text = f"{error.code}: {error.message} {_next(body)}"
    return CallToolResult(content=[TextContent(text=text)], structured_content=body, is_error=True)


def error_envelope_contract(error: StoreError, where: Where) -> dict[str, Any]:
    return error_contract(
        error.code, method=where.method, path=where.path, retry_after=error.retry_after, retryable=error.retryable
    )


def list_result(page: dict[str, Any]) -> CallToolResult:
    outputs = page["outputs"]
    lines = [f"{len(outputs)} output(s), newest first."]
    lines += [
        f"- {o['outputId']} {o['status']} {o['mimeType']} {o['sizeBytes']} bytes {o['label'] or ''}" for o in outputs
    ]
    if page["pageInfo"]["hasMore"]:
        lines.append(f"More: call list_artifacts with cursor={page['pageInfo']['nextCursor']}.")
    return CallToolResult(content=[TextContent(text="\n".join(lines))], structured_content=page)


def share_result(body: dict[str, Any]) -> CallToolResult:
    text = f"Share URL (works without a key until {body['shareExpiresAt']}): {body['shareUrl']}"
    return CallToolResult(content=[TextContent(text=text)], structured_content=body)


# --- pieces ----------------------------------------------------------------------------------


def _output_line(body: dict[str, Any], replayed: bool | None, note: str | None) -> str:
    parts = [
        f"{body['outputId']} is {body['status']}: {body['label'] or '(no label)'}, {body['mimeType']}, "
        f"{body['sizeBytes']} bytes, expires {body['expiresAt']}."
    ]
    if body.get("publicUrl"):
        parts.append(f"Public URL: {body['publicUrl']}.")
    if replayed:
        parts.append("Replayed an earlier identical request: nothing new was stored or charged.")
    if note:
        parts.append(note)
    parts.append(_next(body))
    return " ".join(parts)


def _next(body: dict[str, Any]) -> str:
    """The recommended action in words (it is always the first one)."""
    first = body["agent_contract"]["next_actions"][0]
    if first["available"]:
        return f"Next: {first['action']} ({first['method']} {first['endpoint']})."
    return f"Next: {first['action']}."


def _link(body: dict[str, Any]) -> ResourceLink:
    return ResourceLink(
        name=body["label"] or body["outputId"],
        title=body["label"],
        uri=resource_uri(body["outputId"]),
        mime_type=body["mimeType"],
        size=body["sizeBytes"],
        description="The artifact's bytes; read this resource to get them.",
    )


def _inline_block(output_id: str, inline: Inline) -> ContentBlock:
    if inline.kind == "text" and inline.text is not None:
        return TextContent(text=inline.text)
    encoded = base64.b64encode(inline.data).decode("ascii")
    if inline.kind == "image":
        return ImageContent(data=encoded, mime_type=inline.mime_type)
    return EmbeddedResource(
        resource=BlobResourceContents(uri=resource_uri(output_id), mime_type=inline.mime_type, blob=encoded)
    )

"""Store answers → MCP tool results.

Every result carries the body REST would send as ``structuredContent`` and one short line of text
for clients that show text only; errors are ``isError`` results whose structured content is the
REST error envelope. Contracts come from :mod:`store.contract`, never from here: an error's retry
actions point at the REST request equivalent to the tool call (``Where``), so an agent gets the same
contract whichever door it used.
"""

from __future__ import annotations

import base64
import json
import shlex
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

from store import (
    Inline,
    OutputResult,
    StoreError,
    compact_contract,
    error_contract,
    error_envelope,
    gone_body,
    gone_error,
)

RESOURCE_PREFIX = "outputlayer://outputs/"


@dataclass(frozen=True, slots=True)
class Where:
    """The REST request a tool call stands for (method and path), for the contracts of its errors."""

    method: str
    path: str


def resource_uri(output_id: str) -> str:
    return f"{RESOURCE_PREFIX}{output_id}"


def output_result(
    body: dict[str, Any],
    *,
    replayed: bool | None = None,
    inline: Inline | None = None,
    note: str | None = None,
    download: dict[str, Any] | None = None,
) -> CallToolResult:
    """An output in a live state (ready or failed): its fields and contract, a link to its bytes."""
    structured = dict(body)
    if download is not None:
        structured.update(download)
        name = shlex.quote(body["label"] or body["outputId"])
        link = f"Download without a key: curl -sS -o {name} {shlex.quote(download['downloadUrl'])}"
        note = f"{note} {link}" if note else link
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


# The fields a compact result keeps of an output (save_artifact): what an agent acts on next.
COMPACT_OUTPUT_FIELDS = ("outputId", "publicUrl")
# The protocol revision that introduced structuredContent: clients of earlier ones read text only.
STRUCTURED_CONTENT_SINCE = "2025-06-18"


def reads_structured_content(protocol_version: str | None) -> bool:
    """Whether the client's protocol revision has ``structuredContent`` (revisions are dates)."""
    return protocol_version is None or protocol_version >= STRUCTURED_CONTENT_SINCE


def _compact(structured: dict[str, Any], *, structured_client: bool) -> CallToolResult:
    """A compact result (SPEC section 11's token budget). Clients with ``structuredContent`` get it
    alone (some hosts show the model only that, so a text copy would be paid for and never read);
    older clients get the same JSON as text."""
    content: list[ContentBlock] = []
    if not structured_client:
        content.append(TextContent(text=json.dumps(structured, separators=(",", ":"))))
    return CallToolResult(content=content, structured_content=structured)


def saved_result(body: dict[str, Any], *, replayed: bool, structured_client: bool = True) -> CallToolResult:
    """``save_artifact``: the output's id (and public URL), whether it was a replay, and the compact
    contract; ``get_artifact`` has the full representation."""
    structured = {name: body[name] for name in COMPACT_OUTPUT_FIELDS if body.get(name) is not None}
    if replayed:
        structured["replayed"] = True
    structured["agent_contract"] = compact_contract(body["agent_contract"])
    return _compact(structured, structured_client=structured_client)


def gone_result(output: OutputResult, request_id: str) -> CallToolResult:
    """An expired or deleted output read by id: REST's 410 body, plus the error's message."""
    error = gone_error(output)
    structured = {**gone_body(output, request_id), "message": error.message}
    text = f"{error.code}: {error.message} {_next(output.body)}"
    return CallToolResult(content=[TextContent(text=text)], structured_content=structured, is_error=True)


def error_result(error: StoreError, where: Where, request_id: str) -> CallToolResult:
    """A refused call: the REST error envelope, with its contract."""
    body = error_envelope(error, request_id=request_id, method=where.method, path=where.path)
    # Some hosts give the model only the text of an error result, so it carries what to do next.
    retry = "Retryable." if error.retryable else "Not retryable as sent."
    text = f"{error.code}: {error.message} {retry} {_next(body)}"
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


def upload_link_result(body: dict[str, Any], *, completed: bool) -> CallToolResult:
    """An upload link, or the output of one already used (a replay)."""
    if completed:
        return output_result(body, replayed=True)
    text = (
        f"Upload the file from your shell (no key; one upload, until {body['uploadExpiresAt']}): {body['curl']} "
        "It prints the output's JSON (outputId). Then use get_artifact or share."
    )
    return CallToolResult(content=[TextContent(text=text)], structured_content=body)


def share_result(body: dict[str, Any], *, structured_client: bool = True) -> CallToolResult:
    """``share``: the REST body with a compact contract (its one action is the link itself)."""
    structured = {**body, "agent_contract": compact_contract(body["agent_contract"])}
    return _compact(structured, structured_client=structured_client)


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
    wait = first.get("retry_after_seconds")
    after = f" after {wait} s" if wait is not None else ""
    if first["available"]:
        return f"Next: {first['action']} ({first['method']} {first['endpoint']}){after}."
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

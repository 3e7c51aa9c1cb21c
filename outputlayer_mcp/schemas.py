"""The shapes the MCP tools publish: argument types (their input schemas) and result models (their
``outputSchema``).

Results carry the REST resource fields (camelCase) and the ``agent_contract``. Every payload field
is optional and ``agent_contract`` is required, so an error result (``error``, ``message``,
``request_id``, ``agent_contract``) conforms to the same schema: some clients validate
``structuredContent`` even when ``isError`` is true.

Arguments whose REST counterparts have their own error codes (``mime_type``, ``metadata``) are
typed loosely and published with the real schema: the store validates them, so a wrong value gets
``invalid_mime_type`` / ``invalid_metadata`` exactly as over REST, not the SDK's generic refusal.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, WithJsonSchema

from store import (
    IDEMPOTENCY_KEY_MAX,
    INLINE_CONTENT_MAX_BYTES,
    LIST_MAX_LIMIT,
    SHARE_DEFAULT_SECONDS,
    SHARE_MIN_SECONDS,
    SUPPORTED_MIME_TYPES,
    AgentContract,
    OutputListItem,
    PageInfo,
)

# --- arguments -------------------------------------------------------------------------------
# Descriptions are short on purpose: the whole tools/list answer is an agent's standing cost (SPEC
# section 11 caps it at 8,000 characters). The REST OpenAPI document has the long form.

MIME_TYPES = ", ".join(SUPPORTED_MIME_TYPES)
MimeTypeArg = Annotated[
    Any,
    WithJsonSchema({"type": "string", "maxLength": 100}),
    Field(description=f"One of: {MIME_TYPES}."),
]
OptionalMimeTypeArg = Annotated[
    Any,
    WithJsonSchema({"type": "string", "maxLength": 100}),
    Field(description="As in create_upload_link; with path, guessed from the extension."),
]
MetadataArg = Annotated[
    Any,
    WithJsonSchema({"type": "object"}),
    Field(description="agentId, jobId, sourceSystem, tags (list), custom (object)."),
]
ContentBase64Arg = Annotated[str, Field(description="Small content, base64.")]
ContentTextArg = Annotated[str, Field(description="Small content, as text.")]
PathArg = Annotated[str, Field(description="A local file (stdio server only), any size.")]
LabelArg = Annotated[str, Field(description="File name for downloads.")]
PublicArg = Annotated[bool, Field(description="Also serve at a public URL (cannot be added later).")]
ExpiresAtArg = Annotated[
    str, Field(description="ISO 8601 with zone; default: the server's TTL.", json_schema_extra={"format": "date-time"})
]
IdempotencyKeyArg = Annotated[
    str,
    Field(description=f"Optional, up to {IDEMPOTENCY_KEY_MAX} ASCII chars; same key, same result."),
]
OutputIdArg = Annotated[str, Field(description="out_…")]
IncludeContentArg = Annotated[
    bool, Field(description=f"Inline the content when at most {INLINE_CONTENT_MAX_BYTES} bytes.")
]
ExpiresInSecondsArg = Annotated[
    int | None,
    Field(
        description=f"Private link lifetime, default {SHARE_DEFAULT_SECONDS}.",
        json_schema_extra={"minimum": SHARE_MIN_SECONDS},
    ),
]
SizeBytesArg = Annotated[
    int | None,
    Field(description="Exact size; other sizes are refused.", json_schema_extra={"minimum": 1}),
]
Sha256Arg = Annotated[str, Field(description="Hex SHA-256 the bytes must have.")]
LimitArg = Annotated[int, Field(json_schema_extra={"minimum": 1, "maximum": LIST_MAX_LIMIT})]
CursorArg = Annotated[str, Field(description="pageInfo.nextCursor")]
StatusArg = Annotated[str, Field(description="ready, failed, expired or deleted")]
MimeTypeFilterArg = Annotated[str, Field(description="Exact MIME type")]


# --- published schemas -----------------------------------------------------------------------

# The contract every result carries (SPEC section 2), as tools/list publishes it.
CONTRACT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [*AgentContract.model_fields],
    "properties": {"next_actions": {"type": "array", "items": {"required": ["action", "available", "recommended"]}}},
}


def published_input_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """An input schema without pydantic's generated titles (they repeat the names)."""
    properties = {
        name: {key: value for key, value in prop.items() if key != "title"}
        for name, prop in schema.get("properties", {}).items()
    }
    return {key: value for key, value in schema.items() if key != "title"} | {"properties": properties}


def published_output_schema() -> dict[str, Any]:
    """The compact form of a result model's schema: an object carrying the contract.

    The other fields are the REST resource's (camelCase; the OpenAPI document at /v1/schema has them
    in detail) and speak for themselves in every result; results are validated against the full
    models before they leave. Publishing each field here would cost every session thousands of
    characters of tools/list."""
    return {"type": "object", "required": ["agent_contract"], "properties": {"agent_contract": CONTRACT_SCHEMA}}


# --- results ---------------------------------------------------------------------------------


class ErrorFields(BaseModel):
    """Present on error results only (``isError: true``), with the same codes as REST."""

    error: str | None = Field(default=None, description="The error code, as in REST (SPEC section 3).")
    message: str | None = Field(default=None, description="One sentence for humans.")
    request_id: str | None = None


class ArtifactResult(ErrorFields):
    """An output as REST renders it (``POST``/``GET``/``DELETE /v1/outputs…``) plus its agent_contract."""

    outputId: str | None = None
    status: Literal["ready", "failed", "expired", "deleted"] | None = None
    label: str | None = None
    mimeType: str | None = None
    sizeBytes: int | None = None
    sha256: str | None = None
    createdAt: str | None = None
    expiresAt: str | None = None
    publicUrl: str | None = None
    contentUrl: str | None = None
    metadata: dict[str, Any] | None = None
    deletedAt: str | None = None
    resourceUri: str | None = Field(
        default=None,
        description="outputlayer://outputs/{outputId}: read it for the bytes (while content is accessible).",
    )
    replayed: bool | None = Field(
        default=None, description="save_artifact only: true when this was a replay of an earlier identical request."
    )
    downloadUrl: str | None = Field(
        default=None, description="Above the inline limit: a signed link that downloads the bytes without a key."
    )
    downloadExpiresAt: str | None = None
    agent_contract: AgentContract


class ArtifactList(ErrorFields):
    """One page of outputs, newest first, as ``GET /v1/outputs``."""

    outputs: list[OutputListItem] | None = None
    pageInfo: PageInfo | None = None
    agent_contract: AgentContract


class ShareResult(ErrorFields):
    """A link that serves the bytes without a key, as ``POST /v1/outputs/{id}/share``."""

    shareUrl: str | None = None
    shareExpiresAt: str | None = None
    agent_contract: AgentContract


class UploadLinkResult(ErrorFields):
    """A signed link to PUT a file to, without a key, as ``POST /v1/uploads``."""

    uploadId: str | None = None
    uploadUrl: str | None = None
    method: str | None = None
    uploadExpiresAt: str | None = None
    maxSizeBytes: int | None = None
    status: str | None = None
    curl: str | None = Field(default=None, description="Run this in your shell, with FILE replaced by the path.")
    outputId: str | None = Field(default=None, description="Set when the link was already used: its output.")
    agent_contract: AgentContract

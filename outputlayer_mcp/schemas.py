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

from store.capabilities import LIST_MAX_LIMIT
from store.direct import INLINE_CONTENT_MAX_BYTES
from store.schemas import AgentContract, Metadata, OutputListItem, PageInfo
from store.sharing import SHARE_DEFAULT_SECONDS, SHARE_MIN_SECONDS
from store.validation import IDEMPOTENCY_KEY_MAX, SUPPORTED_MIME_TYPES

# --- arguments -------------------------------------------------------------------------------

MimeTypeArg = Annotated[
    Any,
    WithJsonSchema({"type": "string", "maxLength": 100, "examples": list(SUPPORTED_MIME_TYPES)}),
    Field(description=f"MIME type of the content, one of: {', '.join(SUPPORTED_MIME_TYPES)}."),
]
MetadataArg = Annotated[
    Any,
    WithJsonSchema({**Metadata.model_json_schema(), "title": "Metadata"}),
    Field(
        description=(
            "Optional object: agentId, jobId, sourceSystem (strings up to 100 chars), tags (up to 10 strings "
            "up to 50 chars), custom (free-form object up to 4096 bytes). Other keys are refused."
        )
    ),
]
ContentBase64Arg = Annotated[
    str,
    Field(description="The artifact's bytes, base64-encoded. Send exactly one of content_base64, content_text, path."),
]
ContentTextArg = Annotated[
    str,
    Field(
        description="The artifact as text (stored as UTF-8). Send exactly one of content_base64, content_text, path."
    ),
]
PathArg = Annotated[
    str,
    Field(
        description=(
            "stdio server only: a local file inside the allowed roots (OUTPUTLAYER_MCP_ROOTS; relative paths start "
            "at the first root). Refused over HTTP."
        )
    ),
]
LabelArg = Annotated[str, Field(description="Human-readable name, used as the download filename (up to 200 chars).")]
PublicArg = Annotated[
    bool, Field(description="Serve the bytes at a public URL anyone can open, without a key. Cannot be added later.")
]
ExpiresAtArg = Annotated[
    str,
    Field(
        description=(
            "ISO 8601 date-time with a zone, in the future, at most the maximum TTL away; default: now plus the "
            "server's default TTL (see /v1/capabilities)."
        ),
        json_schema_extra={"format": "date-time"},
    ),
]
IdempotencyKeyArg = Annotated[
    str,
    Field(
        description=(
            f"Optional, 1 to {IDEMPOTENCY_KEY_MAX} printable ASCII chars. Without it the key is derived from the "
            "request itself, so repeating an identical call returns the first result without a second charge. "
            "Pass a new key to store the same content again as a new output."
        )
    ),
]
OutputIdArg = Annotated[str, Field(description="The outputId returned by save_artifact or list_artifacts.")]
IncludeContentArg = Annotated[
    bool,
    Field(
        description=(
            f"Also return the content inline when it is at most {INLINE_CONTENT_MAX_BYTES} bytes: text for text "
            "types, an image for images, an embedded resource otherwise."
        )
    ),
]
ExpiresInSecondsArg = Annotated[
    int | None,
    Field(
        description=(
            f"Lifetime of a private output's share link in seconds (at least {SHARE_MIN_SECONDS}, default "
            f"{SHARE_DEFAULT_SECONDS}); "
            "the link never outlives the output. Ignored for public outputs, whose publicUrl is returned."
        ),
        json_schema_extra={"minimum": SHARE_MIN_SECONDS},
    ),
]
SizeBytesArg = Annotated[
    int | None,
    Field(description="Optional exact size of the file; other sizes are refused.", json_schema_extra={"minimum": 1}),
]
Sha256Arg = Annotated[str, Field(description="Optional hex SHA-256 the bytes must have.")]
LimitArg = Annotated[
    int,
    Field(
        description=f"Page size, 1 to {LIST_MAX_LIMIT}.", json_schema_extra={"minimum": 1, "maximum": LIST_MAX_LIMIT}
    ),
]
CursorArg = Annotated[str, Field(description="pageInfo.nextCursor of the previous page, unchanged.")]
StatusArg = Annotated[str, Field(description="Only outputs in this status: ready, failed, expired or deleted.")]
MimeTypeFilterArg = Annotated[str, Field(description="Only outputs of exactly this MIME type.")]


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

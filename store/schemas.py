"""Wire models: the request shapes the server validates with, and the response shapes it documents.

The request models here *are* the validators (``CreateOutput`` for JSON uploads, ``OutputFields``
for the text fields of a multipart upload or an MCP call), and the OpenAPI document is generated
from these same classes, so the published schema cannot drift from what the server accepts.
Response models describe what :mod:`store.views` renders; a test validates real responses
against them.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, field_validator

from store.limits import SHARE_MIN_SECONDS

# Plain base64 as the document publishes it (padded, whole 4-character groups); what the server
# also accepts (line breaks, data: URIs) is described in words next to it.
BASE64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$"
# What the label validator below allows, for the published schema: no character of category Cc.
LABEL_PATTERN = r"^[^\u0000-\u001f\u007f-\u009f]*$"
# A listing cursor: unpadded base64url (the service's encoding of an output id).
CURSOR_PATTERN = r"^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?$"
CUSTOM_MAX_BYTES = 4096
CUSTOM_MAX_DEPTH = 3
CUSTOM_MAX_KEYS = 50

MetadataText = Annotated[str, StringConstraints(max_length=100)]
Tag = Annotated[str, StringConstraints(max_length=50)]


def _integral(value: Any) -> Any:
    """JSON Schema counts 3600.0 as an integer (SPEC section 15), so strict models take it as 3600."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


WholeNumber = Annotated[int, BeforeValidator(_integral)]
PositiveWholeNumber = Annotated[int, Field(ge=1), BeforeValidator(_integral)]
ShareSeconds = WholeNumber


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Metadata(_Strict):
    """Agent-provided metadata; only these keys are accepted."""

    agentId: MetadataText | None = None
    jobId: MetadataText | None = None
    sourceSystem: MetadataText | None = None
    tags: Annotated[list[Tag], Field(max_length=10)] | None = None
    custom: dict[str, Any] | None = Field(
        default=None,
        description=(
            f"Free-form object: at most {CUSTOM_MAX_BYTES} bytes as compact JSON, "
            f"nesting depth at most {CUSTOM_MAX_DEPTH}, at most {CUSTOM_MAX_KEYS} keys in all."
        ),
    )

    @field_validator("custom")
    @classmethod
    def _bounded_custom(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        encoded = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        if len(encoded) > CUSTOM_MAX_BYTES:
            raise ValueError(f"custom is {len(encoded)} bytes as compact JSON; the limit is {CUSTOM_MAX_BYTES}")
        depth, keys = _shape(value)
        if depth > CUSTOM_MAX_DEPTH:
            raise ValueError(f"custom is nested {depth} levels deep; the limit is {CUSTOM_MAX_DEPTH}")
        if keys > CUSTOM_MAX_KEYS:
            raise ValueError(f"custom has {keys} keys in all; the limit is {CUSTOM_MAX_KEYS}")
        return value


def _shape(value: Any) -> tuple[int, int]:
    """(nesting depth of objects and arrays, number of object keys at every level)."""
    if isinstance(value, dict):
        inner = [_shape(v) for v in value.values()]
        return 1 + max((d for d, _ in inner), default=0), len(value) + sum(k for _, k in inner)
    if isinstance(value, list):
        inner = [_shape(v) for v in value]
        return 1 + max((d for d, _ in inner), default=0), sum(k for _, k in inner)
    return 0, 0


class OutputFields(_Strict):
    """Everything about an upload except its bytes."""

    mimeType: str = Field(max_length=100, description="One of the supported MIME types; parameters are ignored.")
    label: str | None = Field(
        default=None,
        max_length=200,
        description="Human-readable name, used as filename; no control characters.",
        json_schema_extra={"pattern": LABEL_PATTERN},
    )
    expiresAt: str | None = Field(
        default=None,
        description="ISO 8601 date-time with a zone, in the future, at most the maximum TTL away.",
        json_schema_extra={"format": "date-time"},
    )
    public: bool = Field(default=False, description="Serve the bytes at a public URL without a key.")
    metadata: Metadata | None = None

    @field_validator("label")
    @classmethod
    def _printable_label(cls, value: str | None) -> str | None:
        if value is not None and any(unicodedata.category(c) == "Cc" for c in value):
            raise ValueError("label must not contain control characters")
        return value


class CreateOutput(OutputFields):
    """A JSON upload: the fields plus the content as base64 (whole body at most 1 MiB)."""

    content: str = Field(
        min_length=1,
        description="The artifact's bytes, base64-encoded. Also accepted: the same wrapped in lines (as "
        "`base64 FILE` prints) or as a data:<mime>;base64, URI.",
        json_schema_extra={"contentEncoding": "base64", "pattern": BASE64_PATTERN},
    )


class CreateUpload(OutputFields):
    """``POST /v1/uploads``: an upload's fields without its bytes, which go to the signed link it returns."""

    sizeBytes: PositiveWholeNumber | None = Field(
        default=None, description="The exact size the upload will have; checked before and after the bytes."
    )
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$")] | None = Field(
        default=None, description="Hex SHA-256 the bytes must have; other bytes are refused and nothing is kept."
    )


class RegisterKey(_Strict):
    email: Annotated[str, StringConstraints(max_length=254)] | None = Field(
        default=None, description="Optional contact address; not verified."
    )


class CreateShareLink(_Strict):
    # The lower bound is enforced by the share rule (store.sharing), the same for every door; it is
    # only published here.
    expiresInSeconds: ShareSeconds | None = Field(
        default=None,
        description="Lifetime of the link; capped at the output's own expiry.",
        json_schema_extra={"minimum": SHARE_MIN_SECONDS},
    )


class Checkout(_Strict):
    packId: Literal["basic", "pro", "agency"]


# --- responses (documentation and response tests) ---------------------------------------------


class NextAction(BaseModel):
    action: str
    available: bool
    recommended: bool
    description: str | None = None
    method: str | None = None
    endpoint: str | None = None
    retry_after_seconds: int | None = None
    reason: str | None = None
    required_body_changes: dict[str, Any] | None = None


class AgentContract(BaseModel):
    version: Literal["1"]
    content_accessible: bool
    safe_to_share: bool
    retryable: bool
    expires_in_seconds: int | None
    next_actions: list[NextAction]


class ErrorEnvelope(BaseModel):
    error: str
    message: str
    request_id: str
    outputId: str | None = Field(
        default=None, description="On upload_failed: the failed output the upload left, readable by id."
    )
    agent_contract: AgentContract


class OutputListItem(BaseModel):
    """An output as listed: the resource's fields, without a per-item contract."""

    outputId: str
    status: Literal["ready", "failed", "expired", "deleted"]
    label: str | None
    mimeType: str
    sizeBytes: int
    sha256: str | None
    createdAt: str
    expiresAt: str
    publicUrl: str | None
    contentUrl: str | None
    metadata: dict[str, Any]
    deletedAt: str | None = None


class OutputResource(OutputListItem):
    agent_contract: AgentContract


class PageInfo(BaseModel):
    nextCursor: str | None
    hasMore: bool


class OutputList(BaseModel):
    outputs: list[OutputListItem]
    pageInfo: PageInfo
    agent_contract: AgentContract


class Registered(BaseModel):
    apiKey: str
    accountId: str
    agent_contract: AgentContract


class Balance(BaseModel):
    accountId: str
    planTier: str
    freeRemaining: int
    creditsRemaining: int
    storageUsedBytes: int
    storageLimitBytes: int
    agent_contract: AgentContract


class ShareLink(BaseModel):
    shareUrl: str
    shareExpiresAt: str
    agent_contract: AgentContract


class UploadLink(BaseModel):
    """A signed, single-use link to PUT an artifact's bytes to, without the API key."""

    uploadId: str
    uploadUrl: str
    method: Literal["PUT"]
    uploadExpiresAt: str
    maxSizeBytes: int
    status: Literal["pending"]
    curl: str = Field(description="A shell command that uploads a file to the link.")
    agent_contract: AgentContract


class UploadStatus(BaseModel):
    uploadId: str
    status: Literal["pending", "completed", "expired"]
    outputId: str | None
    uploadExpiresAt: str
    uploadUrl: str | None = Field(default=None, description="The link, while it is pending.")
    agent_contract: AgentContract

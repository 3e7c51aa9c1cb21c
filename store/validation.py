"""Upload validation: turning raw fields (from JSON, multipart or MCP) into checked values, and the fingerprint.

Every rule of SPEC section 5 is here once; the codes it raises are the ones REST and MCP both show.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from store.clock import parse_iso
from store.errors import StoreError
from store.jsonbounds import parse_json
from store.schemas import OutputFields

SUPPORTED_MIME_TYPES = (
    "application/json",
    "application/octet-stream",
    "application/pdf",
    "application/xml",
    "application/zip",
    "image/gif",
    "image/jpeg",
    "image/png",
    "image/webp",
    "text/csv",
    "text/html",
    "text/plain",
)
IDEMPOTENCY_KEY_MAX = 255
# A metadata document is a few KiB at most (custom is limited to 4096 bytes); anything far larger is refused unparsed.
METADATA_FIELD_BYTES = 65_536
FORM_FIELDS = ("mimeType", "label", "expiresAt", "public", "metadata")

# Which error code a failure of each field maps to; a missing required field is invalid_request.
_FIELD_CODES = {"mimeType": "invalid_mime_type", "expiresAt": "invalid_expiry", "metadata": "invalid_metadata"}
# When several fields are wrong, the first in this order is reported.
_FIELD_ORDER = ("mimeType", "content", "label", "expiresAt", "public", "metadata")


@dataclass(frozen=True, slots=True)
class CheckedFields:
    mime_type: str
    label: str | None
    expires_at_raw: str | None
    expires_at_ms: int
    public: bool
    metadata: dict[str, Any]


def check_idempotency_key(value: str | None) -> str:
    if value is None or value == "":
        raise StoreError("missing_idempotency_key", "The Idempotency-Key header is required on POST /v1/outputs.")
    if len(value) > IDEMPOTENCY_KEY_MAX or any(not 0x20 <= ord(c) <= 0x7E for c in value):
        raise StoreError(
            "invalid_request",
            f"The Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX} printable ASCII characters.",
        )
    return value


def normalise_mime_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def parse_form_field(name: str, value: str) -> Any:
    """The typed value of a multipart text field (``public`` is "true"/"false", ``metadata`` JSON)."""
    if name == "public":
        if value not in ("true", "false"):
            raise StoreError("invalid_request", 'The public field must be "true" or "false".')
        return value == "true"
    if name == "metadata":
        return parse_json(value, max_bytes=METADATA_FIELD_BYTES, what="The metadata field", code="invalid_metadata")
    return value


def store_error_from_validation(exc: ValidationError, *, partial: bool = False) -> StoreError | None:
    """The store error for the most important failure, or None when ``partial`` and only fields are missing."""
    failures = [e for e in exc.errors() if not (partial and e["type"] == "missing" and len(e["loc"]) == 1)]
    if not failures:
        return None

    def rank(error: Any) -> int:
        field = str(error["loc"][0]) if error["loc"] else ""
        return _FIELD_ORDER.index(field) if field in _FIELD_ORDER else len(_FIELD_ORDER)

    error = min(failures, key=rank)
    loc = [str(part) for part in error["loc"]]
    field = loc[0] if loc else ""
    if error["type"] == "missing" and len(loc) == 1:
        return StoreError("invalid_request", f"The {field} field is required.")
    if error["type"] == "extra_forbidden" and len(loc) == 1:
        return StoreError("invalid_request", f"Unknown field {field!r}; see /v1/capabilities for the accepted fields.")
    if field == "metadata" and error["type"] in ("model_type", "dict_type"):
        return StoreError("invalid_metadata", "The metadata field must be a JSON object.")
    code = _FIELD_CODES.get(field, "invalid_request")
    where = ".".join(loc) or "body"
    detail = str(error["msg"]).removeprefix("Value error, ")
    return StoreError(code, f"Invalid {where}: {detail}.")


RequestModel = TypeVar("RequestModel", bound=BaseModel)


def parse_request(model: type[RequestModel], document: Any, fallback: str) -> RequestModel:
    """A request document (``None`` for an empty body, read as ``{}``) as ``model``; a document the
    model refuses is the store error of its most important failure, else ``invalid_request(fallback)``."""
    try:
        return model.model_validate(document if document is not None else {})
    except ValidationError as exc:
        raise (store_error_from_validation(exc) or StoreError("invalid_request", fallback)) from None


def validate_fields(
    raw: dict[str, Any], *, now_ms: int, default_ttl_seconds: int, max_ttl_seconds: int, partial: bool = False
) -> CheckedFields | None:
    """Check the fields of an upload; with ``partial`` missing fields are tolerated and None is returned."""
    try:
        fields = OutputFields.model_validate(raw)
    except ValidationError as exc:
        error = store_error_from_validation(exc, partial=partial)
        if error is not None:
            raise error from None
        fields = None
    mime_raw = raw.get("mimeType")
    if isinstance(mime_raw, str):
        check_mime_type(mime_raw)
    expires_raw = raw.get("expiresAt")
    expires_ms = (
        check_expiry(expires_raw, now_ms, max_ttl_seconds)
        if isinstance(expires_raw, str)
        else now_ms + default_ttl_seconds * 1000
    )
    if fields is None:
        return None
    metadata = fields.metadata.model_dump(exclude_none=True) if fields.metadata is not None else {}
    return CheckedFields(
        mime_type=normalise_mime_type(fields.mimeType),
        label=fields.label or None,
        expires_at_raw=fields.expiresAt,
        expires_at_ms=expires_ms,
        public=fields.public,
        metadata=metadata,
    )


def check_mime_type(value: str) -> str:
    normalised = normalise_mime_type(value)
    if normalised not in SUPPORTED_MIME_TYPES:
        raise StoreError(
            "invalid_mime_type",
            f"MIME type {normalised!r} is not supported; see supported_mime_types in /v1/capabilities.",
        )
    return normalised


def check_expiry(value: str, now_ms: int, max_ttl_seconds: int) -> int:
    expires_ms = parse_iso(value)
    if expires_ms is None:
        raise StoreError("invalid_expiry", "expiresAt must be an ISO 8601 date-time with a time zone.")
    if expires_ms <= now_ms:
        raise StoreError("invalid_expiry", "expiresAt must be in the future.")
    if expires_ms > now_ms + max_ttl_seconds * 1000:
        raise StoreError("invalid_expiry", f"expiresAt must be at most {max_ttl_seconds} seconds from now.")
    return expires_ms


def fingerprint(fields: CheckedFields, content_sha256: str) -> str:
    """SHA-256 of the canonical request: same artifact, same fingerprint, whichever wire shape carried it."""
    canonical = json.dumps(
        {
            "mimeType": fields.mime_type,
            "label": fields.label,
            "public": fields.public,
            "expiresAt": fields.expires_at_raw,
            "metadata": fields.metadata,
            "sha256": content_sha256,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()

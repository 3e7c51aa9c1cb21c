"""Schemathesis hooks for the fuzz run: drop generated upload bodies that break a rule JSON Schema
cannot state (``expiresAt`` in the future and within the maximum lifetime; the shape limits of
``metadata.custom``; a declared ``sizeBytes`` over the upload limit;
a multipart ``metadata`` text that is a valid document), so a "schema-valid"
upload really is one. The rules are the store's own,
called here, not restated.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis
from pydantic import ValidationError

from store import Settings, StoreError
from store.clock import SystemClock
from store.schemas import Metadata
from store.validation import validate_fields

DEFAULTS = Settings()
# The routes whose bodies carry an upload's fields.
UPLOADS = {("POST", "/v1/outputs"), ("POST", "/v1/uploads")}


@schemathesis.hook
def filter_body(context: Any, body: Any) -> bool:
    operation = context.operation
    if operation is None or (operation.method.upper(), operation.path) not in UPLOADS:
        return True
    if not isinstance(body, dict):
        return True
    return (
        _expiry_is_possible(body.get("expiresAt"))
        and _custom_fits(body.get("metadata"))
        and _size_fits(body.get("sizeBytes"))
    )


def _size_fits(size: Any) -> bool:
    """False for a declared size over the account's upload limit (it depends on the plan, so the
    document states it in words and in /v1/capabilities, not as a schema maximum)."""
    return not isinstance(size, int | float) or size <= DEFAULTS.max_upload_bytes


def _expiry_is_possible(expires_at: Any) -> bool:
    """False for a well-formed expiresAt the store refuses as past or too far (a draw the schema allows)."""
    if not isinstance(expires_at, str):
        return True
    try:
        validate_fields(
            {"mimeType": "text/plain", "expiresAt": expires_at},
            now_ms=SystemClock().now_ms() + 60_000,  # a minute of margin for the request to arrive
            default_ttl_seconds=DEFAULTS.default_ttl_seconds,
            max_ttl_seconds=DEFAULTS.max_ttl_seconds - 60,
        )
    except StoreError as error:
        return error.code != "invalid_expiry"
    return True


def _custom_fits(metadata: Any) -> bool:
    """False for metadata the store refuses beyond what the schema says: a custom object over its size,
    depth or key limits, or (multipart) a text field that is not a valid metadata document at all,
    which contentSchema describes but no validator checks."""
    if isinstance(metadata, str):
        try:
            Metadata.model_validate(json.loads(metadata))
        except (ValueError, ValidationError):
            return not metadata.strip()  # an empty field counts as absent
        return True
    if not isinstance(metadata, dict) or not isinstance(metadata.get("custom"), dict):
        return True
    try:
        Metadata.model_validate({"custom": metadata["custom"]})
    except ValidationError:
        return False
    return True

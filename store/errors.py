"""Errors: the one hierarchy every failure a client can see is expressed in.

    StoreError                 code, HTTP status, retryable, human message
    ├── (codes of SPEC section 3: validation 400s, auth 401s, quota 402s, 404s, 409, 410s,
    │    upload_failed 422, rate_limited 429, server_error 500, idempotency_in_flight 503)
    └── additions of this project: not_found 404, wrong_method 405, range_not_satisfiable 416,
        service_unavailable 503 (a backend is down), billing_disabled 503

REST renders a StoreError with one handler and MCP with one function; both take the status and
retryability from the table below, so a code means the same thing at every door. Third-party
exceptions are translated into ``service_unavailable`` at the store's edge (see ``db`` and
``blobs``), never shown to a client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ErrorKind:
    status: int
    retryable: bool
    retry_after: int | None = None


ERROR_KINDS: dict[str, ErrorKind] = {
    "missing_idempotency_key": ErrorKind(400, False),
    "invalid_mime_type": ErrorKind(400, False),
    "payload_too_large": ErrorKind(400, False),
    "invalid_metadata": ErrorKind(400, False),
    "invalid_expiry": ErrorKind(400, False),
    "invalid_request": ErrorKind(400, False),
    "missing_api_key": ErrorKind(401, False),
    "invalid_api_key": ErrorKind(401, False),
    "quota_exhausted": ErrorKind(402, False),
    "storage_limit_reached": ErrorKind(402, False),
    "output_not_found": ErrorKind(404, False),
    "purchase_not_found": ErrorKind(404, False),
    "not_found": ErrorKind(404, False),
    "wrong_method": ErrorKind(405, False),
    "idempotency_conflict": ErrorKind(409, False),
    "output_expired": ErrorKind(410, False),
    "output_deleted": ErrorKind(410, False),
    "range_not_satisfiable": ErrorKind(416, False),
    "upload_failed": ErrorKind(422, True),
    "rate_limited": ErrorKind(429, True),
    "server_error": ErrorKind(500, True, 30),
    "idempotency_in_flight": ErrorKind(503, True, 5),
    "service_unavailable": ErrorKind(503, True, 5),
    "billing_disabled": ErrorKind(503, False, 3600),
}


class StoreError(Exception):
    """A failure with a stable code; ``retry_after`` overrides the code's default wait."""

    def __init__(self, code: str, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        kind = ERROR_KINDS[code]
        self.code = code
        self.message = message
        self.status = kind.status
        self.retryable = kind.retryable
        self.retry_after = retry_after if retry_after is not None else kind.retry_after
        self.headers: dict[str, str] = {}
        # Additive fields of the error body (e.g. the outputId a failed upload left behind).
        self.fields: dict[str, Any] = {}


def missing_api_key() -> StoreError:
    return StoreError("missing_api_key", "Send your API key as Authorization: Bearer <key>.")


def invalid_request(message: str) -> StoreError:
    return StoreError("invalid_request", message)


def output_not_found() -> StoreError:
    return StoreError("output_not_found", "No output with this id exists for this API key.")


def idempotency_conflict() -> StoreError:
    return StoreError(
        "idempotency_conflict",
        "This Idempotency-Key was already used with a different payload. Generate a new key and retry.",
    )


def output_expired() -> StoreError:
    return StoreError("output_expired", "This output has expired and its content is no longer available.")


def output_deleted() -> StoreError:
    return StoreError("output_deleted", "This output was deleted and its content is no longer available.")


def upload_not_completed() -> StoreError:
    """The content of a ``failed`` output: its upload never completed."""
    return StoreError(
        "upload_failed",
        "The content for this output was not successfully uploaded. Retry with the same Idempotency-Key.",
    )


def service_unavailable(what: str) -> StoreError:
    return StoreError("service_unavailable", f"The {what} is temporarily unavailable. Retry shortly.")

"""What a refused request and a gone output answer, rendered alike by REST and MCP.

The error envelope (SPEC section 1: code, message, request id, additive fields, the error's contract
pointing at the request that failed) and the 410 answer of an expired or deleted output read by id
(the output itself plus ``error`` and ``request_id``) are built here once; each door only adds its
transport (an HTTP status and headers, or a tool result).
"""

from __future__ import annotations

from typing import Any

from store.contract import error_contract
from store.errors import StoreError, output_deleted, output_expired
from store.outputs import OutputResult


def error_envelope(error: StoreError, *, request_id: str, method: str, path: str) -> dict[str, Any]:
    """The error body of ``error`` for the request ``method path``."""
    return {
        "error": error.code,
        "message": error.message,
        "request_id": request_id,
        **error.fields,
        "agent_contract": error_contract(
            error.code, method=method, path=path, retry_after=error.retry_after, retryable=error.retryable
        ),
    }


def gone_error(result: OutputResult) -> StoreError:
    """The error an expired or deleted output answers with when read by id."""
    return output_expired() if result.status == "expired" else output_deleted()


def gone_body(result: OutputResult, request_id: str) -> dict[str, Any]:
    """The 410 body of a gone output: the output object, plus ``error`` and ``request_id`` (additive)."""
    return {**result.body, "error": gone_error(result).code, "request_id": request_id}

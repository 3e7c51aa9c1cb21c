"""Error rendering: the one place a StoreError becomes an HTTP response (SPEC section 3 envelope)."""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request

from rest.responses import JSONResponse
from store import StoreError, error_envelope

log = logging.getLogger("outputlayer.rest")


def error_response(error: StoreError, request: Request, request_id: str) -> JSONResponse:
    response = JSONResponse(error_body(error, request, request_id), status_code=error.status, headers=error.headers)
    response.headers.update(retry_after_header(error))
    return response


def retry_after_header(error: StoreError) -> dict[str, str]:
    """``Retry-After`` for the answers that invite a later retry (429, 500, 503) and carry a wait."""
    if error.retry_after is not None and error.status in (429, 500, 503):
        return {"Retry-After": str(error.retry_after)}
    return {}


def error_body(error: StoreError, request: Request, request_id: str) -> dict[str, Any]:
    """The SPEC section 1 error envelope of ``error`` for ``request``."""
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return error_envelope(error, request_id=request_id, method=request.method, path=path)


def unexpected_error(exc: BaseException, request: Request, request_id: str) -> JSONResponse:
    log.error("unhandled error on %s %s (%s)", request.method, request.url.path, request_id, exc_info=exc)
    error = StoreError("server_error", "An unexpected error occurred. Retry after 30 seconds.")
    return error_response(error, request, request_id)

"""The Starlette application: routes, the lifespan that owns the service and the sweeper, and the
404/405 answers for paths and methods the API does not have.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from rest.endpoint import Call, decorate, refuse_key_in_query
from rest.errors import error_response
from rest.routes.accounts import account_routes
from rest.routes.discovery import discovery_routes
from rest.routes.outputs import output_routes
from rest.routes.public import public_routes
from store import ArtifactService, Settings, StoreError, open_service

log = logging.getLogger("outputlayer.rest")


def create_app(settings: Settings, *, service: ArtifactService | None = None, sweeper: bool = True) -> Starlette:
    """The REST application. An injected ``service`` is used as is (and not closed); otherwise the
    lifespan opens one from ``settings`` and closes it at shutdown."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        owned = service is None
        active = service if service is not None else await anyio.to_thread.run_sync(open_service, settings)
        try:
            async with anyio.create_task_group() as tasks:
                if sweeper:
                    tasks.start_soon(run_sweeper, active, settings.sweep_interval_seconds)
                yield {"service": active}
                tasks.cancel_scope.cancel()
        finally:
            if owned:
                active.close()

    routes: list[BaseRoute] = [
        *output_routes(),
        *account_routes(),
        *public_routes(),
        *discovery_routes(),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_exception},
    )


async def http_exception(request: Request, exc: Exception) -> Response:
    """Unknown paths and wrong methods, in the API's own error shape."""
    assert isinstance(exc, HTTPException)
    service: ArtifactService = request.state.service
    call = Call(request, service, service.ids.new("req"))
    try:
        refuse_key_in_query(request)
        if exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            error = StoreError(
                "wrong_method", f"{request.method} is not allowed on {request.url.path}; use {allowed or 'another'}."
            )
        else:
            error = StoreError("not_found", f"There is no route {request.url.path}; see /v1/capabilities.")
    except StoreError as refused:
        error = refused
    response = error_response(error, request, call.request_id)
    if exc.status_code == 405 and exc.headers:
        response.headers["Allow"] = exc.headers.get("Allow", "")
    decorate(response, call)
    return response


async def run_sweeper(service: ArtifactService, interval_seconds: int) -> None:
    """Expire, clean and prune every ``interval_seconds``; a failed pass is logged and retried next time."""
    while True:
        await anyio.sleep(interval_seconds)
        try:
            report = await service.sweep()
        except StoreError as exc:
            log.warning("sweep skipped: %s", exc.message)
            continue
        except Exception:  # the sweeper must outlive any single bad pass
            log.exception("sweep failed")
            continue
        if report.expired or report.stale_slots or report.blobs_deleted:
            log.info(
                "sweep expired=%d blobs_deleted=%d stale_slots=%d",
                report.expired,
                report.blobs_deleted,
                report.stale_slots,
            )

"""The Starlette application: routes, the lifespan that owns the service, the sweeper and the MCP
endpoint, and the 404/405 answers for paths and methods the API does not have.

``/mcp`` is the MCP server (:mod:`outputlayer_mcp`) over Streamable HTTP, built over the same
service in the lifespan. Its requests pass the same Bearer-key check as every REST route (a missing
or bad key is the API's 401 envelope); the MCP server then acts for that key's account.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Message, Receive, Scope, Send

from outputlayer_mcp import MCP_PATH, bind_account, build_mcp_server
from outputlayer_mcp.http import MCP_METHODS, McpHttp
from rest.endpoint import Call, bearer_token, decorate, refuse_key_in_query, single_header
from rest.errors import error_response, unexpected_error
from rest.mcp_guard import guarded_mcp
from rest.pages import Pages, page_routes
from rest.routes.accounts import account_routes
from rest.routes.discovery import discovery_routes
from rest.routes.outputs import output_routes
from rest.routes.public import public_routes
from rest.routes.upload_links import upload_link_routes
from store import ArtifactService, Settings, StoreError, open_service, run_sweeper

__all__ = ["create_app", "run_sweeper"]

log = logging.getLogger("outputlayer.rest")


def create_app(settings: Settings, *, service: ArtifactService | None = None, sweeper: bool = True) -> Starlette:
    """The REST application. An injected ``service`` is used as is (and not closed); otherwise the
    lifespan opens one from ``settings`` and closes it at shutdown."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        owned = service is None
        active = service if service is not None else await anyio.to_thread.run_sync(open_service, settings)
        try:
            # A fresh MCP server per lifespan: the SDK's session manager runs only once.
            mcp = McpHttp(build_mcp_server(active), settings)
            async with mcp.running(), anyio.create_task_group() as tasks:
                if sweeper:
                    tasks.start_soon(run_sweeper, active, settings.sweep_interval_seconds)
                yield {"service": active, "mcp": mcp}
                tasks.cancel_scope.cancel()
        finally:
            if owned:
                await active.aclose()

    pages = Pages(settings)
    routes: list[BaseRoute] = [
        *output_routes(),
        *account_routes(),
        *public_routes(pages),
        *page_routes(pages),
        *upload_link_routes(),
        *discovery_routes(),
        Route(MCP_PATH, McpEndpoint(), methods=list(MCP_METHODS)),
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


class McpEndpoint:
    """``/mcp``: the Bearer key is checked here on every request, exactly as on the REST routes, and its
    account is bound to the request for the MCP server to act for."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        service: ArtifactService = request.state.service
        call = Call(request, service, service.ids.new("req"))
        try:
            refuse_key_in_query(request)
            call.account = await service.authenticate(bearer_token(single_header(request, "Authorization")))
        except StoreError as exc:
            response = error_response(exc, request, call.request_id)
            if exc.status == 401:
                # How MCP clients learn that this endpoint wants a Bearer token.
                response.headers["WWW-Authenticate"] = 'Bearer realm="outputlayer"'
            decorate(response, call)
            await response(scope, receive, send)
            return
        except Exception as exc:  # top-level boundary, as in every REST endpoint
            response = unexpected_error(exc, request, call.request_id)
            decorate(response, call)
            await response(scope, receive, send)
            return
        bind_account(scope, call.owner)
        mcp: McpHttp = request.state.mcp
        request_id = call.request_id.encode()

        async def send_with_request_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id)]}
            await send(message)

        max_bytes = service.settings.effective_mcp_max_request_bytes
        try:
            await guarded_mcp(mcp, request, call.request_id, max_bytes, send_with_request_id)
        except ClientDisconnect:
            # As on the REST routes: a client that left is one line in the log, not a traceback.
            log.warning("client disconnected during %s %s (%s)", request.method, request.url.path, call.request_id)

"""The links of a process that is not the API server: ``outputlayer mcp`` without
``OUTPUTLAYER_BASE_URL`` serves the URLs it hands out itself, on 127.0.0.1 (SPEC section 11), so a
person or the agent's shell on the same machine can open them while it runs.

Served: public links, share links, upload links (the keyless PUT), and the authenticated output
routes a ``contentUrl`` points at. Not served: registration, billing, discovery and ``/mcp`` (the
process speaks MCP over stdio). The routes are the API's own, over the same service.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import AsyncIterator

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from rest.app import http_exception
from rest.pages import Pages, page_routes
from rest.routes.outputs import output_routes
from rest.routes.public import public_routes
from rest.routes.upload_links import upload_link_routes
from store import ArtifactService

LOOPBACK = "127.0.0.1"

log = logging.getLogger("outputlayer.links")


def bind_loopback() -> socket.socket:
    """A listening socket on a free loopback port (bound now, so the URL is known before serving)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, 0))
    sock.listen(128)
    return sock


def link_app(service: ArtifactService) -> ASGIApp:
    pages = Pages(service.settings)
    app = Starlette(
        routes=[*output_routes(), *public_routes(pages), *page_routes(pages), *upload_link_routes()],
        exception_handlers={HTTPException: http_exception},
    )

    async def with_service(scope: Scope, receive: Receive, send: Send) -> None:
        await app({**scope, "state": {"service": service}}, receive, send)

    return with_service


@contextlib.asynccontextmanager
async def links_served(service: ArtifactService, sock: socket.socket) -> AsyncIterator[None]:
    """Serve the link routes on ``sock`` for the duration of the block, then stop gracefully."""
    config = uvicorn.Config(link_app(service), lifespan="off", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    host, port = sock.getsockname()[:2]
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(server.serve, [sock])
        log.info("serving links on http://%s:%d", host, port)
        try:
            yield
        finally:
            server.should_exit = True

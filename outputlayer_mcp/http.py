"""The Streamable HTTP transport of the MCP server, configured from :class:`Settings`, for the REST app
to mount at ``/mcp`` (authentication is the REST app's: it checks the Bearer key and binds the
account before a request reaches :meth:`McpHttp.__call__`).

Decisions:

- **Stateless, JSON responses.** Every POST is self-contained: no session lives in one process's
  memory, so ``outputlayer serve --workers N`` and several replicas behind a proxy answer any
  request (a 2025-era client gets no ``Mcp-Session-Id`` and needs none; 2026-07-28 clients have no
  sessions at all). The tools send nothing unprompted (no progress, no sampling), so nothing is lost,
  and JSON answers are not subject to the 1 MiB SSE event limit some clients apply. ``GET`` (a
  server-to-client stream this server never uses) and ``DELETE`` (ending a session it never made)
  are answered 405, as the MCP specification allows.
- **Host and Origin checks** (DNS-rebinding protection) with the hosts and origins of the settings;
  by default the base URL's host and the local names, so the server works behind a proxy that
  forwards either. ``OUTPUTLAYER_MCP_ALLOWED_HOSTS=*`` turns the checks off.
- **Request body limit** large enough for the largest upload as base64 (SDK default: 4 MiB).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import Receive, Scope, Send

from outputlayer_mcp.card import McpDescription, describe
from outputlayer_mcp.server import MCP_PATH, OutputLayerMCP
from store import Settings

MCP_METHODS = ("POST",)


def transport_security(settings: Settings) -> TransportSecuritySettings:
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=settings.mcp_dns_rebinding_protection,
        allowed_hosts=list(settings.effective_mcp_allowed_hosts),
        allowed_origins=list(settings.effective_mcp_allowed_origins),
    )


class McpHttp:
    """One server's HTTP endpoint; enter :meth:`running` in the host app's lifespan (once: the SDK's
    session manager runs only once, so each app lifespan builds a fresh ``McpHttp``)."""

    def __init__(self, server: OutputLayerMCP, settings: Settings) -> None:
        self.server = server
        server.streamable_http_app(
            streamable_http_path=MCP_PATH,
            stateless_http=True,
            json_response=True,
            max_request_body_size=settings.effective_mcp_max_request_bytes,
            transport_security=transport_security(settings),
        )
        self._app = StreamableHTTPASGIApp(server.session_manager)
        self._description: McpDescription | None = None

    async def description(self) -> McpDescription:
        """The server's tool list and templates (fixed for its life, so asked once)."""
        if self._description is None:
            self._description = await describe(self.server)
        return self._description

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with self.server.session_manager.run():
            yield

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)

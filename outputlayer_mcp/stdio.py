"""``outputlayer mcp``: the MCP server over stdio, for one account (SPEC section 11).

It acts for the account of ``OUTPUTLAYER_API_KEY`` or, without one, for the data directory's local
account (created on first run; see :mod:`store.local`), reads local files only from the allowed
roots, and runs the expiry sweeper like ``outputlayer serve`` does, so the storage of expired
artifacts comes back to the account even when no HTTP server shares the database. stdout is the
protocol's wire: everything else goes to the log (stderr).

The links it hands out are absolute: they point at ``OUTPUTLAYER_BASE_URL`` when set (a server on
the same data), else at the link routes the caller serves for the duration (``links``; the command
line serves them on 127.0.0.1, see :mod:`rest.link_server`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import anyio
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage

from outputlayer_mcp.results import Where
from outputlayer_mcp.server import OutputLayerMCP, build_mcp_server
from outputlayer_mcp.wire import stdio_error_message, stdio_refusal
from store import ArtifactService, Settings, acting_account, content_sources, open_service, run_sweeper

log = logging.getLogger("outputlayer.mcp")
# The REST request a refused stdio message stands for, for its error contract.
STDIO_WHERE = Where("POST", "/mcp")


async def run_screened_stdio(server: OutputLayerMCP) -> None:
    """``server.run_stdio_async()`` with every incoming message screened first (see
    :func:`outputlayer_mcp.wire.stdio_refusal`): a refused message is answered with a JSON-RPC error
    on the wire instead of being dropped, so the client never waits for an answer that cannot come."""
    lowlevel = server._lowlevel_server
    async with stdio_server() as (read_stream, write_stream):
        passed_send, passed_receive = anyio.create_memory_object_stream[SessionMessage | Exception](0)

        async def screen_all() -> None:
            async with passed_send, read_stream:
                async for item in read_stream:
                    refusal = stdio_refusal(item)
                    if refusal is None:
                        await passed_send.send(item)
                    else:
                        log.warning("refused an MCP message over stdio: %s", refusal[1].code)
                        await write_stream.send(stdio_error_message(*refusal, STDIO_WHERE))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(screen_all)
            await lowlevel.run(passed_receive, write_stream, lowlevel.create_initialization_options())


LinkServer = Callable[[ArtifactService], AbstractAsyncContextManager[None]]


def run_stdio(settings: Settings, working_dir: Path, links: LinkServer | None = None) -> int:
    anyio.run(serve_stdio, settings, working_dir, links)
    return 0


async def serve_stdio(settings: Settings, working_dir: Path, links: LinkServer | None = None) -> None:
    service = await anyio.to_thread.run_sync(open_service, settings)
    try:
        account = await acting_account(service, settings)
        roots = content_sources.allowed_roots(settings.mcp_roots, working_dir)
        server = build_mcp_server(service, account_id=account.id, file_roots=roots)
        log.info("MCP over stdio for account %s; files readable under %s", account.id, ", ".join(map(str, roots)))
        async with (
            links(service) if links is not None else contextlib.nullcontext(),
            anyio.create_task_group() as tasks,
        ):
            tasks.start_soon(run_sweeper, service, settings.sweep_interval_seconds)
            await run_screened_stdio(server)
            tasks.cancel_scope.cancel()
    finally:
        await service.aclose()

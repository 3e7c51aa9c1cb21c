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

from outputlayer_mcp.server import build_mcp_server
from store import ArtifactService, Settings, direct, open_service
from store.local import acting_account
from store.sweeper import run_sweeper

log = logging.getLogger("outputlayer.mcp")


LinkServer = Callable[[ArtifactService], AbstractAsyncContextManager[None]]


def run_stdio(settings: Settings, working_dir: Path, links: LinkServer | None = None) -> int:
    anyio.run(serve_stdio, settings, working_dir, links)
    return 0


async def serve_stdio(settings: Settings, working_dir: Path, links: LinkServer | None = None) -> None:
    service = await anyio.to_thread.run_sync(open_service, settings)
    try:
        account = await acting_account(service, settings)
        roots = direct.allowed_roots(settings.mcp_roots, working_dir)
        server = build_mcp_server(service, account_id=account.id, file_roots=roots)
        log.info("MCP over stdio for account %s; files readable under %s", account.id, ", ".join(map(str, roots)))
        async with (
            links(service) if links is not None else contextlib.nullcontext(),
            anyio.create_task_group() as tasks,
        ):
            tasks.start_soon(run_sweeper, service, settings.sweep_interval_seconds)
            await server.run_stdio_async()
            tasks.cancel_scope.cancel()
    finally:
        service.close()

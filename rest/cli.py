"""The ``outputlayer`` command: serve, mcp, sweep, check, migrate and account administration (SPEC section 12)."""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from store import ArtifactService, Settings, SettingsError, StoreError, SweepReport, migrate, open_service

log = logging.getLogger("outputlayer")


def _settings() -> Settings:
    try:
        return Settings.from_env(os.environ)
    except SettingsError as exc:
        sys.stderr.write(f"outputlayer: {exc}\n")
        raise SystemExit(2) from None


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from rest.coalescing import CoalescingHttpToolsProtocol

    settings = _settings()
    if not settings.base_url:
        # Workers read the environment themselves; the default base URL is where we listen.
        os.environ["OUTPUTLAYER_BASE_URL"] = f"http://{args.host}:{args.port}"
    migrate(settings.database_url)
    log.info("serving on http://%s:%d (database %s)", args.host, args.port, settings.database_url.split(":", 1)[0])
    uvicorn.run(
        "rest.asgi:app_factory",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=args.access_log,
        log_level="info",
        proxy_headers=args.proxy_headers,
        server_header=False,
        # The standard loop, not uvloop: under saturation uvloop served some connections hundreds of
        # ms late (p99 6-13x p50 at 50 connections) for no gain in throughput (docs/DECISIONS.md).
        loop="asyncio",
        http=CoalescingHttpToolsProtocol,
    )
    return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    from outputlayer_mcp.stdio import run_stdio
    from rest.link_server import bind_loopback, links_served

    settings = _settings()
    if settings.base_url:
        return run_stdio(settings, Path.cwd())
    # No server named: the links this process hands out are served by it, on a free loopback port.
    sock = bind_loopback()
    host, port = sock.getsockname()[:2]
    settings = settings.with_base_url(f"http://{host}:{port}")
    return run_stdio(settings, Path.cwd(), functools.partial(links_served, sock=sock))


def cmd_mcp_config(args: argparse.Namespace) -> int:
    """Print an MCP client registration with absolute paths, for clients that start servers from their
    own directory (Claude Desktop, and Claude Code's user scope)."""
    settings = _settings()
    command = Path(sys.argv[0]).absolute() if Path(sys.argv[0]).name == "outputlayer" else None
    if command is None or not command.is_file():
        command = Path(sys.executable).with_name("outputlayer")
    roots = ":".join(str(root) for root in settings.mcp_roots) or str(Path.cwd())
    env = {"OUTPUTLAYER_DATA_DIR": str(settings.data_dir), "OUTPUTLAYER_MCP_ROOTS": roots}
    if settings.base_url:
        env["OUTPUTLAYER_BASE_URL"] = settings.base_url
    entry = {"command": str(command), "args": ["mcp"], "env": env}
    sys.stdout.write(json.dumps({"mcpServers": {args.name: entry}}, indent=2) + "\n")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    report = asyncio.run(_sweep_once(open_service(_settings())))
    log.info(
        "sweep expired=%d blobs_deleted=%d stale_slots=%d pruned_rate_events=%d",
        report.expired,
        report.blobs_deleted,
        report.stale_slots,
        report.pruned_events,
    )
    return 0


async def _sweep_once(service: ArtifactService) -> SweepReport:
    """One pass, then the service closed inside the same loop (its database pool ends with the pass)."""
    try:
        return await service.sweep()
    finally:
        await service.aclose()


def cmd_check(args: argparse.Namespace) -> int:
    service = open_service(_settings())
    try:
        report = service.check()
    finally:
        service.close()
    for problem in report.problems:
        log.error("drift: %s", problem)
    log.info("checked %d accounts and %d outputs: %d problems", report.accounts, report.outputs, len(report.problems))
    return 1 if report.problems else 0


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings()
    migrate(settings.database_url)
    log.info("schema is up to date")
    return 0


def cmd_grant(args: argparse.Namespace) -> int:
    service = open_service(_settings())
    try:
        account = service.grant(args.account_id, args.credits, args.storage_bytes)
    finally:
        service.close()
    log.info(
        "account %s: credits=%d storage_limit_bytes=%d",
        account.id,
        account.credits_remaining,
        account.storage_limit_bytes,
    )
    return 0


def cmd_accounts_list(args: argparse.Namespace) -> int:
    service = open_service(_settings())
    try:
        accounts = service.list_accounts(args.limit)
    finally:
        service.close()
    for account in accounts:
        sys.stdout.write(json.dumps(account) + "\n")
    return 0


def cmd_accounts_show(args: argparse.Namespace) -> int:
    service = open_service(_settings())
    try:
        account = service.describe_account(args.account_id)
    finally:
        service.close()
    sys.stdout.write(json.dumps(account, indent=2) + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="outputlayer", description="Artifact store for AI agents.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the REST API (and MCP over HTTP)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="server processes (they share the database)")
    serve.add_argument("--access-log", action="store_true", help="log one line per request")
    serve.add_argument("--proxy-headers", action="store_true", help="trust X-Forwarded-* from the proxy")
    serve.set_defaults(run=cmd_serve)

    commands.add_parser(
        "mcp",
        help="run the MCP server over stdio, for OUTPUTLAYER_API_KEY's account or a local one",
        description=(
            "Serve MCP over stdin/stdout for one account: the one of OUTPUTLAYER_API_KEY, or else a local account "
            "created on first run (its key is kept in the data directory). Local files are readable from "
            "OUTPUTLAYER_MCP_ROOTS (default: the working directory)."
        ),
    ).set_defaults(run=cmd_mcp)
    mcp_config = commands.add_parser(
        "mcp-config",
        help="print an MCP client registration of the stdio server with absolute paths",
        description=(
            'Print {"mcpServers": {…}} for this installation: the absolute path of this command, the data '
            "directory and the readable roots (the working directory unless OUTPUTLAYER_MCP_ROOTS is set)."
        ),
    )
    mcp_config.add_argument("--name", default="outputlayer", help="the server's name in the registration")
    mcp_config.set_defaults(run=cmd_mcp_config)
    commands.add_parser("sweep", help="run one expiry pass").set_defaults(run=cmd_sweep)
    commands.add_parser("check", help="verify the storage invariant; exit 1 on drift").set_defaults(run=cmd_check)
    commands.add_parser("migrate", help="bring the database schema up to date").set_defaults(run=cmd_migrate)

    accounts = commands.add_parser("accounts", help="account administration")
    account_commands = accounts.add_subparsers(dest="accounts_command", required=True)
    grant = account_commands.add_parser("grant", help="add credits and storage to an account")
    grant.add_argument("account_id")
    grant.add_argument("--credits", type=int, default=0)
    grant.add_argument("--storage-bytes", type=int, default=0)
    grant.set_defaults(run=cmd_grant)
    listing = account_commands.add_parser("list", help="one JSON line per account, newest first")
    listing.add_argument("--limit", type=int, default=100)
    listing.set_defaults(run=cmd_accounts_list)
    show = account_commands.add_parser("show", help="one account: plan, quota and purchases, as JSON")
    show.add_argument("account_id")
    show.set_defaults(run=cmd_accounts_show)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except StoreError as exc:
        log.error("%s: %s", exc.code, exc.message)
        return 1
    return code


if __name__ == "__main__":
    raise SystemExit(main())

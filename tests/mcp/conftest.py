"""MCP fixtures: a server over the test service (both backends), an account for it to act for, and
the SDK's in-memory client connected to it."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import CallToolResult

from outputlayer_mcp import OutputLayerMCP, build_mcp_server
from store import Account, ArtifactService
from tests.conftest import assert_contract

_ips = itertools.count(1)


async def new_account(service: ArtifactService) -> Account:
    n = next(_ips)
    body, _ = await service.register(client=f"10.9.{n // 256}.{n % 256}")
    return await service.account(body["accountId"])


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """The one directory the test server may read local files from."""
    root = tmp_path / "files"
    root.mkdir()
    return root.resolve()


@pytest.fixture
async def account(service: ArtifactService) -> Account:
    return await new_account(service)


@pytest.fixture
def server(service: ArtifactService, account: Account, files: Path) -> OutputLayerMCP:
    return build_mcp_server(service, account_id=account.id, file_roots=(files,))


@pytest.fixture
async def mcp(server: OutputLayerMCP) -> AsyncIterator[Client]:
    async with Client(server, raise_exceptions=True) as client:
        yield client


async def call(client: Client, tool: str, **arguments: Any) -> CallToolResult:
    return await client.call_tool(tool, arguments)


def ok(result: CallToolResult) -> dict[str, Any]:
    """The structured content of a successful result (its contract checked)."""
    assert not result.is_error, result.structured_content
    assert result.structured_content is not None
    # Compact results (save_artifact, share) carry no text for clients that read structuredContent.
    assert not result.content or result.content[0].type == "text"
    assert_contract(result.structured_content)
    return result.structured_content


def refused(result: CallToolResult, code: str) -> dict[str, Any]:
    """The structured content of an error result with ``code`` (its contract checked)."""
    assert result.is_error, result.structured_content
    body = result.structured_content
    assert body is not None, result.content
    assert body["error"] == code, body
    assert body["message"]
    assert result.content[0].type == "text" and code in result.content[0].text
    assert_contract(body)
    return body


def count_outputs(service: ArtifactService, account: Account, status: str | None = None) -> int:
    where, params = (
        ("account_id = ?", (account.id,)) if status is None else ("account_id = ? AND status = ?", (account.id, status))
    )
    row = service.db.read_sync(lambda tx: tx.one(f"SELECT COUNT(*) AS n FROM outputs WHERE {where}", params))
    assert row is not None
    return int(row["n"])

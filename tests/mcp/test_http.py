"""MCP over Streamable HTTP at ``/mcp`` inside a real ``outputlayer serve``, with the SDK's HTTP client
(SPEC section 11): the same Bearer keys, per-request accounts, Host checks and artifact-sized bodies."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.factories import TOOL_NAMES
from tests.mcp.conftest import call, ok
from tests.serving import Server, running_server

pytestmark = pytest.mark.anyio

CALL_TIMEOUT_SECONDS = 60
# Over the SDK's default 4 MiB request limit once base64-encoded.
LARGE_BYTES = 5 * 1024 * 1024


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("mcp-http"), {"OUTPUTLAYER_FREE_UPLOADS": "50"}) as server:
        yield server


async def register(server: Server) -> str:
    async with httpx2.AsyncClient(base_url=server.base_url) as http:
        response = await http.post("/v1/keys/register", json={})
        assert response.status_code == 201
        key: str = response.json()["apiKey"]
        return key


@asynccontextmanager
async def connect(server: Server, key: str, mode: str = "auto") -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=CALL_TIMEOUT_SECONDS) as http,
        Client(streamable_http_client(f"{server.base_url}/mcp", http_client=http), mode=mode) as client,
    ):
        yield client


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_tools_over_http_in_both_protocol_eras(served: Server, mode: str) -> None:
    key = await register(served)
    with anyio.fail_after(CALL_TIMEOUT_SECONDS):
        async with connect(served, key, mode) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert names == set(TOOL_NAMES)
            saved = ok(await call(client, "save_artifact", mime_type="text/plain", content_text=f"over {mode}"))
            saved = ok(await call(client, "get_artifact", output_id=saved["outputId"]))
            assert saved["contentUrl"].startswith(served.base_url)
            assert (
                await call(client, "save_artifact", mime_type="text/plain", content_text=f"over {mode}")
            ).structured_content["replayed"] is True
            shared = ok(await call(client, "share", output_id=saved["outputId"]))
            (contents,) = (await client.read_resource(saved["resourceUri"])).contents
            assert getattr(contents, "text", None) == f"over {mode}"
    async with httpx2.AsyncClient() as anonymous:
        response = await anonymous.get(shared["shareUrl"])
        assert response.status_code == 200 and response.text == f"over {mode}"


async def test_each_request_acts_for_its_own_key(served: Server) -> None:
    alice, bob = await register(served), await register(served)
    with anyio.fail_after(CALL_TIMEOUT_SECONDS):
        async with connect(served, alice) as as_alice, connect(served, bob) as as_bob:
            saved = ok(await call(as_alice, "save_artifact", mime_type="text/plain", content_text="alice's"))
            assert ok(await call(as_bob, "list_artifacts"))["outputs"] == []
            result = await call(as_bob, "get_artifact", output_id=saved["outputId"])
            assert result.is_error and result.structured_content is not None
            assert result.structured_content["error"] == "output_not_found"


async def test_artifact_sized_uploads_fit_the_request_limit(served: Server) -> None:
    data = os.urandom(LARGE_BYTES)
    key = await register(served)
    with anyio.fail_after(CALL_TIMEOUT_SECONDS):
        async with connect(served, key) as client:
            saved = ok(
                await call(
                    client,
                    "save_artifact",
                    mime_type="application/octet-stream",
                    content_base64=base64.b64encode(data).decode(),
                )
            )
            saved = ok(await call(client, "get_artifact", output_id=saved["outputId"]))
    assert saved["sizeBytes"] == LARGE_BYTES and saved["sha256"] == hashlib.sha256(data).hexdigest()


JSONRPC = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"}


@pytest.mark.parametrize(
    ("authorization", "code"),
    [(None, "missing_api_key"), ("Bearer ol_live_" + "0" * 64, "invalid_api_key"), ("Basic abc", "missing_api_key")],
)
async def test_mcp_without_a_valid_key_is_the_api_401(served: Server, authorization: str | None, code: str) -> None:
    headers = {**MCP_HEADERS, **({"Authorization": authorization} if authorization else {})}
    async with httpx2.AsyncClient(base_url=served.base_url) as http:
        response = await http.post("/mcp", json=JSONRPC, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["x-request-id"].startswith("req_")
    body: dict[str, Any] = response.json()
    assert body["error"] == code and body["agent_contract"]["next_actions"][0]["action"] == "register_key"


async def test_transport_rules(served: Server) -> None:
    key = await register(served)
    auth = {"Authorization": f"Bearer {key}"}
    async with httpx2.AsyncClient(base_url=served.base_url, headers={**MCP_HEADERS, **auth}) as http:
        answered = await http.post("/mcp", json=JSONRPC)
        assert answered.status_code == 200 and answered.headers["x-request-id"].startswith("req_")
        assert "mcp-session-id" not in answered.headers  # stateless: any worker answers any request
        # DNS-rebinding protection: a Host the server is not known by, or a foreign browser Origin.
        assert (await http.post("/mcp", json=JSONRPC, headers={"Host": "evil.example"})).status_code == 421
        assert (await http.post("/mcp", json=JSONRPC, headers={"Origin": "https://evil.example"})).status_code == 403
        # No server-to-client stream and no sessions to end: 405 with the API's error body.
        for method in ("GET", "DELETE"):
            response = await http.request(method, "/mcp")
            assert response.status_code == 405 and response.headers["allow"] == "POST"
            assert response.json()["error"] == "wrong_method"


def test_served_logs_stay_clean(served: Server) -> None:
    log = Path(served.log_path).read_text()
    assert "Traceback" not in log


async def test_over_http_files_move_through_links_not_tool_arguments(served: Server) -> None:
    """SPEC sections 11 and 14: an upload link in, a download link out; the bytes never enter a tool call."""
    data = os.urandom(LARGE_BYTES)
    key = await register(served)
    with anyio.fail_after(CALL_TIMEOUT_SECONDS):
        async with connect(served, key) as client, httpx2.AsyncClient(timeout=CALL_TIMEOUT_SECONDS) as shell:
            link = ok(await call(client, "create_upload_link", mime_type="application/zip", label="bundle.zip"))
            assert link["uploadUrl"].startswith(f"{served.base_url}/u/")
            stored = await shell.put(link["uploadUrl"], content=data)
            assert stored.status_code == 201, stored.text
            got = ok(await call(client, "get_artifact", output_id=stored.json()["outputId"]))
            assert (got["sizeBytes"], got["label"]) == (LARGE_BYTES, "bundle.zip")
            downloaded = await shell.get(got["downloadUrl"])
    assert (
        downloaded.status_code == 200 and hashlib.sha256(downloaded.content).digest() == hashlib.sha256(data).digest()
    )

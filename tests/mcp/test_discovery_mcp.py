"""``/v1/tool`` and the ``mcp`` part of ``/.well-known/agent.json`` are the MCP server's own answers
(SPEC section 10), and the connection facts match ``mcp.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2
import pytest

from outputlayer_mcp import build_mcp_server
from store import ArtifactService, Settings
from tests.factories import TOOL_NAMES

pytestmark = [pytest.mark.anyio, pytest.mark.any_backend]

REPO = Path(__file__).resolve().parents[2]


async def live_tools(service: ArtifactService) -> list[dict[str, Any]]:
    server = build_mcp_server(service)
    return [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in await server.list_tools()]


async def test_tool_card_is_the_servers_tool_list(
    client: httpx2.AsyncClient, service: ArtifactService, settings: Settings
) -> None:
    card = (await client.get("/v1/tool")).json()
    assert card["tools"] == await live_tools(service)
    names = [tool["name"] for tool in card["tools"]]
    assert names == list(TOOL_NAMES)
    for tool in card["tools"]:
        assert {"name", "title", "description", "inputSchema", "outputSchema", "annotations"} <= set(tool)
    assert [t["uriTemplate"] for t in card["resourceTemplates"]] == ["outputlayer://outputs/{output_id}"]
    assert card["server"]["name"] == "outputlayer" and card["server"]["instructions"]
    mcp = card["connection"]["mcp"]
    assert mcp["http"]["url"] == f"{settings.base_url}/mcp" and mcp["http"]["type"] == "http"
    stdio = json.loads((REPO / ".mcp.json").read_text("utf-8"))["mcpServers"]["outputlayer"]
    # The project file names the command inside the project's virtual environment.
    assert (mcp["stdio"]["command"], mcp["stdio"]["args"]) == (Path(stdio["command"]).name, stdio["args"])


async def test_agent_card_mcp_part(client: httpx2.AsyncClient, service: ArtifactService, settings: Settings) -> None:
    card = (await client.get("/.well-known/agent.json")).json()
    mcp = card["mcp"]
    assert mcp["endpoint"] == f"{settings.base_url}/mcp" and mcp["transport"] == "streamable-http"
    assert mcp["tools"] == await live_tools(service)
    assert mcp["stdio"]["args"] == ["mcp"] and mcp["tool_card"] == f"{settings.base_url}/v1/tool"
    # The endpoint it names is there, behind the same keys.
    assert (await client.post("/mcp", json={})).status_code == 401

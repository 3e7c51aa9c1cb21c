"""What the MCP server says about itself, for the discovery documents (``/v1/tool`` and the ``mcp``
part of ``/.well-known/agent.json``): its real tool list and resource templates as ``tools/list``
and ``resources/templates/list`` answer them, and how to connect to it (the same command as
``.mcp.json``, which names it inside the project's virtual environment).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from outputlayer_mcp.server import MCP_PATH, OutputLayerMCP

STDIO_COMMAND = "outputlayer"
STDIO_ARGS = ("mcp",)


@dataclass(frozen=True, slots=True)
class McpDescription:
    server: dict[str, Any]
    tools: list[dict[str, Any]]
    resource_templates: list[dict[str, Any]]


async def describe(server: OutputLayerMCP) -> McpDescription:
    """The server's own answers to ``tools/list`` and ``resources/templates/list``, as JSON (wire names)."""
    tools = [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in await server.list_tools()]
    templates = [
        template.model_dump(mode="json", by_alias=True, exclude_none=True)
        for template in await server.list_resource_templates()
    ]
    about = {
        "name": server.name,
        "title": server.title,
        "version": server.version,
        "description": server.description,
        "instructions": server.instructions,
    }
    return McpDescription({k: v for k, v in about.items() if v is not None}, tools, templates)


def connection(base_url: str) -> dict[str, Any]:
    """How an MCP client registers this server: stdio (a local account, or the one of
    ``OUTPUTLAYER_API_KEY``) and Streamable HTTP (a Bearer key per request)."""
    return {
        "stdio": {
            "command": STDIO_COMMAND,
            "args": list(STDIO_ARGS),
            "env": {"OUTPUTLAYER_API_KEY": "<optional: your ol_live_ key; without it a local account is created>"},
        },
        "http": {
            "type": "http",
            "transport": "streamable-http",
            "url": f"{base_url}{MCP_PATH}",
            "headers": {"Authorization": "Bearer <api_key>"},
        },
    }

"""The tool card served at ``/v1/tool``: what an agent can call and how to connect to it.

The tools are the MCP server's own ``tools/list`` answer (names, titles, descriptions, input and
output schemas, annotations) and the connection facts come from :mod:`outputlayer_mcp.card`, so the
card cannot describe a tool the server does not have (SPEC section 10).
"""

from __future__ import annotations

from typing import Any

from outputlayer_mcp.card import McpDescription, connection
from store import API_KEY_PREFIX, SERVER_NAME, Settings, server_version


def build_tool_card(settings: Settings, mcp: McpDescription) -> dict[str, Any]:
    base = settings.base_url
    return {
        "name": SERVER_NAME,
        "version": server_version(),
        "description": (
            "Artifact storage for AI agents: save files an agent produced, get a download or share URL, and let "
            "them expire automatically. Every result carries an agent_contract with the next safe actions."
        ),
        "protocol": "mcp",
        "server": mcp.server,
        "tools": mcp.tools,
        "resourceTemplates": mcp.resource_templates,
        "connection": {
            "mcp": connection(base),
            "rest": {"base_url": base, "openapi": f"{base}/v1/schema"},
        },
        "auth": {
            "type": "bearer",
            "header": "Authorization",
            "key_prefix": API_KEY_PREFIX,
            "register": {"method": "POST", "url": f"{base}/v1/keys/register"},
            "stdio": "acts for OUTPUTLAYER_API_KEY's account, or a local account created on first run",
        },
    }

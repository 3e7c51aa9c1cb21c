"""The tool card served at ``/v1/tool``: what an agent can call and how to connect to it.

For now it describes the REST upload as one tool; once the MCP server exists this function is the
one place to regenerate the card from its real tool list (SPEC section 10).
"""

from __future__ import annotations

from typing import Any

from store.capabilities import SERVER_NAME, server_version
from store.schemas import CreateOutput, OutputResource
from store.settings import Settings


def build_tool_card(settings: Settings) -> dict[str, Any]:
    base = settings.base_url
    return {
        "name": SERVER_NAME,
        "version": server_version(),
        "description": (
            "Artifact storage for AI agents: save files an agent produced, get a download or share URL, and let "
            "them expire automatically. Every response carries an agent_contract with the next safe actions."
        ),
        "tools": [
            {
                "name": "create_output",
                "description": (
                    "Store an artifact (content base64-encoded) and get back its outputId, contentUrl and, when "
                    "public is true, a publicUrl. Send a unique Idempotency-Key header; retrying with the same "
                    "key and payload never stores or charges twice."
                ),
                "inputSchema": CreateOutput.model_json_schema(),
                "outputSchema": OutputResource.model_json_schema(),
                "rest": {
                    "method": "POST",
                    "url": f"{base}/v1/outputs",
                    "headers": {
                        "Authorization": "Bearer <api_key>",
                        "Idempotency-Key": "<unique per artifact>",
                        "Content-Type": "application/json",
                    },
                },
            }
        ],
        "connection": {
            "mcp": {
                "stdio": {"command": "outputlayer", "args": ["mcp"]},
                "http": {"url": f"{base}/mcp"},
            },
            "rest": {"base_url": base, "openapi": f"{base}/v1/schema"},
        },
        "auth": {
            "type": "bearer",
            "header": "Authorization",
            "register": {"method": "POST", "url": f"{base}/v1/keys/register"},
        },
    }

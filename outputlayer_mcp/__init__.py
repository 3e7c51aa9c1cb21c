"""The MCP front door: the same artifact store as REST, as MCP tools (SPEC section 11).

- :mod:`outputlayer_mcp.server`: :func:`build_mcp_server`, the five tools and the resource template;
- :mod:`outputlayer_mcp.results`: store answers and errors → tool results;
- :mod:`outputlayer_mcp.schemas`: argument types and result models (the published schemas);
- :mod:`outputlayer_mcp.http`: the Streamable HTTP endpoint the REST app mounts at ``/mcp``;
- :mod:`outputlayer_mcp.stdio`: ``outputlayer mcp``, the stdio server for one local account;
- :mod:`outputlayer_mcp.card`: the tool list and connection facts for the discovery documents.

Every rule lives in :mod:`store`; this package only translates.
"""

from __future__ import annotations

from outputlayer_mcp.server import MCP_PATH, RESOURCE_TEMPLATE, OutputLayerMCP, bind_account, build_mcp_server

__all__ = ["MCP_PATH", "RESOURCE_TEMPLATE", "OutputLayerMCP", "bind_account", "build_mcp_server"]

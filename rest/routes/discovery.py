"""Discovery and probe routes: the documents agents read before (and while) using the API, the local
Swagger UI, and the health and readiness probes (SPEC sections 4 and 10).

Every document is built from the settings of the service handling the request, so it reports the
live configuration. Building is lazy and remembered per settings value by the :class:`_Cache` that
each :func:`discovery_routes` call owns (no module-level state); only the parts that depend on the
caller — the ``agent_contract`` and a personalised capabilities document — are made per request.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Awaitable, Callable
from functools import cached_property
from pathlib import Path
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from outputlayer_mcp.card import McpDescription, connection
from outputlayer_mcp.http import McpHttp
from rest.discovery.examples import build_examples
from rest.discovery.openapi import build_openapi
from rest.discovery.toolcard import build_tool_card
from rest.endpoint import Call, Handler, endpoint
from rest.responses import JSONResponse
from store import (
    API_KEY_PREFIX,
    SUPPORTED_MIME_TYPES,
    Settings,
    StoreError,
    build_capabilities,
    discovery_contract,
    family_of,
    max_upload_bytes,
    server_version,
    service_unavailable,
)

DOCUMENTS_DIR = Path(__file__).resolve().parent.parent / "discovery"
DOCS_ASSETS = "/docs/assets"
# A probe must answer, not hang: a backend slower than this counts as down.
READY_TIMEOUT_SECONDS = 5.0
PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Max-Age": "86400",
}
_TOKEN = re.compile(r"\{\{([A-Z_]+)\}\}")


def discovery_routes() -> list[BaseRoute]:
    cache = _Cache()

    def discovery(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        return endpoint(handler, auth=False, optional_auth=True, family=family_of("discovery"), cors=True)

    async def capabilities(call: Call) -> Response:
        documents = cache.get(_settings(call))
        if call.account is None:
            return JSONResponse(documents.capabilities)
        return JSONResponse(build_capabilities(documents.settings, call.account))

    async def schema(call: Call) -> Response:
        return _document(call, cache.get(_settings(call)).openapi)

    async def examples(call: Call) -> Response:
        return _document(call, cache.get(_settings(call)).examples)

    async def tool(call: Call) -> Response:
        return _document(call, cache.get(_settings(call)).tool(await _mcp(call)))

    async def agent_card(call: Call) -> Response:
        return _document(call, cache.get(_settings(call)).agent_card(await _mcp(call)))

    async def agents_md(call: Call) -> Response:
        return Response(cache.get(_settings(call)).agents_md, media_type="text/markdown; charset=utf-8")

    async def llms_txt(call: Call) -> Response:
        return Response(cache.get(_settings(call)).llms_txt, media_type="text/plain; charset=utf-8")

    async def docs(call: Call) -> Response:
        return HTMLResponse(docs_page(call.request.scope.get("root_path", "")))

    handlers: dict[str, Handler] = {
        "/v1/capabilities": capabilities,
        "/v1/tool": tool,
        "/v1/schema": schema,
        "/v1/examples": examples,
        "/.well-known/agent.json": agent_card,
        "/AGENTS.md": agents_md,
        "/llms.txt": llms_txt,
        "/docs": docs,
    }
    # A browser sends a key only after a CORS preflight; it is answered here, without a rate-limit charge.
    preflight_endpoint = endpoint(preflight, auth=False, cors=True)
    return [
        *(Route(path, discovery(handler), methods=["GET"]) for path, handler in handlers.items()),
        *(Route(path, preflight_endpoint, methods=["OPTIONS"]) for path in handlers),
        Mount(DOCS_ASSETS, app=StaticFiles(directory=Path(str(swagger_ui_path))), name="docs-assets"),
        Route("/health", endpoint(health, auth=False), methods=["GET"]),
        Route("/ready", endpoint(ready, auth=False), methods=["GET"]),
    ]


def _settings(call: Call) -> Settings:
    """The service's settings, with the base URL the request came in on when none is configured."""
    settings = call.service.settings
    if settings.base_url:
        return settings
    return settings.with_base_url(str(call.request.base_url).rstrip("/"))


async def _mcp(call: Call) -> McpDescription:
    """The tool list of the MCP server this app mounts at ``/mcp`` (built in the lifespan)."""
    mcp: McpHttp = call.request.state.mcp
    return await mcp.description()


def _document(call: Call, document: dict[str, Any]) -> Response:
    return JSONResponse({**document, "agent_contract": discovery_contract(call.account is not None)})


async def preflight(call: Call) -> Response:
    return Response(status_code=204, headers=PREFLIGHT_HEADERS)


async def health(call: Call) -> Response:
    return JSONResponse({"status": "ok", "agent_contract": discovery_contract(False)})


async def ready(call: Call) -> Response:
    for name, ping in (("database", call.service.db.ping), ("blob store", call.service.blobs.ping)):
        try:
            with anyio.fail_after(READY_TIMEOUT_SECONDS):
                await ping()
        except StoreError:
            raise
        except Exception:  # any backend failure, a timeout included, means "not ready", never a 500
            raise service_unavailable(name) from None
    return JSONResponse({"status": "ready", "agent_contract": discovery_contract(False)})


class _Cache:
    """The documents of the most recent settings value; rebuilt when a request brings other settings."""

    def __init__(self) -> None:
        self._documents: _Documents | None = None

    def get(self, settings: Settings) -> _Documents:
        documents = self._documents
        if documents is None or documents.settings != settings:
            documents = _Documents(settings)
            self._documents = documents
        return documents


class _Documents:
    """Each discovery document for one settings value, built on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._tool: dict[str, Any] | None = None
        self._agent_card: dict[str, Any] | None = None

    @cached_property
    def capabilities(self) -> dict[str, Any]:
        return build_capabilities(self.settings, None)

    @cached_property
    def openapi(self) -> dict[str, Any]:
        return build_openapi(self.settings)

    @cached_property
    def examples(self) -> dict[str, Any]:
        return build_examples(self.settings.base_url, self.settings)

    # The MCP server's description is fixed for the life of the app that mounts it.
    def tool(self, mcp: McpDescription) -> dict[str, Any]:
        if self._tool is None:
            self._tool = build_tool_card(self.settings, mcp)
        return self._tool

    def agent_card(self, mcp: McpDescription) -> dict[str, Any]:
        if self._agent_card is None:
            self._agent_card = build_agent_card(self.settings, mcp)
        return self._agent_card

    @cached_property
    def agents_md(self) -> str:
        return render_text((DOCUMENTS_DIR / "AGENTS.md").read_text("utf-8"), self.settings)

    @cached_property
    def llms_txt(self) -> str:
        return render_text((DOCUMENTS_DIR / "llms.txt").read_text("utf-8"), self.settings)


# --- documents built here --------------------------------------------------------------------


def build_agent_card(settings: Settings, mcp: McpDescription) -> dict[str, Any]:
    """``/.well-known/agent.json``: who this is, how to authenticate, where everything is; the ``mcp``
    part is the MCP server's own tool list and connection facts."""
    base = settings.base_url
    how = connection(base)
    return {
        "name": "OutputLayer",
        "description": (
            "Self-hosted artifact storage for AI agents: idempotent uploads, automatic expiry, public and "
            "signed share URLs, and an agent_contract with the next safe actions on every response."
        ),
        "version": server_version(),
        "api_version": "1",
        "url": base,
        "auth": {
            "type": "bearer",
            "scheme": "Bearer",
            "header": "Authorization",
            "key_prefix": API_KEY_PREFIX,
            "register_url": f"{base}/v1/keys/register",
            "register_method": "POST",
        },
        "mcp": {
            "endpoint": how["http"]["url"],
            "transport": how["http"]["transport"],
            "auth": "bearer",
            "http": how["http"],
            "stdio": how["stdio"],
            "tool_card": f"{base}/v1/tool",
            "server": mcp.server,
            "tools": mcp.tools,
            "resource_templates": mcp.resource_templates,
        },
        "documents": {
            "capabilities": f"{base}/v1/capabilities",
            "openapi": f"{base}/v1/schema",
            "examples": f"{base}/v1/examples",
            "tool_card": f"{base}/v1/tool",
            "agent_card": f"{base}/.well-known/agent.json",
            "agents_md": f"{base}/AGENTS.md",
            "llms_txt": f"{base}/llms.txt",
            "docs": f"{base}/docs",
        },
        "routes": [
            _route("register_key", "POST", f"{base}/v1/keys/register", auth=False),
            _route("create_output", "POST", f"{base}/v1/outputs"),
            _route("list_outputs", "GET", f"{base}/v1/outputs"),
            _route("get_output", "GET", f"{base}/v1/outputs/{{outputId}}"),
            _route("download_content", "GET", f"{base}/v1/outputs/{{outputId}}/content"),
            _route("delete_output", "DELETE", f"{base}/v1/outputs/{{outputId}}"),
            _route("create_share_link", "POST", f"{base}/v1/outputs/{{outputId}}/share"),
            _route("create_upload_link", "POST", f"{base}/v1/uploads"),
            _route("get_upload", "GET", f"{base}/v1/uploads/{{uploadId}}"),
            _route("get_balance", "GET", f"{base}/v1/credits/balance"),
            _route("buy_credits", "POST", f"{base}/v1/credits/checkout"),
            _route("verify_purchase", "GET", f"{base}/v1/credits/verify"),
            _route("public_content", "GET", f"{settings.effective_public_base_url}/{{outputId}}", auth=False),
            _route("health", "GET", f"{base}/health", auth=False),
            _route("ready", "GET", f"{base}/ready", auth=False),
        ],
    }


def _route(name: str, method: str, url: str, *, auth: bool = True) -> dict[str, Any]:
    return {"name": name, "method": method, "url": url, "auth": "bearer" if auth else "none"}


def text_values(settings: Settings) -> dict[str, str]:
    """The live values substituted for ``{{NAME}}`` in AGENTS.md and llms.txt."""
    rates = settings.rate_limits
    enforced = settings.plan_enforcement
    return {
        "BASE_URL": settings.base_url,
        "PUBLIC_BASE_URL": settings.effective_public_base_url,
        "MIME_TYPES": ", ".join(SUPPORTED_MIME_TYPES),
        "MAX_UPLOAD_BYTES": str(max_upload_bytes(settings, None)),
        "PLAN_NOTE": " (plan enforcement is on: your plan's limit applies, see plan_tiers in /v1/capabilities)"
        if enforced
        else "",
        "FREE_UPLOADS": str(settings.free_uploads),
        "STORAGE_LIMIT_BYTES": str(settings.storage_limit_bytes),
        "DEFAULT_TTL_SECONDS": str(settings.default_ttl_seconds),
        "MAX_TTL_SECONDS": str(settings.max_ttl_seconds),
        "RATE_UPLOADS": f"{rates.uploads_per_hour} (or your plan's)" if enforced else str(rates.uploads_per_hour),
        "RATE_READS": str(rates.reads_per_hour),
        "RATE_DELETES": str(rates.deletes_per_hour),
        "RATE_CREDITS": str(rates.credits_per_hour),
        "RATE_DISCOVERY": str(rates.discovery_per_minute),
        "RATE_REGISTRATIONS": str(rates.registrations_per_hour),
        "RATE_LIMITS_STATE": "on" if settings.rate_limits_enabled else "off",
        "BILLING_NOTE": 'Credit packs are sold through PayPal: POST /v1/credits/checkout {"packId"} answers a '
        "checkoutUrl for a person to approve; then poll GET /v1/credits/verify?purchaseId=… until it is confirmed."
        if settings.billing_enabled
        else "Billing is not configured on this server: POST /v1/credits/checkout answers 503 billing_disabled, "
        "and the operator grants credits with `outputlayer accounts grant`.",
    }


def render_text(template: str, settings: Settings) -> str:
    values = text_values(settings)
    return _TOKEN.sub(lambda match: values[match.group(1)], template)


def docs_page(root_path: str = "") -> str:
    """Swagger UI for ``/v1/schema``; every asset comes from this server, and the online validator is off."""
    assets = html.escape(f"{root_path}{DOCS_ASSETS}", quote=True)
    config = json.dumps(
        {"url": f"{root_path}/v1/schema", "dom_id": "#swagger-ui", "deepLinking": True, "validatorUrl": None}
    ).replace("</", "<\\/")
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>OutputLayer API</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle(Object.assign({config}, {{presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout"}}));
</script>
</body>
</html>
"""

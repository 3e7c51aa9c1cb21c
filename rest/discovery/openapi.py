"""The OpenAPI 3.1 document served at ``/v1/schema`` (and rendered by ``/docs``).

Component schemas are generated from the pydantic models in :mod:`store.schemas`, the same
classes the server validates requests with, and error responses are derived from the error table
in :mod:`store.errors`; only the route table below is written by hand. The multipart upload schema
is derived from ``CreateOutput`` so both wire shapes stay in step.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from store import (
    API_KEY_PREFIX,
    CURSOR_PATTERN,
    ERROR_KINDS,
    IDEMPOTENCY_KEY_MAX,
    SUPPORTED_MIME_TYPES,
    AgentContract,
    Balance,
    Checkout,
    CreateOutput,
    CreateShareLink,
    CreateUpload,
    ErrorEnvelope,
    Metadata,
    OutputList,
    OutputResource,
    Registered,
    RegisterKey,
    Settings,
    ShareLink,
    UploadLink,
    UploadStatus,
    server_version,
)

OPENAPI_VERSION = "3.1.0"
REF = "#/components/schemas/{model}"

Schema = dict[str, Any]
Operation = dict[str, Any]

# Every model the wire uses; nested models (Metadata, NextAction, PageInfo, …) come along as $defs.
MODELS: tuple[type[BaseModel], ...] = (
    CreateOutput,
    Metadata,
    RegisterKey,
    CreateShareLink,
    Checkout,
    OutputResource,
    OutputList,
    ErrorEnvelope,
    AgentContract,
    Registered,
    Balance,
    ShareLink,
    CreateUpload,
    UploadLink,
    UploadStatus,
)

PUBLIC: list[dict[str, list[str]]] = []
OPTIONAL_KEY: list[dict[str, list[str]]] = [{}, {"bearerAuth": []}]

# Failures any route can answer: a key in the query string, an unexpected error, a backend outage.
BASE_ERRORS = ("invalid_request", "server_error", "service_unavailable")
AUTH_ERRORS = ("missing_api_key", "invalid_api_key")
UPLOAD_ERRORS = (
    "missing_idempotency_key",
    "invalid_mime_type",
    "payload_too_large",
    "invalid_metadata",
    "invalid_expiry",
    "quota_exhausted",
    "storage_limit_reached",
    "idempotency_conflict",
    "upload_failed",
    "idempotency_in_flight",
)
CONTENT_ERRORS = ("output_not_found", "output_expired", "output_deleted", "upload_failed")

QUOTA_HEADERS = (
    "X-OutputLayer-Free-Remaining",
    "X-OutputLayer-Credits-Remaining",
    "X-OutputLayer-Storage-Used-Bytes",
    "X-OutputLayer-Storage-Limit-Bytes",
)
RATE_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")


def build_openapi(settings: Settings) -> dict[str, Any]:
    """The whole document; ``servers`` points at the configured base URL (relative when none is set)."""
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "OutputLayer",
            "version": server_version(),
            "summary": "Artifact storage for AI agents.",
            "description": (
                "Store, retrieve, share and expire artifacts produced by AI agents. Every JSON response carries "
                "an `agent_contract` telling the agent what it can safely do next. Limits and live values: "
                "`GET /v1/capabilities`; worked examples: `GET /v1/examples`; integration guide: `GET /AGENTS.md`. "
                "Unknown paths answer 404 `not_found`; a known path called with a method it does not have answers "
                "405 `wrong_method`, with the right method in the agent_contract."
            ),
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "servers": [{"url": settings.base_url or "/", "description": "This OutputLayer server"}],
        "tags": [
            {"name": "keys", "description": "Registration"},
            {"name": "outputs", "description": "Artifacts: upload, read, list, share, delete"},
            {"name": "public", "description": "Bytes served without a key"},
            {"name": "credits", "description": "Quota and credit packs"},
            {"name": "discovery", "description": "Machine-readable documents; public, CORS *"},
            {"name": "operations", "description": "Health and readiness probes"},
            {"name": "mcp", "description": "Model Context Protocol over Streamable HTTP"},
        ],
        "security": [{"bearerAuth": []}],
        "paths": _with_links({**_paths(), **_upload_link_paths()}),
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": f"Authorization: Bearer {API_KEY_PREFIX}<64 hex>, from POST /v1/keys/register. "
                    "x-api-key and keys in the query string are not accepted.",
                }
            },
            "parameters": _parameters(),
            "headers": _headers(),
        },
    }


# --- components ------------------------------------------------------------------------------


def _ref(name: str) -> Schema:
    return {"$ref": REF.format(model=name)}


def _schemas() -> dict[str, Schema]:
    _, top = models_json_schema([(model, "validation") for model in MODELS], ref_template=REF)
    schemas: dict[str, Schema] = dict(top.get("$defs", {}))
    # The server stays liberal (case and parameters are normalised, SPEC section 5); the document
    # names the canonical types, so a client or a fuzzer built from it sends one that is accepted.
    for name in ("CreateOutput", "CreateUpload"):
        schemas[name]["properties"]["mimeType"]["enum"] = list(SUPPORTED_MIME_TYPES)
    schemas["CreateOutputMultipart"] = _multipart_schema(schemas["CreateOutput"])
    schemas.update(_jsonrpc_schemas())
    contract = _ref("AgentContract")
    schemas["CheckoutStarted"] = {
        "type": "object",
        "title": "CheckoutStarted",
        "required": ["purchaseId", "packId", "checkoutUrl", "status", "agent_contract"],
        "properties": {
            "purchaseId": {"type": "string", "description": "purch_ + ULID"},
            "packId": {"type": "string", "enum": ["basic", "pro", "agency"]},
            "checkoutUrl": {"type": "string", "format": "uri", "description": "PayPal approval link"},
            "status": {"type": "string", "const": "pending"},
            "agent_contract": contract,
        },
    }
    schemas["Purchase"] = {
        "type": "object",
        "title": "Purchase",
        "required": ["purchaseId", "packId", "status", "creditsAdded", "agent_contract"],
        "properties": {
            "purchaseId": {"type": "string"},
            "packId": {"type": "string"},
            "status": {"type": "string", "enum": ["pending", "confirmed", "failed", "refunded"]},
            "creditsAdded": {"type": "integer"},
            "agent_contract": contract,
        },
    }
    schemas["DiscoveryDocument"] = {
        "type": "object",
        "title": "DiscoveryDocument",
        "description": "A discovery document; its own keys vary, agent_contract is always present.",
        "required": ["agent_contract"],
        "properties": {"agent_contract": contract},
        "additionalProperties": True,
    }
    schemas["Status"] = {
        "type": "object",
        "title": "Status",
        "required": ["status", "agent_contract"],
        "properties": {"status": {"type": "string", "enum": ["ok", "ready"]}, "agent_contract": contract},
    }
    return schemas


def _non_null(prop: Schema) -> Schema:
    """An optional field's schema without its ``null`` branch (multipart fields are absent, never null)."""
    merged = {k: v for k, v in prop.items() if k not in ("anyOf", "default")}
    for branch in prop.get("anyOf", ()):
        if branch.get("type") != "null":
            merged.update(branch)
    return merged


def _multipart_schema(create_output: Schema) -> Schema:
    """CreateOutput as multipart/form-data: text fields as strings, content as a file part."""
    properties: dict[str, Schema] = {}
    for name, prop in create_output["properties"].items():
        field = _non_null(prop)
        description = prop.get("description", field.get("description"))
        if name == "content":
            properties[name] = {
                "type": "string",
                "format": "binary",
                "minLength": 1,
                "description": "The file part (raw bytes, not empty).",
            }
            continue
        if field.get("type") == "boolean":
            text: Schema = {"type": "string", "enum": ["true", "false"]}
            if "default" in prop:
                text["default"] = "true" if prop["default"] else "false"
        elif "$ref" in field:
            text = {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": {"$ref": field["$ref"]},
            }
            description = "A JSON object, sent as a text field."
        else:
            text = {
                k: v for k, v in field.items() if k in ("type", "maxLength", "minLength", "format", "enum", "pattern")
            }
        if description:
            text["description"] = description
        properties[name] = text
    return {
        "type": "object",
        "title": "CreateOutputMultipart",
        "description": "multipart/form-data upload: the text fields and one file part named content, in any order.",
        "required": list(create_output.get("required", [])),
        "properties": properties,
        "additionalProperties": False,
    }


def _parameters() -> dict[str, Any]:
    return {
        "IdempotencyKey": {
            "name": "Idempotency-Key",
            "in": "header",
            "required": True,
            "description": "Required on POST /v1/outputs. Scoped per API key, kept 7 days. The same key with the "
            "same payload replays the original 201; with another payload it is 409 idempotency_conflict.",
            "schema": {"type": "string", "minLength": 1, "maxLength": IDEMPOTENCY_KEY_MAX, "pattern": "^[ -~]+$"},
        },
        "OutputId": {
            "name": "outputId",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "pattern": "^out_[0-9A-Z]{26}$"},
        },
        "Range": {
            "name": "Range",
            "in": "header",
            "required": False,
            "description": "A single byte range, e.g. bytes=0-1023.",
            "schema": {"type": "string"},
        },
        "IfNoneMatch": {
            "name": "If-None-Match",
            "in": "header",
            "required": False,
            "description": 'The ETag of a previous response ("<sha256>"); a match answers 304.',
            "schema": {"type": "string"},
        },
    }


def _headers() -> dict[str, Any]:
    integer = {"schema": {"type": "integer"}}
    headers: dict[str, Any] = {
        "X-Request-Id": {
            "description": "req_ + ULID; repeated as request_id in error bodies.",
            "schema": {"type": "string"},
        },
        "Retry-After": {"description": "Seconds to wait before retrying.", **integer},
        "Idempotent-Replayed": {
            "description": "true when the response replays an earlier request with the same Idempotency-Key.",
            "schema": {"type": "string", "enum": ["true"]},
        },
        "ETag": {"description": 'The content\'s SHA-256 in quotes: "<sha256>".', "schema": {"type": "string"}},
        "Content-Disposition": {
            "description": 'attachment; filename="<label>" (RFC 6266 filename* for non-ASCII labels).',
            "schema": {"type": "string"},
        },
        "Location": {"description": "Where the bytes are.", "schema": {"type": "string", "format": "uri"}},
    }
    for name in QUOTA_HEADERS:
        headers[name] = {"description": "The account's quota after this request.", **integer}
    headers["RateLimit-Limit"] = {"description": "Requests allowed in the rolling window.", **integer}
    headers["RateLimit-Remaining"] = {"description": "Requests left in the window.", **integer}
    headers["RateLimit-Reset"] = {"description": "Seconds until the window frees a slot.", **integer}
    return headers


# --- responses -------------------------------------------------------------------------------


def _header_refs(*names: str) -> dict[str, Any]:
    return {name: {"$ref": f"#/components/headers/{name}"} for name in names}


def _json(schema: Schema) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _success(description: str, schema: Schema, *, authed: bool = False, rated: bool = False) -> dict[str, Any]:
    headers = ["X-Request-Id"]
    if authed:
        headers.extend(QUOTA_HEADERS)
    if rated:
        headers.extend(RATE_HEADERS)
    return {"description": description, "headers": _header_refs(*headers), "content": _json(schema)}


def _errors(*codes: str) -> dict[str, Any]:
    """One response per HTTP status, each naming the error codes it carries (from the error table)."""
    by_status: dict[int, list[str]] = defaultdict(list)
    for code in dict.fromkeys(codes):
        by_status[ERROR_KINDS[code].status].append(code)
    responses: dict[str, Any] = {}
    for status in sorted(by_status):
        names = by_status[status]
        headers = ["X-Request-Id"]
        if status in (429, 500, 503):
            headers.append("Retry-After")
        responses[str(status)] = {
            "description": "Error envelope; error is one of: " + ", ".join(f"`{c}`" for c in names) + ".",
            "headers": _header_refs(*headers),
            "content": _json(_ref("ErrorEnvelope")),
        }
    return responses


def _bytes_response(description: str, *, download: bool) -> dict[str, Any]:
    headers = ["X-Request-Id", "ETag"]
    if download:
        headers.append("Content-Disposition")
    return {
        "description": description,
        "headers": _header_refs(*headers),
        "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
    }


def _content_responses(*, authed: bool) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": _bytes_response("The bytes, with the stored MIME type as Content-Type.", download=True),
        "206": _bytes_response("The requested byte range (Range: bytes=…).", download=True),
        "304": {"description": "Not modified (If-None-Match matched the ETag).", "headers": _header_refs("ETag")},
        "416": {
            "description": "Error envelope; error is `range_not_satisfiable`: the range starts past the end.",
            "headers": {
                **_header_refs("X-Request-Id"),
                "Content-Range": {"description": "bytes */<size>", "schema": {"type": "string"}},
            },
            "content": _json(_ref("ErrorEnvelope")),
        },
    }
    if authed:
        responses["302"] = {
            "description": "A public output: the bytes are at its publicUrl.",
            "headers": _header_refs("Location", "X-Request-Id", *QUOTA_HEADERS),
        }
    return responses


# Keyless links are also opened by people: see rest/pages.
LINK_PAGE_NOTE = (
    " A browser whose Accept header lists text/html first gets an HTML preview page instead (and HTML pages "
    "for 404 and 410); `?download=1` always gets the bytes."
)


def _link_parameters() -> list[dict[str, Any]]:
    return [
        # Any value counts (the parameter's presence decides), so the schema names no enum.
        _query("download", {"type": "string"}, "Present (e.g. 1): the bytes as an attachment, also for a browser."),
        _query(
            "inline",
            {"type": "string"},
            "The bytes shown inline (still sandboxed), as the preview page embeds them; not for top-level pages.",
        ),
    ]


def _text(media_type: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": _header_refs("X-Request-Id", *RATE_HEADERS),
        "content": {media_type: {"schema": {"type": "string"}}},
    }


# --- paths -----------------------------------------------------------------------------------


def _op(
    operation_id: str,
    tag: str,
    summary: str,
    responses: dict[str, Any],
    *,
    security: list[dict[str, list[str]]] | None = None,
    description: str | None = None,
    parameters: list[dict[str, Any]] | None = None,
    request_body: dict[str, Any] | None = None,
) -> Operation:
    operation: Operation = {"operationId": operation_id, "tags": [tag], "summary": summary}
    if description:
        operation["description"] = description
    if security is not None:
        operation["security"] = security
    if parameters:
        operation["parameters"] = parameters
    if request_body is not None:
        operation["requestBody"] = request_body
    operation["responses"] = dict(sorted(responses.items()))
    return operation


def _param(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/parameters/{name}"}


def _query(name: str, schema: Schema, description: str, *, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


def _discovery(operation_id: str, summary: str, schema_description: str) -> dict[str, Any]:
    return {
        "get": _op(
            operation_id,
            "discovery",
            summary,
            {
                "200": _success(schema_description, _ref("DiscoveryDocument"), rated=True),
                **_errors(*BASE_ERRORS, "invalid_api_key", "rate_limited"),
            },
            security=OPTIONAL_KEY,
            description="Public, 60 requests/min per IP, CORS *. A valid key personalises the agent_contract "
            "(and /v1/capabilities); an invalid key is refused with 401.",
        )
    }


def _paths() -> dict[str, Any]:
    authed_errors = (*BASE_ERRORS, *AUTH_ERRORS, "rate_limited")
    output_id = [_param("OutputId")]
    return {
        "/v1/keys/register": {
            "post": _op(
                "registerKey",
                "keys",
                "Register an API key and account",
                {
                    "201": _success("The key, shown once.", _ref("Registered"), rated=True),
                    **_errors(*BASE_ERRORS, "rate_limited"),
                },
                security=PUBLIC,
                description="No auth; 10 registrations per hour per IP. The body may be empty, {} or "
                '{"email": "…"} (optional, unverified).',
                request_body={"required": False, "content": _json(_ref("RegisterKey"))},
            )
        },
        "/v1/outputs": {
            "post": _op(
                "createOutput",
                "outputs",
                "Upload an artifact",
                {
                    "201": {
                        **_success(
                            "The new output, or the replay of an earlier identical request (Idempotent-Replayed).",
                            _ref("OutputResource"),
                            authed=True,
                            rated=True,
                        ),
                    },
                    **_errors(*authed_errors, *UPLOAD_ERRORS),
                },
                description="JSON (content base64, body at most 1 MB) or multipart/form-data (file part content, "
                "text fields in any order). Supported MIME types: " + ", ".join(SUPPORTED_MIME_TYPES) + ".",
                parameters=[_param("IdempotencyKey")],
                request_body={
                    "required": True,
                    "content": {
                        "application/json": {"schema": _ref("CreateOutput")},
                        "multipart/form-data": {
                            "schema": _ref("CreateOutputMultipart"),
                            "encoding": {"content": {"contentType": "*/*"}},
                        },
                    },
                },
            ),
            "get": _op(
                "listOutputs",
                "outputs",
                "List outputs, newest first",
                {
                    "200": _success("One page of outputs.", _ref("OutputList"), authed=True, rated=True),
                    **_errors(*authed_errors),
                },
                parameters=[
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
                        "Page size; out of range is 400 invalid_request.",
                    ),
                    _query(
                        "cursor", {"type": "string", "pattern": CURSOR_PATTERN}, "Opaque, from pageInfo.nextCursor."
                    ),
                    _query(
                        "status",
                        {"type": "string", "enum": ["ready", "failed", "expired", "deleted"]},
                        "Exact-match filter.",
                    ),
                    _query("mimeType", {"type": "string"}, "Exact-match filter."),
                ],
            ),
        },
        "/v1/outputs/{outputId}": {
            "get": _op(
                "getOutput",
                "outputs",
                "Read an output's metadata",
                {
                    "200": _success("The output.", _ref("OutputResource"), authed=True, rated=True),
                    "410": {
                        **_success(
                            "Expired or deleted: the full output object (status expired/deleted, URLs null) plus "
                            "error and request_id, instead of the error envelope.",
                            _ref("OutputResource"),
                            authed=True,
                            rated=True,
                        ),
                    },
                    **_errors(*authed_errors, "output_not_found"),
                },
                parameters=output_id,
            ),
            "delete": _op(
                "deleteOutput",
                "outputs",
                "Delete an output (soft; idempotent)",
                {
                    "200": _success(
                        "The output with status deleted and deletedAt; repeating the delete returns the same.",
                        _ref("OutputResource"),
                        authed=True,
                        rated=True,
                    ),
                    **_errors(*authed_errors, "output_not_found", "output_expired"),
                },
                parameters=output_id,
            ),
        },
        "/v1/outputs/{outputId}/content": {
            "get": _op(
                "getOutputContent",
                "outputs",
                "Download an output's bytes",
                {**_content_responses(authed=True), **_errors(*authed_errors, *CONTENT_ERRORS)},
                description="Private outputs stream here; public ones redirect (302) to their publicUrl. "
                "Cache-Control: private, no-store; X-Content-Type-Options: nosniff.",
                parameters=[*output_id, _param("Range"), _param("IfNoneMatch")],
            )
        },
        "/v1/outputs/{outputId}/share": {
            "post": _op(
                "createShareLink",
                "outputs",
                "Create a share link",
                {
                    "200": _success(
                        "A link that serves the bytes without a key: the publicUrl of a public output, or a signed "
                        "link that expires (never after the output does).",
                        _ref("ShareLink"),
                        authed=True,
                        rated=True,
                    ),
                    **_errors(*authed_errors, *CONTENT_ERRORS),
                },
                parameters=output_id,
                request_body={"required": False, "content": _json(_ref("CreateShareLink"))},
            )
        },
        "/s/{token}": {
            "get": _op(
                "getSharedContent",
                "public",
                "Download through a share link",
                {**_content_responses(authed=False), **_errors(*BASE_ERRORS, *CONTENT_ERRORS)},
                security=PUBLIC,
                description=LINK_PAGE_NOTE.strip(),
                parameters=[
                    {"name": "token", "in": "path", "required": True, "schema": {"type": "string"}},
                    _param("Range"),
                    _param("IfNoneMatch"),
                    *_link_parameters(),
                ],
            )
        },
        "/public/{outputId}": {
            "get": _op(
                "getPublicContent",
                "public",
                "Download a public output (the default publicUrl target)",
                {**_content_responses(authed=False), **_errors(*BASE_ERRORS, *CONTENT_ERRORS)},
                security=PUBLIC,
                description="Sent with Content-Security-Policy: sandbox; text/html is served as an attachment."
                + LINK_PAGE_NOTE,
                parameters=[*output_id, _param("Range"), _param("IfNoneMatch"), *_link_parameters()],
            )
        },
        "/v1/credits/checkout": {
            "post": _op(
                "createCheckout",
                "credits",
                "Start a credit pack purchase",
                {
                    "201": _success("The purchase and its PayPal approval link.", _ref("CheckoutStarted"), authed=True),
                    **_errors(*authed_errors, "billing_disabled"),
                },
                description="Answers 503 billing_disabled when the server has no payment provider configured, and 503 "
                "service_unavailable (retryable) while PayPal cannot be reached.",
                request_body={"required": True, "content": _json(_ref("Checkout"))},
            )
        },
        "/v1/credits/verify": {
            "get": _op(
                "verifyPurchase",
                "credits",
                "Check a purchase's state",
                {
                    "200": _success("The purchase.", _ref("Purchase"), authed=True, rated=True),
                    **_errors(*authed_errors, "purchase_not_found"),
                },
                parameters=[
                    _query(
                        "purchaseId",
                        {"type": "string", "minLength": 1},
                        "From POST /v1/credits/checkout.",
                        required=True,
                    )
                ],
            )
        },
        "/v1/credits/balance": {
            "get": _op(
                "getBalance",
                "credits",
                "Read the account's quota",
                {
                    "200": _success(
                        "Plan, free uploads, credits and storage.", _ref("Balance"), authed=True, rated=True
                    ),
                    **_errors(*authed_errors),
                },
            )
        },
        "/webhooks/paypal": {
            "post": _op(
                "paypalWebhook",
                "credits",
                "PayPal webhook (verified through PayPal)",
                {
                    "200": {
                        "description": "Event accepted.",
                        "content": _json(
                            {"type": "object", "required": ["received"], "properties": {"received": {"const": True}}}
                        ),
                    },
                    **_errors(*BASE_ERRORS, "billing_disabled"),
                },
                security=PUBLIC,
                description="Every event is verified with PayPal (verify-webhook-signature, from the PAYPAL-* "
                "transmission headers) before it changes anything: an unverified one answers 400 invalid_request.",
                request_body={"required": True, "content": _json({"type": "object"})},
            )
        },
        "/v1/capabilities": _discovery(
            "getCapabilities",
            "Limits, MIME types, quotas, packs, error codes (live values)",
            "The capabilities document; with a valid key it adds the account's plan limits and quota.",
        ),
        "/v1/tool": _discovery("getToolCard", "MCP tool card and how to connect", "The tool card."),
        "/v1/schema": _discovery(
            "getSchema",
            "This OpenAPI document",
            "This document, with agent_contract added at the top level.",
        ),
        "/v1/examples": _discovery("getExamples", "Worked request/response examples", "The examples document."),
        "/.well-known/agent.json": _discovery(
            "getAgentCard", "Agent discovery card", "Name, auth, MCP endpoint and links to every document."
        ),
        "/AGENTS.md": {
            "get": _op(
                "getAgentsGuide",
                "discovery",
                "Integration guide for agents",
                {
                    "200": _text("text/markdown", "The guide."),
                    **_errors(*BASE_ERRORS, "invalid_api_key", "rate_limited"),
                },
                security=OPTIONAL_KEY,
            )
        },
        "/llms.txt": {
            "get": _op(
                "getLlmsTxt",
                "discovery",
                "Compact reference (llms.txt)",
                {
                    "200": _text("text/plain", "The reference."),
                    **_errors(*BASE_ERRORS, "invalid_api_key", "rate_limited"),
                },
                security=OPTIONAL_KEY,
            )
        },
        "/docs": {
            "get": _op(
                "getDocs",
                "discovery",
                "Swagger UI for this document (assets served locally)",
                {"200": _text("text/html", "The page."), **_errors(*BASE_ERRORS, "invalid_api_key", "rate_limited")},
                security=OPTIONAL_KEY,
            )
        },
        "/health": {
            "get": _op(
                "health",
                "operations",
                "Liveness",
                {"200": _success("The process is up.", _ref("Status")), **_errors(*BASE_ERRORS)},
                security=PUBLIC,
            )
        },
        "/ready": {
            "get": _op(
                "ready",
                "operations",
                "Readiness: the database and the blob store answer",
                {"200": _success("Ready to serve.", _ref("Status")), **_errors(*BASE_ERRORS)},
                security=PUBLIC,
            )
        },
        "/mcp": _mcp_paths(),
    }


def _upload_link_paths() -> dict[str, Any]:
    """SPEC section 14: upload links (the bytes go to a signed URL, never through a JSON body)."""
    authed_errors = (*BASE_ERRORS, *AUTH_ERRORS, "rate_limited")
    return {
        "/v1/uploads": {
            "post": _op(
                "createUploadLink",
                "outputs",
                "Create an upload link",
                {
                    "201": {
                        **_success(
                            "A signed, single-use link to PUT the bytes to without a key (UploadLink); once the "
                            "link was used, the replay of its output (OutputResource, Idempotent-Replayed).",
                            {"oneOf": [_ref("UploadLink"), _ref("OutputResource")]},
                            authed=True,
                            rated=True,
                        ),
                    },
                    **_errors(*authed_errors, *UPLOAD_ERRORS),
                },
                description="The fields of an upload without its content, plus optional sizeBytes and sha256 the "
                "bytes must match. Quota is checked here and charged when the bytes arrive. The Idempotency-Key "
                "names the eventual output and shares its namespace with POST /v1/outputs.",
                parameters=[_param("IdempotencyKey")],
                request_body={"required": True, "content": _json(_ref("CreateUpload"))},
            )
        },
        "/v1/uploads/{uploadId}": {
            "get": _op(
                "getUpload",
                "outputs",
                "Read an upload link's state",
                {
                    "200": _success(
                        "pending, completed (with outputId) or expired.", _ref("UploadStatus"), authed=True, rated=True
                    ),
                    **_errors(*authed_errors, "not_found"),
                },
                parameters=[{"name": "uploadId", "in": "path", "required": True, "schema": {"type": "string"}}],
            )
        },
        "/u/{token}": {
            "put": _op(
                "putUploadContent",
                "public",
                "Upload the bytes through an upload link",
                {
                    "201": {
                        **_success(
                            "The output (a repeated PUT of the same bytes is a replay).", _ref("OutputResource")
                        ),
                    },
                    **_errors(*BASE_ERRORS, *UPLOAD_ERRORS, "not_found", "rate_limited"),
                },
                security=PUBLIC,
                description="The raw bytes as the body (Content-Length or chunked), any Content-Type: the MIME type "
                "was fixed when the link was created. No Authorization: the signed link is the permission. An "
                "expired, altered or unknown link answers 404 not_found.",
                parameters=[{"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}],
                request_body={
                    "required": True,
                    "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
                },
            )
        },
    }


def _jsonrpc_schemas() -> dict[str, Schema]:
    """JSON-RPC 2.0 as ``/mcp`` speaks it (the MCP SDK's shapes; its errors may carry the REST code in ``data``)."""
    request_id = {"type": ["string", "number", "null"]}
    error_object = {
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "integer"},
            "message": {"type": "string"},
            "data": {"description": "Anything; for a refusal of this server, the REST error envelope."},
        },
    }
    return {
        "JsonRpcRequest": {
            "type": "object",
            "title": "JsonRpcRequest",
            "description": "A JSON-RPC 2.0 request (with id) or notification (without).",
            "required": ["jsonrpc", "method"],
            "properties": {
                "jsonrpc": {"const": "2.0"},
                "id": {"description": "A string or number (JSON-RPC 2.0); a message without one is a notification."},
                "method": {"type": "string"},
                "params": {"type": ["object", "null"]},
            },
        },
        "JsonRpcResponse": {
            "type": "object",
            "title": "JsonRpcResponse",
            "description": "The answer: a result, or a JSON-RPC error (an unknown method, bad parameters, …).",
            "required": ["jsonrpc", "id"],
            "properties": {"jsonrpc": {"const": "2.0"}, "id": request_id, "result": {}, "error": error_object},
        },
        "JsonRpcError": {
            "type": "object",
            "title": "JsonRpcError",
            "description": "A refused message. For this server's own refusals (body over the limit, nested too "
            "deep, bad Host or Origin) error.data is the REST error envelope, whose error is the REST code.",
            "required": ["jsonrpc", "id", "error"],
            "properties": {"jsonrpc": {"const": "2.0"}, "id": request_id, "error": error_object},
        },
    }


def _mcp_paths() -> dict[str, Any]:
    refused = {"content": _json(_ref("JsonRpcError")), "headers": _header_refs("X-Request-Id")}
    description = (
        "MCP Streamable HTTP transport (tools save_artifact, get_artifact, share, list_artifacts, delete_artifact). "
        "Authenticated with the same Bearer keys as the REST API (a missing or bad key is the REST 401 "
        "envelope). Stateless: GET and DELETE answer 405. A body over the limit is a JSON-RPC error naming "
        "payload_too_large and the create_upload_link tool. See /v1/tool."
    )
    return {
        "post": _op(
            "mcpPost",
            "mcp",
            "Send a JSON-RPC message to the MCP server",
            {
                "200": {
                    "description": "The JSON-RPC response (stateless server: JSON, no session, no event stream).",
                    "headers": _header_refs("X-Request-Id"),
                    "content": _json(_ref("JsonRpcResponse")),
                },
                "202": {
                    "description": "A notification was accepted (no body).",
                    "headers": _header_refs("X-Request-Id"),
                },
                "400": {
                    "description": "A JSON-RPC error: not JSON-RPC or not sent as application/json, over the size "
                    "limit (payload_too_large), nested deeper than 64 (invalid_request); or the REST envelope for a "
                    "key in the query string or two Authorization headers.",
                    "headers": _header_refs("X-Request-Id"),
                    "content": _json({"anyOf": [_ref("JsonRpcError"), _ref("ErrorEnvelope")]}),
                },
                "403": {"description": "A JSON-RPC error: the Origin is not allowed.", **refused},
                "406": {"description": "A JSON-RPC error: the Accept header allows no JSON.", **refused},
                "421": {"description": "A JSON-RPC error: the Host is not allowed.", **refused},
                **_errors(*AUTH_ERRORS, "server_error", "service_unavailable"),
            },
            description=description,
            request_body={"required": True, "content": _json(_ref("JsonRpcRequest"))},
        ),
    }


# --- links -----------------------------------------------------------------------------------

# Which operations a response feeds, and with which of its values (OpenAPI links): a client, or a
# fuzzer, follows them from a created output to reading, downloading, sharing and deleting it.
# A new route joins by adding its row here.
OUTPUT_ID_FROM_BODY = {"outputId": "$response.body#/outputId"}
LINKS: dict[tuple[str, str], dict[str, tuple[str, dict[str, str]]]] = {
    ("createOutput", "201"): {
        "GetOutput": ("getOutput", OUTPUT_ID_FROM_BODY),
        "GetOutputContent": ("getOutputContent", OUTPUT_ID_FROM_BODY),
        "CreateShareLink": ("createShareLink", OUTPUT_ID_FROM_BODY),
        "DeleteOutput": ("deleteOutput", OUTPUT_ID_FROM_BODY),
        "GetPublicContent": ("getPublicContent", OUTPUT_ID_FROM_BODY),
    },
    ("getOutput", "200"): {"DeleteOutput": ("deleteOutput", OUTPUT_ID_FROM_BODY)},
    ("createShareLink", "200"): {"GetOutput": ("getOutput", {"outputId": "$request.path.outputId"})},
}


def _with_links(paths: dict[str, Any]) -> dict[str, Any]:
    """``paths`` with the links of :data:`LINKS` attached to the responses they start from."""
    operations = {op["operationId"]: op for item in paths.values() for op in item.values()}
    for (source, status), links in LINKS.items():
        response = operations[source]["responses"][status]
        response["links"] = {
            name: {"operationId": target, "parameters": dict(parameters)}
            for name, (target, parameters) in links.items()
        }
    return paths

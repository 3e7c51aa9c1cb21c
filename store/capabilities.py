"""The ``/v1/capabilities`` document: every limit and rule of this server, as live values.

The shape is the hosted service's (seed 004: every top-level key, the same nesting, nothing
renamed); the values come from :class:`Settings`, the plan and pack tables, the validation models
and the error table, so the document cannot disagree with what the server enforces. With an
account the document is personalised: the plan-specific upload limit, upload rate and quota.
"""

from __future__ import annotations

from importlib import metadata as importlib_metadata
from typing import Any

from store.accounts import Account, quota_fields
from store.contract import discovery_contract
from store.errors import ERROR_KINDS
from store.ids import API_KEY_PREFIX
from store.limits import IDEMPOTENCY_RETENTION_MS, JSON_BODY_LIMIT
from store.plans import PACKS, PLAN_TIERS, max_upload_bytes, uploads_per_hour
from store.schemas import CUSTOM_MAX_BYTES, CUSTOM_MAX_DEPTH, CUSTOM_MAX_KEYS, OutputFields
from store.settings import GLOBAL_CEILING_BYTES, Settings
from store.validation import IDEMPOTENCY_KEY_MAX, SUPPORTED_MIME_TYPES

SERVER_NAME = "outputlayer"
OUTPUT_STATUSES = ("ready", "failed", "expired", "deleted")
LIST_DEFAULT_LIMIT = 20
LIST_MAX_LIMIT = 100
HOUR = 3600
MINUTE = 60

# Paths of the discovery family, all limited per IP by the same rolling window.
DISCOVERY_PATHS = (
    "/v1/capabilities",
    "/v1/tool",
    "/v1/schema",
    "/v1/examples",
    "/.well-known/agent.json",
    "/AGENTS.md",
    "/llms.txt",
    "/docs",
)


def server_version() -> str:
    """The installed distribution's version; a source checkout that is not installed reports 0.0.0+source."""
    try:
        return importlib_metadata.version(SERVER_NAME)
    except importlib_metadata.PackageNotFoundError:
        return "0.0.0+source"


def build_capabilities(settings: Settings, account: Account | None) -> dict[str, Any]:
    """The capabilities document; ``account`` (a valid key was sent) adds its plan limits and quota."""
    tier = account.plan_tier if account is not None else None
    return {
        "version": "1",
        "server": _server(settings),
        "upload": _upload(settings, tier),
        "fields": _fields(settings),
        "idempotency": _idempotency(settings),
        "retrieval": _retrieval(settings),
        "account": _account(settings, account),
        "auth": _auth(),
        "versioning": _versioning(),
        "pricing_model": _pricing_model(settings),
        "billing": _billing(settings),
        "error_codes": list(ERROR_KINDS),
        "errors": [
            {"code": code, "status": kind.status, "retryable": kind.retryable} for code, kind in ERROR_KINDS.items()
        ],
        "contact": _contact(),
        "output_statuses": list(OUTPUT_STATUSES),
        "listing": _listing(),
        "rate_limits": _rate_limits(settings, tier),
        "plan_tiers": {
            name: {
                "uploads_per_hour": plan.uploads_per_hour,
                "max_file_size_bytes": plan.max_file_size_bytes,
                "storage_limit_bytes": plan.storage_limit_bytes,
            }
            for name, plan in PLAN_TIERS.items()
        },
        "plan_enforcement": {
            "enabled": settings.plan_enforcement,
            "note": (
                "Plan tiers set the per-file limit and upload rate of each account."
                if settings.plan_enforcement
                else "Plan tiers are not enforced on this server: every account has the configured per-file "
                "limit (upload.max_size_bytes) and upload rate (rate_limits.authenticated)."
            ),
        },
        "mcp": {
            "http_endpoint": "/mcp",
            "transport": "streamable-http",
            "auth": "Authorization: Bearer <api_key>, the same keys as the REST API",
            "stdio_command": ["outputlayer", "mcp"],
            "tool_card": "/v1/tool",
        },
        "conventions": _conventions(),
        "agent_contract": discovery_contract(account is not None),
    }


def _server(settings: Settings) -> dict[str, Any]:
    return {
        "name": SERVER_NAME,
        "implementation": "OutputLayer for Python (self-hosted)",
        "version": server_version(),
        "base_url": settings.base_url or None,
        "public_base_url": settings.effective_public_base_url if settings.base_url else None,
    }


def _upload(settings: Settings, tier: str | None) -> dict[str, Any]:
    return {
        "max_size_bytes": max_upload_bytes(settings, tier),
        "global_ceiling_bytes": GLOBAL_CEILING_BYTES,
        "supported_mime_types": list(SUPPORTED_MIME_TYPES),
        "content_field_name": "content",
        "accepted_content_types": ["multipart/form-data", "application/json"],
        "json_body_limit_bytes": JSON_BODY_LIMIT,
        "note_json": (
            "For application/json, the content field must be a base64-encoded string. "
            f"Body limit is 1 MB ({JSON_BODY_LIMIT} bytes); use multipart/form-data for larger files."
        ),
        "note_multipart": (
            'Text fields mimeType, label, expiresAt, public ("true"/"false") and metadata (a JSON string) '
            "plus one file part named content, in any order."
        ),
        "mime_type_normalisation": "lower-cased; parameters such as ; charset=utf-8 are ignored",
        "size_enforcement": (
            "Upload size is enforced in two stages: (1) early rejection if a Content-Length header exceeds the "
            "limit, before the body is read; (2) mid-stream byte counting during upload, aborting and returning "
            "payload_too_large even when Content-Length is absent (chunked transfer). Nothing is charged and "
            "nothing is stored for a refused upload. "
            + (
                "Plan-specific limits apply: plan enforcement is active."
                if settings.plan_enforcement
                else "Plan enforcement is off on this server, so max_size_bytes applies to every account."
            )
        ),
    }


def _string_property(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """A property's schema with the ``null`` branch of an optional field unwrapped."""
    prop: dict[str, Any] = schema["properties"][name]
    for branch in prop.get("anyOf", ()):
        if branch.get("type") != "null":
            return {**prop, **branch}
    return prop


def _fields(settings: Settings) -> dict[str, Any]:
    # Limits are read from the validation model itself so the document cannot drift from it.
    schema = OutputFields.model_json_schema()
    metadata_schema = schema["$defs"]["Metadata"]
    tags = _string_property("tags", metadata_schema)
    metadata_text = {
        name: {"type": "string", "max_length": _string_property(name, metadata_schema)["maxLength"]}
        for name in ("agentId", "jobId", "sourceSystem")
    }
    return {
        "mime_type": {"required": True, "max_length": _string_property("mimeType", schema)["maxLength"]},
        "label": {
            "required": False,
            "max_length": _string_property("label", schema)["maxLength"],
            "note": "Used as the download filename; control characters are refused.",
        },
        "expires_at": {
            "required": False,
            "format": "ISO 8601 date-time string",
            "default_ttl_seconds": settings.default_ttl_seconds,
            "max_ttl_seconds": settings.max_ttl_seconds,
            "note": "Must carry a time zone, be in the future and at most max_ttl_seconds from now.",
        },
        "public": {"required": False, "type": "boolean", "default": False},
        "metadata": {
            "required": False,
            "properties": {
                **metadata_text,
                "tags": {
                    "type": "array",
                    "max_count": tags["maxItems"],
                    "max_item_length": tags["items"]["maxLength"],
                },
                "custom": {
                    "type": "object",
                    "max_bytes": CUSTOM_MAX_BYTES,
                    "max_depth": CUSTOM_MAX_DEPTH,
                    "max_keys": CUSTOM_MAX_KEYS,
                },
            },
            "note": "Other keys are refused with invalid_metadata.",
        },
    }


def _idempotency(settings: Settings) -> dict[str, Any]:
    return {
        "header": "Idempotency-Key",
        "required": True,
        "required_on": "POST /v1/outputs only — not required on any other endpoint",
        "scope": "per api key + per key value",
        "ttl_seconds": IDEMPOTENCY_RETENTION_MS // 1000,
        "key_constraints": {"max_length": IDEMPOTENCY_KEY_MAX, "charset": "printable ASCII (0x20-0x7E)"},
        "replay": {
            "behavior": "The same key with the same payload returns the original status (201) with the output's "
            "current representation and the header Idempotent-Replayed: true; nothing is charged or stored again.",
            "response_code": 201,
            "header": "Idempotent-Replayed",
        },
        "conflict": {
            "behavior": "The same key with a different payload is refused.",
            "response_code": 409,
            "error_code": "idempotency_conflict",
        },
        "concurrent_same_key": {
            "behavior": "If two requests arrive with the same Idempotency-Key simultaneously, only the first is "
            "processed. The second receives HTTP 503 with error code idempotency_in_flight and a Retry-After: 5 "
            "header. Retry with the identical key and payload after the specified wait.",
            "response_code": 503,
            "error_code": "idempotency_in_flight",
            "retry_after_seconds": ERROR_KINDS["idempotency_in_flight"].retry_after,
            "stale_after_seconds": settings.stale_upload_seconds,
        },
        "note": "Retry a failed upload with the same Idempotency-Key to get a fresh attempt, not a cached failure. "
        "Validation errors (4xx) are not remembered.",
    }


def _retrieval(settings: Settings) -> dict[str, Any]:
    public_base = settings.effective_public_base_url if settings.base_url else "/public"
    return {
        "modes": [
            {
                "id": "authenticated",
                "field": "contentUrl",
                "description": "Authenticated private download. Use GET /v1/outputs/{id}/content with your API key. "
                "Returns raw bytes with the stored MIME type. Content-Disposition is set to attachment; "
                'filename="{label}" when label was provided at creation. Supports Range and If-None-Match. '
                "For a public output it answers 302 with Location: publicUrl.",
                "auth_required": True,
                "available_when": "status: ready",
            },
            {
                "id": "public_cdn",
                "field": "publicUrl",
                "description": "Public URL. Available only when the output was created with public: true. Served "
                f"without authentication at {public_base}/{{outputId}} (this server, or the CDN its operator "
                "configured). Safe to embed in messages or share with end users.",
                "auth_required": False,
                "available_when": "status: ready AND public: true at creation",
                "opt_in": True,
                "base_url": public_base,
                "note": "public: true cannot be added retroactively in V1; use a share link instead.",
            },
            {
                "id": "share_link",
                "field": "shareUrl",
                "description": "Signed, expiring link to a private output: POST /v1/outputs/{id}/share with "
                '{"expiresInSeconds": n}. The link serves the bytes without a key until it expires, never after '
                "the output expires, and dies when the output is deleted.",
                "auth_required": False,
                "available_when": "status: ready",
                "endpoint": "POST /v1/outputs/{id}/share",
            },
            {
                "id": "upload_link",
                "field": "uploadUrl",
                "description": "Signed, single-use link to PUT an artifact's bytes to without a key (curl -T FILE "
                "URL): POST /v1/uploads with the upload's fields (no content) and optional sizeBytes/sha256. "
                "Quota is checked then and charged when the bytes land.",
                "auth_required": False,
                "available_when": "until uploadExpiresAt (OUTPUTLAYER_UPLOAD_LINK_TTL_SECONDS), once",
                "endpoint": "POST /v1/uploads",
            },
        ],
        "url_nulling_rules": {
            "description": "contentUrl and publicUrl are null for any status other than ready, and for a ready "
            "output whose expiresAt has passed (expiry is evaluated on every read).",
            "statuses_with_null_urls": ["failed", "expired", "deleted"],
        },
    }


def _account(settings: Settings, account: Account | None) -> dict[str, Any]:
    section: dict[str, Any] = {
        "free_tier_initial_uploads": settings.free_uploads,
        "free_tier_initial_storage_bytes": settings.storage_limit_bytes,
        "note": "These are the initial free-tier defaults assigned at registration. Current account state is "
        "returned in X-OutputLayer-* response headers on authenticated requests, by GET /v1/credits/balance, "
        "and here when this document is requested with an API key.",
        "authenticated": account is not None,
    }
    if account is not None:
        section.update(
            {
                **quota_fields(account),
                "maxUploadBytes": max_upload_bytes(settings, account.plan_tier),
                "uploadsPerHour": uploads_per_hour(settings, account.plan_tier),
            }
        )
    return section


def _auth() -> dict[str, Any]:
    return {
        "scheme": "Bearer",
        "header": "Authorization",
        "register_endpoint": "/v1/keys/register",
        "key_prefix": API_KEY_PREFIX,
        "key_format": f"{API_KEY_PREFIX} followed by 64 lowercase hex characters; shown once, at registration",
        "token_type": "Raw API key issued by POST /v1/keys/register — not an OAuth JWT. Send as: "
        "Authorization: Bearer <api_key>. OAuth Bearer token (JWT) support is reserved for a future version.",
        "x_api_key_supported": False,
        "query_string_keys": "refused with 400 invalid_request on every route",
    }


def _versioning() -> dict[str, Any]:
    return {
        "current_version": "1",
        "supported_versions": ["1"],
        "breaking_change_policy": "Removing or renaming fields, changing field types, removing endpoints, adding "
        "required parameters, or changing HTTP status codes for existing scenarios require a new major version "
        "(/v2/). Non-breaking additions stay in /v1/.",
        "deprecation_policy": "Deprecated endpoints coexist for a minimum of 6 months. Responses from deprecated "
        "endpoints include Deprecation and Sunset HTTP headers and an agent_contract.migration_note field with "
        "migration instructions.",
    }


def _pricing_model(settings: Settings) -> dict[str, Any]:
    return {
        "free_trial": {
            "uploads": settings.free_uploads,
            "storage_bytes": settings.storage_limit_bytes,
            "note": "Free trial is assigned at registration. No payment required.",
        },
        "credit_cost_per_upload": 1,
        "deduction_order": "free_trial quota first, then paid credits",
        "packs": [
            {
                "packId": pack.pack_id,
                "label": pack.label,
                "credits": pack.credits,
                "storage_bytes": pack.storage_bytes,
                "price_usd": pack.price_usd,
            }
            for pack in PACKS.values()
        ],
        "notes": [
            "Credits never expire.",
            "Storage quota is pooled across the account and increases with each pack purchase.",
            "1 credit is deducted per successful upload, regardless of file size (subject to storage_bytes limit).",
            "Idempotent replays, refused uploads and deletes are not charged; a delete does not refund the unit.",
        ],
    }


def _billing(settings: Settings) -> dict[str, Any]:
    enabled = settings.billing_enabled
    return {
        "enabled": enabled,
        "note": (
            "Credit packs are sold through PayPal: a person approves the checkoutUrl, then verify reports "
            "confirmed once the payment is captured and the credits are added (exactly once)."
            if enabled
            else "Billing is not configured on this server: POST /v1/credits/checkout answers 503 billing_disabled. "
            "Ask the operator to grant credits (outputlayer accounts grant)."
        ),
        "checkout_endpoint": "POST /v1/credits/checkout",
        "verify_endpoint": "GET /v1/credits/verify",
        "balance_endpoint": "GET /v1/credits/balance",
        "webhook_endpoint": "POST /webhooks/paypal",
        "provider": "PayPal",
        "payment_flow": [
            "POST /v1/credits/checkout → returns purchaseId + checkoutUrl",
            "Redirect user to checkoutUrl to approve payment on PayPal",
            "PayPal fires CHECKOUT.ORDER.APPROVED → server captures funds (no credits yet)",
            "PayPal fires PAYMENT.CAPTURE.COMPLETED → server adds credits + storage atomically",
            "Poll GET /v1/credits/verify?purchaseId={purchaseId} until status is confirmed",
        ],
        "packs": [
            {
                "packId": pack.pack_id,
                "label": pack.label,
                "creditsToAdd": pack.credits,
                "storageBytesToAdd": pack.storage_bytes,
                "priceUsd": pack.price_usd,
            }
            for pack in PACKS.values()
        ],
    }


def _contact() -> dict[str, Any]:
    # A self-hosted server has no vendor mailbox; null says so without inventing an address.
    return {
        "support": None,
        "security": None,
        "note": "This is a self-hosted OutputLayer server: contact the operator who gave you its URL. Report "
        "defects in the software itself to the OutputLayer for Python project.",
    }


def _listing() -> dict[str, Any]:
    return {
        "endpoint": "GET /v1/outputs",
        "default_limit": LIST_DEFAULT_LIMIT,
        "max_limit": LIST_MAX_LIMIT,
        "ordering": "id DESC — newest output first",
        "pagination": "cursor-based; pass pageInfo.nextCursor from the previous response as the cursor query parameter",
        "filters": {
            "limit": {"type": "integer", "min": 1, "max": LIST_MAX_LIMIT, "default": LIST_DEFAULT_LIMIT},
            "cursor": {
                "type": "string",
                "description": "Opaque cursor from previous pageInfo.nextCursor. Not required to match a real "
                "output id.",
            },
            "status": {
                "type": "string",
                "valid_values": list(OUTPUT_STATUSES),
                "description": "Exact-match filter. Omit to return all statuses.",
            },
            "mimeType": {"type": "string", "description": "Exact-match filter on MIME type. Omit to return all types."},
        },
    }


def _window(limit: int, seconds: int) -> dict[str, int]:
    return {"limit": limit, "window_seconds": seconds}


def _rate_limits(settings: Settings, tier: str | None) -> dict[str, Any]:
    limits = settings.rate_limits
    uploads = uploads_per_hour(settings, tier) if tier is not None else limits.uploads_per_hour
    upload_limit: dict[str, Any] = _window(uploads, HOUR)
    if settings.plan_enforcement and tier is None:
        upload_limit["note"] = "Per plan tier (plan_tiers.*.uploads_per_hour); send your key to see yours."
    return {
        "enabled": settings.rate_limits_enabled,
        "note": "All limits use rolling windows. Authenticated limits are per API key (Authorization header "
        "value). Discovery limits are per IP address. A refused request answers 429 rate_limited with "
        "Retry-After; successful ones carry RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset. "
        + ("" if settings.rate_limits_enabled else "Rate limits are disabled on this server."),
        "authenticated": {
            "POST /v1/outputs": upload_limit,
            "GET /v1/outputs": _window(limits.reads_per_hour, HOUR),
            "GET /v1/outputs/{id}": _window(limits.reads_per_hour, HOUR),
            "GET /v1/outputs/{id}/content": _window(limits.reads_per_hour, HOUR),
            "DELETE /v1/outputs/{id}": _window(limits.deletes_per_hour, HOUR),
            "credits_endpoints": {**_window(limits.credits_per_hour, HOUR), "note": "/v1/credits/*"},
        },
        "discovery": {f"GET {path}": _window(limits.discovery_per_minute, MINUTE) for path in DISCOVERY_PATHS},
        "registration": {
            "POST /v1/keys/register": {**_window(limits.registrations_per_hour, HOUR), "key": "per IP"},
        },
    }


def _conventions() -> dict[str, Any]:
    return {
        "output_resource_fields": "camelCase (outputId, mimeType, sizeBytes, sha256, createdAt, expiresAt, "
        "publicUrl, contentUrl, deletedAt) — V1 convention; changing to snake_case is a breaking change "
        "reserved for /v2/.",
        "error_envelope_fields": "snake_case (error, message, request_id, agent_contract)",
        "agent_contract_fields": "snake_case (content_accessible, safe_to_share, expires_in_seconds, next_actions, "
        "migration_note)",
        "action_codes": "verb_noun lowercase — additive-only in /v1/; removing or renaming codes is breaking",
        "timestamps": "ISO 8601 UTC with milliseconds and Z suffix (2026-03-11T14:22:00.000Z)",
        "sizes": "bytes only (integer)",
        "id_format": "{prefix}_{monotonic_ulid} — out_, key_, purch_, req_",
        "request_id": "every response carries X-Request-Id; error bodies repeat it as request_id",
    }

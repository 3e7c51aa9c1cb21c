"""The store: every rule of the artifact service, with no knowledge of HTTP or MCP.

Adapters import only the names below.
"""

from __future__ import annotations

# Use cases beyond the service's own methods, called as ``module.function(service, …)``.
from store import content_sources, previews, sharing, upload_links
from store.answers import error_envelope, gone_body, gone_error
from store.billing import WEBHOOK_BODY_LIMIT
from store.blobs import BlobStore, open_blob_store
from store.capabilities import LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT, SERVER_NAME, build_capabilities, server_version
from store.clock import Clock, ManualClock, SystemClock, iso_ms, parse_iso
from store.content_sources import INLINE_CONTENT_MAX_BYTES, Inline
from store.contract import (
    balance_contract,
    compact_contract,
    discovery_contract,
    error_contract,
    list_contract,
    register_contract,
    share_contract,
    upload_link_contract,
)
from store.db import Database, migrate, open_database
from store.errors import (
    ERROR_KINDS,
    StoreError,
    invalid_request,
    missing_api_key,
    output_deleted,
    output_expired,
    output_not_found,
    service_unavailable,
    upload_not_completed,
)
from store.ids import API_KEY_PREFIX
from store.jsonbounds import MAX_DEPTH, check_depth, nesting_depth, parse_json, parse_json_object
from store.limits import JSON_BODY_LIMIT, SHARE_DEFAULT_SECONDS, SHARE_MIN_SECONDS
from store.local import acting_account
from store.owned_reads import OwnedOutput
from store.plans import max_upload_bytes
from store.rate_families import RateFamily, UseCase, family_of
from store.ratelimit import RateLimited, RateState
from store.schemas import (
    CURSOR_PATTERN,
    AgentContract,
    Balance,
    Checkout,
    CreateOutput,
    CreateShareLink,
    CreateUpload,
    ErrorEnvelope,
    Metadata,
    OutputList,
    OutputListItem,
    OutputResource,
    PageInfo,
    Registered,
    RegisterKey,
    ShareLink,
    UploadLink,
    UploadStatus,
)
from store.service import (
    Account,
    ArtifactService,
    CheckReport,
    Content,
    OutputResult,
    SweepReport,
    UploadResult,
    UploadSession,
)
from store.settings import Settings, SettingsError
from store.sweeper import run_sweeper

# Facts and builders the adapters render with (discovery documents, tool schemas, error contracts).
from store.uploads import json_body_too_large, too_large
from store.validation import (
    IDEMPOTENCY_KEY_MAX,
    SUPPORTED_MIME_TYPES,
    check_idempotency_key,
    parse_request,
    store_error_from_validation,
)
from store.views import Urls, output_fields, render_output

__all__ = [
    "API_KEY_PREFIX",
    "CURSOR_PATTERN",
    "ERROR_KINDS",
    "IDEMPOTENCY_KEY_MAX",
    "INLINE_CONTENT_MAX_BYTES",
    "JSON_BODY_LIMIT",
    "LIST_DEFAULT_LIMIT",
    "LIST_MAX_LIMIT",
    "MAX_DEPTH",
    "SERVER_NAME",
    "SHARE_DEFAULT_SECONDS",
    "SHARE_MIN_SECONDS",
    "SUPPORTED_MIME_TYPES",
    "WEBHOOK_BODY_LIMIT",
    "Account",
    "AgentContract",
    "ArtifactService",
    "Balance",
    "BlobStore",
    "CheckReport",
    "Checkout",
    "Clock",
    "Content",
    "CreateOutput",
    "CreateShareLink",
    "CreateUpload",
    "Database",
    "ErrorEnvelope",
    "Inline",
    "ManualClock",
    "Metadata",
    "OutputList",
    "OutputListItem",
    "OutputResource",
    "OutputResult",
    "OwnedOutput",
    "PageInfo",
    "RateFamily",
    "RateLimited",
    "RateState",
    "RegisterKey",
    "Registered",
    "Settings",
    "SettingsError",
    "ShareLink",
    "StoreError",
    "SweepReport",
    "SystemClock",
    "UploadLink",
    "UploadResult",
    "UploadSession",
    "UploadStatus",
    "Urls",
    "UseCase",
    "acting_account",
    "balance_contract",
    "build_capabilities",
    "check_depth",
    "check_idempotency_key",
    "compact_contract",
    "content_sources",
    "discovery_contract",
    "error_contract",
    "error_envelope",
    "family_of",
    "gone_body",
    "gone_error",
    "invalid_request",
    "iso_ms",
    "json_body_too_large",
    "list_contract",
    "max_upload_bytes",
    "migrate",
    "missing_api_key",
    "nesting_depth",
    "open_blob_store",
    "open_database",
    "open_service",
    "output_deleted",
    "output_expired",
    "output_fields",
    "output_not_found",
    "parse_iso",
    "parse_json",
    "parse_json_object",
    "parse_request",
    "previews",
    "register_contract",
    "render_output",
    "run_sweeper",
    "server_version",
    "service_unavailable",
    "share_contract",
    "sharing",
    "store_error_from_validation",
    "too_large",
    "upload_link_contract",
    "upload_links",
    "upload_not_completed",
]


def open_service(settings: Settings, *, clock: Clock | None = None, run_migrations: bool = True) -> ArtifactService:
    """Build the service a process runs on: migrate the schema, open the database and the blob store."""
    if run_migrations:
        migrate(settings.database_url)
    db = open_database(settings.database_url, settings.db_pool_size)
    try:
        blobs = open_blob_store(settings.blob_url)
    except BaseException:
        db.close()
        raise
    return ArtifactService(settings, db, blobs, clock=clock)

"""The store: every rule of the artifact service, with no knowledge of HTTP or MCP.

Adapters import only the names below.
"""

from __future__ import annotations

# Use cases beyond the service's own methods, called as ``module.function(service, …)``.
from store import direct, previews, sharing, upload_links
from store.billing import WEBHOOK_BODY_LIMIT
from store.blobs import BlobStore, open_blob_store
from store.clock import Clock, ManualClock, SystemClock, iso_ms
from store.db import Database, migrate, open_database
from store.errors import ERROR_KINDS, StoreError
from store.jsonbounds import MAX_DEPTH, check_depth, nesting_depth, parse_json, parse_json_object
from store.ratelimit import RateLimited, RateState
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

__all__ = [
    "ERROR_KINDS",
    "MAX_DEPTH",
    "WEBHOOK_BODY_LIMIT",
    "Account",
    "ArtifactService",
    "BlobStore",
    "CheckReport",
    "Clock",
    "Content",
    "Database",
    "ManualClock",
    "OutputResult",
    "RateLimited",
    "RateState",
    "Settings",
    "SettingsError",
    "StoreError",
    "SweepReport",
    "SystemClock",
    "UploadResult",
    "UploadSession",
    "check_depth",
    "direct",
    "iso_ms",
    "migrate",
    "nesting_depth",
    "open_blob_store",
    "open_database",
    "open_service",
    "parse_json",
    "parse_json_object",
    "previews",
    "sharing",
    "upload_links",
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

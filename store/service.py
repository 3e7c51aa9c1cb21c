"""The artifact service: the one door to state. Every use case of REST and MCP is a method here.

Upload protocol (see :class:`UploadSession`): the caller opens a session with the account and the
Idempotency-Key *before* reading the body. Opening settles what can be known up front, in one
transaction: a completed key turns the session into a replay check; a key in flight answers 503;
otherwise the upload budget and quota are checked (``Content-Length`` lets a hopeless upload be
refused before a byte is sent) and the key is claimed with a fresh output id. The caller then feeds
fields and content chunks in whatever order the wire brings them; content is hashed, counted and
streamed to the blob store as it arrives. Finishing validates the fields, computes the fingerprint
and, in one transaction with the account row locked, charges the unit, adds the storage, inserts
the output and completes the key. Any failure releases the key and removes the blob.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import functools
import hashlib
import json
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import anyio
from pydantic import ValidationError

from store import admin, ratelimit, sharing
from store.base64text import unwrap_base64
from store.billing import Billing
from store.blobs import BlobStore, BlobWriter
from store.blobs.base import SMALL_READ_BYTES
from store.clock import Clock, SystemClock
from store.contract import balance_contract, list_contract, register_contract
from store.db import ACCOUNT_COLUMNS, Database, Tx
from store.errors import (
    StoreError,
    idempotency_conflict,
    invalid_request,
    output_deleted,
    output_expired,
    output_not_found,
    upload_not_completed,
)
from store.ids import IdFactory, key_digest, looks_like_api_key, new_api_key
from store.plans import max_upload_bytes, uploads_per_hour
from store.ratelimit import RateState
from store.schemas import CURSOR_PATTERN, CreateOutput, RegisterKey
from store.settings import Settings
from store.upload_keys import key_held_by_link, prune_upload_links
from store.validation import (
    FORM_FIELDS,
    CheckedFields,
    check_idempotency_key,
    fingerprint,
    parse_form_field,
    store_error_from_validation,
    upload_wire,
    validate_fields,
)
from store.views import OUTPUT_COLUMNS, Urls, effective_status, output_fields, render_output

JSON_BODY_LIMIT = 1_048_576
# Bytes a multipart body may carry besides the content (text fields, boundaries, part headers).
FORM_ENVELOPE_BYTES = 16_384
IDEMPOTENCY_RETENTION_MS = 7 * 86_400_000
# An in-flight slot with no progress for OUTPUTLAYER_STALE_UPLOAD_SECONDS (default 60) is reclaimed;
# an upload that is still receiving bytes refreshes its slot six times per such period.
HEARTBEATS_PER_STALE_PERIOD = 6
SWEEP_BATCH = 200
READ_WINDOW = 3600


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    plan_tier: str
    free_remaining: int
    credits_remaining: int
    storage_used_bytes: int
    storage_limit_bytes: int

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Account:
        return cls(
            id=row["id"],
            plan_tier=row["plan_tier"],
            free_remaining=int(row["free_remaining"]),
            credits_remaining=int(row["credits_remaining"]),
            storage_used_bytes=int(row["storage_used_bytes"]),
            storage_limit_bytes=int(row["storage_limit_bytes"]),
        )


@dataclass(frozen=True, slots=True)
class UploadResult:
    body: dict[str, Any]
    replayed: bool
    account: Account


@dataclass(frozen=True, slots=True)
class OutputResult:
    """An output in its effective status; ``gone`` is true for expired and deleted ones."""

    body: dict[str, Any]
    status: str

    @property
    def gone(self) -> bool:
        return self.status in ("expired", "deleted")


@dataclass(frozen=True, slots=True)
class Content:
    """What it takes to send an output's bytes; ``redirect`` is set when they live at a public URL."""

    output_id: str
    mime_type: str
    size_bytes: int
    sha256: str
    label: str | None
    public: bool
    blob_key: str
    redirect: str | None = None
    # Until when these bytes are served through the door that opened them (the output's expiry, or
    # a share link's own earlier one): what a preview page counts down to.
    available_until_ms: int | None = None


@dataclass(frozen=True, slots=True)
class SweepReport:
    expired: int = 0
    blobs_deleted: int = 0
    stale_slots: int = 0
    pruned_events: int = 0


@dataclass(slots=True)
class CheckReport:
    accounts: int = 0
    outputs: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Claim:
    output_id: str
    replay_fingerprint: str | None
    replay_output_id: str | None
    previous_output_id: str | None
    rate: RateState | None


class ArtifactService:
    """Use cases over a database, a blob store and a clock; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        blobs: BlobStore,
        *,
        clock: Clock | None = None,
        ids: IdFactory | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.blobs = blobs
        self.clock = clock or SystemClock()
        self.ids = ids or IdFactory()
        self.urls = Urls(settings.base_url, settings.effective_public_base_url)
        self.signer = sharing.LinkSigner(db)
        self.stale_slot_ms = settings.stale_upload_seconds * 1000
        self.billing = Billing(settings, db, self.clock, self.ids)

    def close(self) -> None:
        self.db.close()
        self.blobs.close()

    # --- accounts ----------------------------------------------------------------------------

    async def register(self, document: Any, client_ip: str) -> tuple[dict[str, Any], RateState | None]:
        """Create an account and its key; the key is returned once and only its digest is stored."""
        try:
            request = RegisterKey.model_validate(document if document is not None else {})
        except ValidationError as exc:
            error = store_error_from_validation(exc)
            raise (error or invalid_request("Invalid registration body.")) from None
        api_key = new_api_key()
        account_id = self.ids.new("key")
        now = self.clock.now_ms()

        def insert(tx: Tx) -> RateState | None:
            limit = self.settings.rate_limits.registrations_per_hour
            rate = self._consume_rate(tx, f"register:{client_ip}", limit, 3600)
            tx.execute(
                "INSERT INTO accounts (id, key_hash, email, plan_tier, free_remaining, credits_remaining, "
                "storage_used_bytes, storage_limit_bytes, created_at) VALUES (?, ?, ?, 'free', ?, 0, 0, ?, ?)",
                (
                    account_id,
                    key_digest(api_key),
                    request.email,
                    self.settings.free_uploads,
                    self.settings.storage_limit_bytes,
                    now,
                ),
            )
            return rate

        rate = await self.db.write(insert)
        return {"apiKey": api_key, "accountId": account_id, "agent_contract": register_contract()}, rate

    async def authenticate(self, authorization: str | None) -> Account:
        """The account of an ``Authorization: Bearer`` header."""
        if not authorization:
            raise StoreError("missing_api_key", "Send your API key as Authorization: Bearer <key>.")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise StoreError("missing_api_key", "Send your API key as Authorization: Bearer <key>.")
        if not looks_like_api_key(token):
            raise StoreError("invalid_api_key", "The API key is not valid.")
        digest = key_digest(token)
        row = await self.db.read(
            lambda tx: tx.one(f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE key_hash = ?", (digest,))
        )
        if row is None:
            raise StoreError("invalid_api_key", "The API key is not valid.")
        return Account.from_row(row)

    async def account(self, account_id: str) -> Account:
        row = await self.db.read(
            lambda tx: tx.one(f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?", (account_id,))
        )
        if row is None:
            raise StoreError("invalid_api_key", "The account of this API key no longer exists.")
        return Account.from_row(row)

    def balance(self, account: Account) -> dict[str, Any]:
        return {
            "accountId": account.id,
            "planTier": account.plan_tier,
            "freeRemaining": account.free_remaining,
            "creditsRemaining": account.credits_remaining,
            "storageUsedBytes": account.storage_used_bytes,
            "storageLimitBytes": account.storage_limit_bytes,
            "agent_contract": balance_contract(account.free_remaining, account.credits_remaining),
        }

    def grant(self, account_id: str, credits: int, storage_bytes: int) -> Account:
        """Operator grant (``outputlayer accounts grant``): add credits and storage to an account."""
        if credits < 0 or storage_bytes < 0:
            raise invalid_request("Grants must be zero or positive.")

        def apply(tx: Tx) -> Account:
            row = tx.lock_account(account_id)
            if row is None:
                raise StoreError("invalid_request", f"No account {account_id}.")
            tx.execute(
                "UPDATE accounts SET credits_remaining = credits_remaining + ?, "
                "storage_limit_bytes = storage_limit_bytes + ? WHERE id = ?",
                (credits, storage_bytes, account_id),
            )
            updated = tx.one(f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?", (account_id,))
            assert updated is not None
            return Account.from_row(updated)

        return self.db.write_sync(apply)

    def list_accounts(self, limit: int) -> list[dict[str, Any]]:
        """Operator listing (``outputlayer accounts list``); see :mod:`store.admin`."""
        return admin.list_accounts(self.db, limit)

    def describe_account(self, account_id: str) -> dict[str, Any]:
        """Operator view of one account and its purchases (``outputlayer accounts show``)."""
        return admin.describe_account(self.db, account_id)

    # --- billing -----------------------------------------------------------------------------

    async def checkout(self, account: Account, document: Any) -> dict[str, Any]:
        """Start a pack purchase (``billing_disabled`` until PayPal is configured); see :mod:`store.billing`."""
        return await self.billing.checkout(account.id, document)

    async def verify_purchase(self, account: Account, purchase_id: str) -> dict[str, Any]:
        return await self.billing.verify(account.id, purchase_id)

    async def paypal_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> dict[str, Any]:
        return await self.billing.webhook(headers, raw_body)

    # --- rate limits -------------------------------------------------------------------------

    def _consume_rate(self, tx: Tx, bucket: str, limit: int, window_seconds: int) -> RateState | None:
        if not self.settings.rate_limits_enabled:
            return None
        return ratelimit.consume(tx, bucket, limit, window_seconds, self.clock.now_ms())

    async def enforce_rate(self, family: str, subject: str) -> RateState | None:
        """Count one request of a route family ("reads", "deletes", "credits", "discovery")."""
        if not self.settings.rate_limits_enabled:
            return None
        limits = self.settings.rate_limits
        limit, window = {
            "reads": (limits.reads_per_hour, 3600),
            "deletes": (limits.deletes_per_hour, 3600),
            "credits": (limits.credits_per_hour, 3600),
            "discovery": (limits.discovery_per_minute, 60),
        }[family]
        return await self.db.write(lambda tx: self._consume_rate(tx, f"{family}:{subject}", limit, window))

    # --- uploads -----------------------------------------------------------------------------

    def upload_limit(self, account: Account) -> int:
        return max_upload_bytes(self.settings, account.plan_tier)

    async def begin_upload(
        self,
        account: Account,
        idempotency_key: str | None,
        *,
        content_length: int | None,
        content_type: str | None = None,
        wire: str | None = None,
        via_link: bool = False,
    ) -> UploadSession:
        """Open an upload (see the module docstring).

        ``wire`` is "json" or "multipart" (taken from ``content_type`` when not given) or "direct"
        for callers that hand over the bytes themselves, such as MCP. ``via_link`` is set by the upload
        link (store/upload_links.py) whose Idempotency-Key this is; any other upload with a key an upload
        link holds is a conflict (the two routes share one key namespace).
        """
        key = check_idempotency_key(idempotency_key)
        wire = wire or upload_wire(content_type)
        limit = self.upload_limit(account)
        if content_length is not None:
            envelope = {"json": JSON_BODY_LIMIT, "direct": limit}.get(wire, limit + FORM_ENVELOPE_BYTES)
            if content_length > envelope:
                raise _too_large(JSON_BODY_LIMIT if wire == "json" else limit, json_body=wire == "json")
        floor = _minimum_content_bytes(wire, content_length)
        output_id = self.ids.new("out")
        now = self.clock.now_ms()
        claim = await self.db.write(lambda tx: self._claim(tx, account, key, output_id, floor, now, via_link))
        if claim.previous_output_id is not None:
            await self.blobs.delete(_blob_key(account.id, claim.previous_output_id))
        session = UploadSession(self, account, key, claim, None, limit, wire)
        if claim.replay_fingerprint is None:
            try:
                session._writer = await self.blobs.writer(_blob_key(account.id, output_id), "application/octet-stream")
            except BaseException as exc:
                # The claim is already committed: a blob store that cannot even open a write must not
                # keep the key busy (SPEC section 6: a failed upload releases it).
                with anyio.CancelScope(shield=True):
                    await session.abort()
                if isinstance(exc, StoreError | OSError):
                    raise _blob_failure() from exc
                raise
        return session

    def _claim(
        self, tx: Tx, account: Account, key: str, output_id: str, floor: int, now: int, via_link: bool = False
    ) -> _Claim:
        if not via_link and key_held_by_link(tx, account.id, key):
            raise idempotency_conflict()
        slot = tx.one(
            "SELECT state, fingerprint, output_id, created_at, heartbeat_at FROM idempotency_keys "
            "WHERE account_id = ? AND key = ?",
            (account.id, key),
        )
        previous = None
        if slot is not None:
            if slot["state"] == "completed" and slot["created_at"] > now - IDEMPOTENCY_RETENTION_MS:
                return _Claim(output_id, slot["fingerprint"], slot["output_id"], None, None)
            if slot["state"] == "in_flight" and slot["heartbeat_at"] > now - self.stale_slot_ms:
                raise StoreError(
                    "idempotency_in_flight",
                    "A request with this Idempotency-Key is already being processed. "
                    "Retry with the same key and payload after 5 seconds.",
                )
            if slot["state"] == "in_flight":
                previous = str(slot["output_id"])
        rate = self._consume_rate(tx, f"uploads:{account.id}", uploads_per_hour(self.settings, account.plan_tier), 3600)
        current = tx.one(f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?", (account.id,))
        if current is None:
            raise StoreError("invalid_api_key", "The account of this API key no longer exists.")
        _check_quota(Account.from_row(current), floor)
        if slot is None:
            claimed = tx.execute(
                "INSERT INTO idempotency_keys (account_id, key, state, fingerprint, output_id, created_at, "
                "heartbeat_at) VALUES (?, ?, 'in_flight', NULL, ?, ?, ?) ON CONFLICT (account_id, key) DO NOTHING",
                (account.id, key, output_id, now, now),
            )
        else:
            claimed = tx.execute(
                "UPDATE idempotency_keys SET state = 'in_flight', fingerprint = NULL, output_id = ?, created_at = ?, "
                "heartbeat_at = ? WHERE account_id = ? AND key = ? AND output_id = ?",
                (output_id, now, now, account.id, key, slot["output_id"]),
            )
        if claimed != 1:
            raise StoreError(
                "idempotency_in_flight",
                "A request with this Idempotency-Key is already being processed. "
                "Retry with the same key and payload after 5 seconds.",
            )
        return _Claim(output_id, None, None, previous, rate)

    async def _settle(self, session: UploadSession, fields: CheckedFields, digest: str, fp: str) -> UploadResult:
        account = session.account
        output_id = session.claim.output_id
        size = session.size
        now = self.clock.now_ms()

        def settle(tx: Tx) -> tuple[dict[str, Any], Account]:
            locked = tx.lock_account(account.id)
            if locked is None:
                raise StoreError("invalid_api_key", "The account of this API key no longer exists.")
            current = Account.from_row(locked)
            _check_quota(current, size)
            free_used = 1 if current.free_remaining > 0 else 0
            tx.execute(
                "UPDATE accounts SET free_remaining = free_remaining - ?, credits_remaining = credits_remaining - ?, "
                "storage_used_bytes = storage_used_bytes + ? WHERE id = ?",
                (free_used, 1 - free_used, size, account.id),
            )
            row = {
                "id": output_id,
                "account_id": account.id,
                "status": "ready",
                "label": fields.label,
                "mime_type": fields.mime_type,
                "size_bytes": size,
                "sha256": digest,
                "public": 1 if fields.public else 0,
                "metadata": json.dumps(fields.metadata, separators=(",", ":"), ensure_ascii=False),
                "blob_key": _blob_key(account.id, output_id),
                "created_at": now,
                # The default expiry counts from the creation instant, so expiresAt - createdAt is the TTL exactly.
                "expires_at": fields.expires_at_ms
                if fields.expires_at_raw is not None
                else now + self.settings.default_ttl_seconds * 1000,
                "deleted_at": None,
            }
            _insert_output(tx, row)
            completed = tx.execute(
                "UPDATE idempotency_keys SET state = 'completed', fingerprint = ?, heartbeat_at = ? "
                "WHERE account_id = ? AND key = ? AND output_id = ? AND state = 'in_flight'",
                (fp, now, account.id, session.key, output_id),
            )
            if completed != 1:
                raise StoreError("upload_failed", "The upload took too long and its slot was reclaimed. Retry.")
            after = Account(
                current.id,
                current.plan_tier,
                current.free_remaining - free_used,
                current.credits_remaining - (1 - free_used),
                current.storage_used_bytes + size,
                current.storage_limit_bytes,
            )
            return render_output(row, now, self.urls), after

        body, after = await self.db.write(settle)
        return UploadResult(body, False, after)

    async def _replay(self, session: UploadSession, fp: str) -> UploadResult:
        if fp != session.claim.replay_fingerprint:
            raise idempotency_conflict()
        output_id = session.claim.replay_output_id
        row = await self.db.read(lambda tx: tx.one(f"SELECT {OUTPUT_COLUMNS} FROM outputs WHERE id = ?", (output_id,)))
        if row is None:
            raise StoreError("server_error", "The output of this Idempotency-Key is missing.")
        return UploadResult(render_output(row, self.clock.now_ms(), self.urls), True, session.account)

    async def _record_failure(self, session: UploadSession, fields: CheckedFields | None) -> None:
        """A backend failure after the claim: keep a ``failed`` row (no charge) and free the key."""
        now = self.clock.now_ms()
        row = {
            "id": session.claim.output_id,
            "account_id": session.account.id,
            "status": "failed",
            "label": fields.label if fields else None,
            "mime_type": fields.mime_type if fields else "application/octet-stream",
            "size_bytes": 0,
            "sha256": None,
            "public": 1 if fields and fields.public else 0,
            "metadata": json.dumps(fields.metadata if fields else {}, separators=(",", ":")),
            "blob_key": None,
            "created_at": now,
            "expires_at": fields.expires_at_ms if fields else now + self.settings.default_ttl_seconds * 1000,
            "deleted_at": None,
        }

        def record(tx: Tx) -> None:
            _insert_output(tx, row)
            _release_slot(tx, session.account.id, session.key, session.claim.output_id)

        await self.db.write(record)

    async def _release(self, session: UploadSession) -> None:
        await self.db.write(lambda tx: _release_slot(tx, session.account.id, session.key, session.claim.output_id))

    async def _heartbeat(self, session: UploadSession) -> None:
        now = self.clock.now_ms()
        await self.db.write(
            lambda tx: tx.execute(
                "UPDATE idempotency_keys SET heartbeat_at = ? WHERE account_id = ? AND key = ? AND output_id = ?",
                (now, session.account.id, session.key, session.claim.output_id),
            )
        )

    # --- reading, deleting, listing -----------------------------------------------------------

    async def _row(self, account: Account, output_id: str) -> dict[str, Any]:
        row = await self.db.read(
            lambda tx: tx.one(
                f"SELECT {OUTPUT_COLUMNS} FROM outputs WHERE id = ? AND account_id = ?", (output_id, account.id)
            )
        )
        if row is None:
            raise output_not_found()
        return row

    async def get_output(self, account: Account, output_id: str) -> OutputResult:
        row = await self._row(account, output_id)
        now = self.clock.now_ms()
        return OutputResult(render_output(row, now, self.urls), effective_status(row, now))

    async def open_content(self, account: Account, output_id: str) -> Content:
        """The bytes of an owned output; a public one redirects to its public URL."""
        row = await self._row(account, output_id)
        content = self._content(row)
        if content.public:
            return dataclasses.replace(content, redirect=f"{self.urls.public_base_url}/{output_id}")
        return content

    async def open_public(self, output_id: str) -> Content:
        """The bytes of a public output, for anyone; private and unknown ids are alike not found."""
        row = await self.db.read(lambda tx: tx.one(f"SELECT {OUTPUT_COLUMNS} FROM outputs WHERE id = ?", (output_id,)))
        if row is None or not row["public"]:
            raise output_not_found()
        return self._content(row)

    def _content(self, row: dict[str, Any]) -> Content:
        status = effective_status(row, self.clock.now_ms())
        if status == "expired":
            raise output_expired()
        if status == "deleted":
            raise output_deleted()
        if status == "failed":
            raise upload_not_completed()
        return Content(
            output_id=row["id"],
            mime_type=row["mime_type"],
            size_bytes=int(row["size_bytes"]),
            sha256=row["sha256"],
            label=row["label"],
            public=bool(row["public"]),
            blob_key=row["blob_key"],
            available_until_ms=int(row["expires_at"]),
        )

    async def read_content(
        self, content: Content, start: int = 0, length: int | None = None
    ) -> bytes | AsyncIterator[bytes]:
        """The bytes: small spans whole, larger ones as a stream whose first chunk is already read.

        Either way a backend failure surfaces here, before any response has started, and becomes a
        proper error answer instead of a truncated 200.
        """
        span = content.size_bytes - start if length is None else length
        if span <= SMALL_READ_BYTES:
            return await self.blobs.read_small(content.blob_key, start, span)
        chunks = self.blobs.read(content.blob_key, start, length)
        try:
            first = await anext(chunks)
        except StopAsyncIteration:
            first = b""
        return _prepend(first, chunks)

    async def delete_output(self, account: Account, output_id: str) -> dict[str, Any]:
        """Soft delete: the row stays (410 forever), the blob goes, the storage comes back exactly once."""
        now = self.clock.now_ms()

        def delete(tx: Tx) -> dict[str, Any]:
            row = tx.one(
                f"SELECT {OUTPUT_COLUMNS} FROM outputs WHERE id = ? AND account_id = ?", (output_id, account.id)
            )
            if row is None:
                raise output_not_found()
            status = effective_status(row, now)
            if status == "expired":
                raise output_expired()
            if status == "deleted":
                return row
            changed = tx.execute(
                "UPDATE outputs SET status = 'deleted', deleted_at = ? WHERE id = ? AND status = ?",
                (now, output_id, row["status"]),
            )
            if not changed:
                # Another process deleted (or expired) the row after we read it: answer what it stored.
                latest = tx.one(f"SELECT {OUTPUT_COLUMNS} FROM outputs WHERE id = ?", (output_id,))
                if latest is None or latest["status"] != "deleted":
                    raise output_expired()
                return latest
            if row["status"] == "ready":
                tx.lock_account(account.id)
                tx.execute(
                    "UPDATE accounts SET storage_used_bytes = storage_used_bytes - ? WHERE id = ?",
                    (row["size_bytes"], account.id),
                )
            return {**row, "status": "deleted", "deleted_at": now}

        row = await self.db.write(delete)
        if row["blob_key"] is not None:
            await self._delete_blob(row["id"], row["blob_key"])
        return render_output(row, now, self.urls)

    async def _delete_blob(self, output_id: str, blob_key: str) -> None:
        """Remove a blob, then forget its key; a failure leaves the key for the sweeper to retry."""
        try:
            await self.blobs.delete(blob_key)
        except StoreError:
            return
        await self.db.write(
            lambda tx: tx.execute(
                "UPDATE outputs SET blob_key = NULL WHERE id = ? AND status IN ('expired', 'deleted')", (output_id,)
            )
        )

    async def list_outputs(
        self,
        account: Account,
        *,
        limit: int = 20,
        cursor: str | None = None,
        status: str | None = None,
        mime_type: str | None = None,
    ) -> dict[str, Any]:
        """One page, newest first. The cursor is the last id of the previous page (opaque to clients)."""
        if not 1 <= limit <= 100:
            raise invalid_request("limit must be an integer from 1 to 100.")
        if status is not None and status not in ("ready", "failed", "expired", "deleted"):
            raise invalid_request("status must be one of ready, failed, expired, deleted.")
        after = _decode_cursor(cursor) if cursor else None
        now = self.clock.now_ms()
        sql = f"SELECT {OUTPUT_COLUMNS} FROM outputs WHERE account_id = ?"
        params: list[Any] = [account.id]
        if after is not None:
            sql += " AND id < ?"
            params.append(after)
        if status == "ready":
            sql += " AND status = 'ready' AND expires_at > ?"
            params.append(now)
        elif status == "expired":
            sql += " AND (status = 'expired' OR (status = 'ready' AND expires_at <= ?))"
            params.append(now)
        elif status is not None:
            sql += " AND status = ?"
            params.append(status)
        if mime_type is not None:
            sql += " AND mime_type = ?"
            params.append(mime_type)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit + 1)
        rows = await self.db.read(lambda tx: tx.all(sql, params))
        has_more = len(rows) > limit
        page = rows[:limit]
        next_cursor = _encode_cursor(page[-1]["id"]) if has_more and page else None
        return {
            "outputs": [output_fields(row, effective_status(row, now), self.urls) for row in page],
            "pageInfo": {"nextCursor": next_cursor, "hasMore": has_more},
            "agent_contract": list_contract(
                next_cursor,
                limit,
                {name: value for name, value in (("status", status), ("mimeType", mime_type)) if value is not None},
            ),
        }

    # --- share links (store/sharing.py) ------------------------------------------------------

    async def share(self, account: Account, output_id: str, expires_in_seconds: int | None) -> dict[str, Any]:
        """A link that serves the bytes without a key: the public URL, or a signed expiring one."""
        return await sharing.share_link(self, account, output_id, expires_in_seconds)

    async def open_shared(self, token: str) -> Content:
        """The bytes behind a share link, while the link and the output both live."""
        return await sharing.open_shared(self, token)

    # --- lifecycle ---------------------------------------------------------------------------

    async def sweep(self) -> SweepReport:
        """One expiry pass: expire due rows, delete their blobs, reclaim dead upload slots, prune counters."""
        now = self.clock.now_ms()
        expired = 0
        while True:
            due = await self.db.read(
                lambda tx: tx.all(
                    "SELECT id, account_id, size_bytes FROM outputs WHERE status = 'ready' AND expires_at <= ? "
                    "ORDER BY expires_at LIMIT ?",
                    (now, SWEEP_BATCH),
                )
            )
            for row in due:
                expired += await self.db.write(functools.partial(_expire, row=row))
            if len(due) < SWEEP_BATCH:
                break
        blobs_deleted = 0
        leftovers = await self.db.read(
            lambda tx: tx.all(
                "SELECT id, blob_key FROM outputs WHERE status IN ('expired', 'deleted') AND blob_key IS NOT NULL "
                "LIMIT ?",
                (SWEEP_BATCH * 5,),
            )
        )
        for row in leftovers:
            await self._delete_blob(row["id"], row["blob_key"])
            blobs_deleted += 1
        stale = await self.db.read(
            lambda tx: tx.all(
                "SELECT account_id, key, output_id FROM idempotency_keys "
                "WHERE state = 'in_flight' AND heartbeat_at < ?",
                (now - self.stale_slot_ms,),
            )
        )
        for slot in stale:
            await self.blobs.delete(_blob_key(slot["account_id"], slot["output_id"]))
            release = functools.partial(
                _release_slot, account_id=slot["account_id"], key=slot["key"], output_id=slot["output_id"]
            )
            await self.db.write(release)

        def prune(tx: Tx) -> int:
            tx.execute(
                "DELETE FROM idempotency_keys WHERE state = 'completed' AND created_at < ?",
                (now - IDEMPOTENCY_RETENTION_MS,),
            )
            prune_upload_links(tx, now - IDEMPOTENCY_RETENTION_MS)
            return ratelimit.prune(tx, now - 3600 * 1000)

        pruned = await self.db.write(prune)
        return SweepReport(expired, blobs_deleted, len(stale), pruned)

    def check(self) -> CheckReport:
        """Verify the storage invariant (SPEC section 7); every problem found is one line in the report."""
        report = CheckReport()

        def load(tx: Tx) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
            accounts = tx.all("SELECT id, storage_used_bytes FROM accounts")
            outputs = tx.all("SELECT id, account_id, status, size_bytes, blob_key FROM outputs")
            slots = tx.all("SELECT account_id, output_id FROM idempotency_keys WHERE state = 'in_flight'")
            return accounts, outputs, slots

        accounts, outputs, slots = self.db.read_sync(load)
        report.accounts, report.outputs = len(accounts), len(outputs)
        used: dict[str, int] = {}
        expected_blobs: set[str] = set()
        for row in outputs:
            if row["status"] == "ready":
                used[row["account_id"]] = used.get(row["account_id"], 0) + int(row["size_bytes"])
                expected_blobs.add(row["blob_key"])
        for account in accounts:
            want = used.get(account["id"], 0)
            if int(account["storage_used_bytes"]) != want:
                report.problems.append(
                    f"account {account['id']}: storage_used_bytes={account['storage_used_bytes']} "
                    f"but its ready outputs hold {want} bytes"
                )
        in_flight = {_blob_key(s["account_id"], s["output_id"]) for s in slots}
        lingering = {row["blob_key"] for row in outputs if row["status"] != "ready" and row["blob_key"]}
        present = set(self.blobs.keys())
        for key in sorted(expected_blobs - present):
            report.problems.append(f"blob missing for ready output: {key}")
        for key in sorted(present - expected_blobs - in_flight - lingering):
            report.problems.append(f"blob without a ready output: {key}")
        return report


class UploadSession:
    """One upload in progress; use as ``async with`` so any failure releases the key and the blob."""

    def __init__(
        self,
        service: ArtifactService,
        account: Account,
        key: str,
        claim: _Claim,
        writer: BlobWriter | None,
        limit: int,
        wire: str,
    ) -> None:
        self.service = service
        self.account = account
        self.key = key
        self.claim = claim
        self.rate = claim.rate
        self._writer = writer
        self._limit = limit
        self.wire = wire
        self._fields: dict[str, Any] = {}
        self._hash = hashlib.sha256()
        self.size = 0
        self._content_started = False
        self._done = False
        self._last_beat = service.clock.now_ms()
        self._expected_size: int | None = None
        self._expected_sha256: str | None = None

    @property
    def is_replay(self) -> bool:
        return self.claim.replay_fingerprint is not None

    async def __aenter__(self) -> UploadSession:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._done:
            with anyio.CancelScope(shield=True):
                await self.abort()

    def _check(self, partial: bool) -> CheckedFields | None:
        settings = self.service.settings
        return validate_fields(
            self._fields,
            now_ms=self.service.clock.now_ms(),
            default_ttl_seconds=settings.default_ttl_seconds,
            max_ttl_seconds=settings.max_ttl_seconds,
            partial=partial,
        )

    def add_form_field(self, name: str, value: str) -> None:
        """A multipart text field, in whatever order it arrives."""
        if name not in FORM_FIELDS:
            raise invalid_request(f"Unknown field {name!r}; the file part must be named 'content'.")
        if name in self._fields:
            raise invalid_request(f"The field {name!r} was sent more than once.")
        if name == "metadata" and not value.strip():
            return  # an empty form field is an absent one (as HTML forms send unfilled fields)
        self._fields[name] = parse_form_field(name, value)
        if self._content_started:
            self._check(partial=True)

    def expect(self, size_bytes: int | None, sha256: str | None) -> None:
        """Content the sender declared beforehand (an upload link's ``sizeBytes``/``sha256``): other
        bytes are refused with ``invalid_request`` and nothing is kept."""
        self._expected_size = size_bytes
        self._expected_sha256 = sha256

    def set_fields(self, fields: dict[str, Any]) -> None:
        """All fields at once (MCP, or anything that has them typed already)."""
        self._fields.update(fields)

    async def accept_json(self, document: Any) -> None:
        """A whole JSON upload: validate it with :class:`CreateOutput` and take its base64 content."""
        if not isinstance(document, dict):
            raise invalid_request("The JSON body must be an object.")
        try:
            CreateOutput.model_validate(document)
        except ValidationError as exc:
            self._fields = {k: v for k, v in document.items() if k != "content"}
            self._check(partial=False)
            error = store_error_from_validation(exc)
            raise (error or invalid_request("Invalid upload body.")) from None
        try:
            content = base64.b64decode(unwrap_base64(document["content"]), validate=True)
        except (binascii.Error, ValueError):
            raise invalid_request("content must be valid base64.") from None
        self._fields = {k: v for k, v in document.items() if k != "content"}
        await self.write(content)

    async def write(self, chunk: bytes) -> None:
        """Content bytes, in order; refused past the per-file limit."""
        if not self._content_started:
            self._content_started = True
            self._check(partial=True)
        self.size += len(chunk)
        if self.size > self._limit:
            raise _too_large(self._limit)
        if self._expected_size is not None and self.size > self._expected_size and not self.is_replay:
            raise invalid_request(f"The content is larger than the declared sizeBytes ({self._expected_size}).")
        self._hash.update(chunk)
        if self._writer is not None:
            try:
                await self._writer.write(chunk)
            except OSError as exc:
                raise _blob_failure() from exc
        now = self.service.clock.now_ms()
        if now - self._last_beat > self.service.stale_slot_ms // HEARTBEATS_PER_STALE_PERIOD:
            self._last_beat = now
            await self.service._heartbeat(self)

    async def finish(self) -> UploadResult:
        """Validate, then replay or store; returns the output with its contract."""
        fields = self._check(partial=False)
        assert fields is not None
        if self.size == 0:
            raise invalid_request("content is required and must not be empty.")
        digest = self._hash.hexdigest()
        fp = fingerprint(fields, digest)
        if self.is_replay:
            self._done = True
            return await self.service._replay(self, fp)
        if self._expected_size is not None and self.size != self._expected_size:
            raise invalid_request(
                f"The content is {self.size} bytes, not the declared sizeBytes ({self._expected_size})."
            )
        if self._expected_sha256 is not None and digest != self._expected_sha256:
            raise invalid_request("The content's SHA-256 is not the declared sha256.")
        assert self._writer is not None
        try:
            await self._writer.commit()
        except (StoreError, OSError) as exc:
            if isinstance(exc, StoreError) and exc.code not in ("upload_failed", "service_unavailable"):
                raise
            with contextlib.suppress(StoreError, OSError):
                await self._writer.abort()
                await self.service.blobs.delete(_blob_key(self.account.id, self.claim.output_id))
            await self.service._record_failure(self, fields)
            self._done = True
            failure = _blob_failure()
            failure.fields["outputId"] = self.claim.output_id  # the failed output, readable by id
            raise failure from exc
        try:
            result = await self.service._settle(self, fields, digest, fp)
        except BaseException:
            # The settle transaction rolled back: no row, no charge; the committed blob goes, and the
            # key is released (when the database answers; else the stale-slot sweep reclaims it).
            self._writer = None
            with anyio.CancelScope(shield=True):
                await self.abort()
            raise
        self._done = True
        return result

    async def abort(self) -> None:
        """Undo a claim that will not complete: drop the partial blob and free the key."""
        self._done = True
        if self.is_replay:
            return
        # Each step is tried whatever the one before did: a broken blob store must not keep the key
        # busy. What a broken backend leaves, the stale-slot sweep removes later.
        blob_key = _blob_key(self.account.id, self.claim.output_id)
        if self._writer is not None:
            with contextlib.suppress(StoreError, OSError):
                await self._writer.abort()
        with contextlib.suppress(StoreError, OSError):
            await self.service.blobs.delete(blob_key)
        with contextlib.suppress(StoreError):
            await self.service._release(self)


# --- helpers ---------------------------------------------------------------------------------


def _blob_key(account_id: str, output_id: str) -> str:
    return f"{account_id}/{output_id}"


def _blob_failure() -> StoreError:
    return StoreError("upload_failed", "The content could not be stored. Retry the same request with the same key.")


def _too_large(limit: int, *, json_body: bool = False) -> StoreError:
    if json_body:
        return StoreError("payload_too_large", f"JSON upload bodies are limited to {limit} bytes; use multipart.")
    return StoreError("payload_too_large", f"The content exceeds the upload limit of {limit} bytes.")


def _minimum_content_bytes(wire: str, content_length: int | None) -> int:
    """The fewest content bytes a body of this length can carry (for the early storage check)."""
    if content_length is None:
        return 0
    if wire == "direct":
        return content_length
    if wire == "json":
        return max(0, (content_length - FORM_ENVELOPE_BYTES) * 3 // 4)
    return max(0, content_length - FORM_ENVELOPE_BYTES)


def _check_quota(account: Account, size: int) -> None:
    if account.free_remaining <= 0 and account.credits_remaining <= 0:
        raise StoreError("quota_exhausted", "No free quota or credits remaining. Purchase credits to continue.")
    if account.storage_used_bytes + size > account.storage_limit_bytes:
        raise StoreError(
            "storage_limit_reached",
            f"Storing {size} more bytes would exceed the storage limit of {account.storage_limit_bytes} bytes "
            f"({account.storage_used_bytes} used). Delete outputs or buy a pack.",
        )


def _insert_output(tx: Tx, row: dict[str, Any]) -> None:
    tx.execute(
        "INSERT INTO outputs (id, account_id, status, label, mime_type, size_bytes, sha256, public, metadata, "
        "blob_key, created_at, expires_at, deleted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            row["id"],
            row["account_id"],
            row["status"],
            row["label"],
            row["mime_type"],
            row["size_bytes"],
            row["sha256"],
            row["public"],
            row["metadata"],
            row["blob_key"],
            row["created_at"],
            row["expires_at"],
            row["deleted_at"],
        ),
    )


def _release_slot(tx: Tx, account_id: str, key: str, output_id: str) -> int:
    return tx.execute(
        "DELETE FROM idempotency_keys WHERE account_id = ? AND key = ? AND output_id = ? AND state = 'in_flight'",
        (account_id, key, output_id),
    )


def _expire(tx: Tx, row: dict[str, Any]) -> int:
    """Mark one due output expired and give its storage back; 0 when another sweeper got there first."""
    changed = tx.execute("UPDATE outputs SET status = 'expired' WHERE id = ? AND status = 'ready'", (row["id"],))
    if changed:
        tx.lock_account(row["account_id"])
        tx.execute(
            "UPDATE accounts SET storage_used_bytes = storage_used_bytes - ? WHERE id = ?",
            (row["size_bytes"], row["account_id"]),
        )
    return changed


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk


def _encode_cursor(output_id: str) -> str:
    return base64.urlsafe_b64encode(output_id.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    """The id a cursor names. Any unpadded base64url text (CURSOR_PATTERN, as published) is a cursor:
    it only bounds ids from above within the caller's own outputs, so a forged one reveals nothing."""
    if not re.fullmatch(CURSOR_PATTERN, cursor):
        raise invalid_request("cursor is not valid; pass pageInfo.nextCursor unchanged.")
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("utf-8", "replace")

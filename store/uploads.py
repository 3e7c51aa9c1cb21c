"""Uploads: the session that takes fields and bytes in any order, and its settle, replay and failure paths.

The caller opens a session with the account and the Idempotency-Key *before* reading the body. Opening
settles what can be known up front, in one transaction (store/idempotency.py): a completed key turns the
session into a replay check; a key in flight answers 503; otherwise the upload budget and quota are
checked (``Content-Length`` lets a hopeless upload be refused before a byte is sent) and the key is
claimed with a fresh output id. The caller then feeds fields and content chunks in whatever order the
wire brings them; content is hashed, counted and streamed to the blob store as it arrives. Finishing
validates the fields, computes the fingerprint and, in one transaction with the account row locked,
charges the unit, adds the storage, inserts the output and completes the key. Any failure releases the
key and removes the blob.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio
from pydantic import ValidationError

from store import idempotency
from store.accounts import Account
from store.base64text import unwrap_base64
from store.blobs import BlobWriter
from store.db import Tx
from store.errors import StoreError, idempotency_conflict, invalid_request
from store.idempotency import Claim
from store.limits import HEARTBEATS_PER_STALE_PERIOD, JSON_BODY_LIMIT
from store.outputs import blob_key
from store.plans import max_upload_bytes
from store.quota import Charge, write_charged
from store.schemas import CreateOutput
from store.validation import (
    FORM_FIELDS,
    CheckedFields,
    check_idempotency_key,
    fingerprint,
    parse_form_field,
    store_error_from_validation,
    validate_fields,
)
from store.views import OUTPUT_COLUMNS, render_output

if TYPE_CHECKING:
    from store.service import ArtifactService


@dataclass(frozen=True, slots=True)
class UploadResult:
    body: dict[str, Any]
    replayed: bool
    account: Account


def _validate(service: ArtifactService, fields: dict[str, Any], *, partial: bool) -> CheckedFields | None:
    settings = service.settings
    return validate_fields(
        fields,
        now_ms=service.clock.now_ms(),
        default_ttl_seconds=settings.default_ttl_seconds,
        max_ttl_seconds=settings.max_ttl_seconds,
        partial=partial,
    )


def check_fields(service: ArtifactService, fields: dict[str, Any]) -> CheckedFields:
    """An upload's fields checked against this server's rules now (every field present or defaulted)."""
    checked = _validate(service, fields, partial=False)
    assert checked is not None  # only partial validation answers None
    return checked


def upload_limit(service: ArtifactService, account: Account) -> int:
    """The largest file this account may upload (its plan's limit)."""
    return max_upload_bytes(service.settings, account.plan_tier)


async def begin_upload(
    service: ArtifactService,
    account: Account,
    idempotency_key: str | None,
    *,
    size: int | None = None,
    min_size: int = 0,
    via_link: bool = False,
) -> UploadSession:
    """Open an upload (see the module docstring).

    ``size`` is the content's exact size when the caller knows it before the bytes (MCP's content
    sources, a PUT with Content-Length): above the per-file limit it is refused at once. ``min_size``
    is the fewest bytes the content can have when only a bound is known (a REST body's length less its
    framing); the storage pre-check runs on whichever is larger. ``via_link`` is set by the upload
    link (store/upload_links.py) whose Idempotency-Key this is; any other upload with a key an upload
    link holds is a conflict (the two routes share one key namespace).
    """
    key = check_idempotency_key(idempotency_key)
    limit = upload_limit(service, account)
    if size is not None and size > limit:
        raise too_large(limit)
    floor = max(size or 0, min_size)
    output_id = service.ids.new("out")
    now = service.clock.now_ms()
    claim = await service.db.write(
        lambda tx: idempotency.claim(service, tx, account, key, output_id, floor, now, via_link)
    )
    if claim.previous_output_id is not None:
        await service.blobs.delete(blob_key(account.id, claim.previous_output_id))
    session = UploadSession(service, account, key, claim, None, limit)
    if claim.replay_fingerprint is None:
        try:
            session._writer = await service.blobs.writer(blob_key(account.id, output_id), "application/octet-stream")
        except BaseException as exc:
            # The claim is already committed: a blob store that cannot even open a write must not
            # keep the key busy (SPEC section 6: a failed upload releases it).
            with anyio.CancelScope(shield=True):
                await session.abort()
            if isinstance(exc, StoreError | OSError):
                raise blob_failure() from exc
            raise
    return session


class UploadSession:
    """One upload in progress; use as ``async with`` so any failure releases the key and the blob."""

    def __init__(
        self,
        service: ArtifactService,
        account: Account,
        key: str,
        claim: Claim,
        writer: BlobWriter | None,
        limit: int,
    ) -> None:
        self.service = service
        self.account = account
        self.key = key
        self.claim = claim
        self.rate = claim.rate
        self._writer = writer
        self._limit = limit
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
        return _validate(self.service, self._fields, partial=partial)

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
            raise too_large(self._limit)
        if self._expected_size is not None and self.size > self._expected_size and not self.is_replay:
            raise invalid_request(f"The content is larger than the declared sizeBytes ({self._expected_size}).")
        self._hash.update(chunk)
        if self._writer is not None:
            try:
                await self._writer.write(chunk)
            except OSError as exc:
                raise blob_failure() from exc
        now = self.service.clock.now_ms()
        if now - self._last_beat > self.service.stale_slot_ms // HEARTBEATS_PER_STALE_PERIOD:
            self._last_beat = now
            await self.service.db.write(
                lambda tx: idempotency.heartbeat(tx, self.account.id, self.key, self.claim.output_id, now)
            )

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
            return await _replay(self, fp)
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
                await self.service.blobs.delete(blob_key(self.account.id, self.claim.output_id))
            await _record_failure(self, fields)
            self._done = True
            failure = blob_failure()
            failure.fields["outputId"] = self.claim.output_id  # the failed output, readable by id
            raise failure from exc
        try:
            result = await _settle(self, fields, digest, fp)
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
        key = blob_key(self.account.id, self.claim.output_id)
        if self._writer is not None:
            with contextlib.suppress(StoreError, OSError):
                await self._writer.abort()
        with contextlib.suppress(StoreError, OSError):
            await self.service.blobs.delete(key)
        with contextlib.suppress(StoreError):
            await self.service.db.write(
                lambda tx: idempotency.release(tx, self.account.id, self.key, self.claim.output_id)
            )


async def _settle(session: UploadSession, fields: CheckedFields, digest: str, fp: str) -> UploadResult:
    service = session.service
    account = session.account
    output_id = session.claim.output_id
    size = session.size
    now = service.clock.now_ms()

    def settle(tx: Tx, charge: Charge) -> tuple[dict[str, Any], Account]:
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
            "blob_key": blob_key(account.id, output_id),
            "created_at": now,
            # The default expiry counts from the creation instant, so expiresAt - createdAt is the TTL exactly.
            "expires_at": fields.expires_at_ms
            if fields.expires_at_raw is not None
            else now + service.settings.default_ttl_seconds * 1000,
            "deleted_at": None,
        }
        _insert_output(tx, row)
        idempotency.complete(tx, account.id, session.key, output_id, fp, now)
        # Last, so the account row is locked only from the charge to the commit; a refusal rolls all back.
        after = charge(tx, account, size)
        return render_output(row, now, service.urls), after

    body, after = await write_charged(service, account, size, settle)
    return UploadResult(body, False, after)


async def _replay(session: UploadSession, fp: str) -> UploadResult:
    if fp != session.claim.replay_fingerprint:
        raise idempotency_conflict()
    service = session.service
    output_id = session.claim.replay_output_id
    row = await service.db.read(lambda tx: tx.one(f"SELECT {OUTPUT_COLUMNS} FROM outputs WHERE id = ?", (output_id,)))
    if row is None:
        raise StoreError("server_error", "The output of this Idempotency-Key is missing.")
    return UploadResult(render_output(row, service.clock.now_ms(), service.urls), True, session.account)


async def _record_failure(session: UploadSession, fields: CheckedFields | None) -> None:
    """A backend failure after the claim: keep a ``failed`` row (no charge) and free the key."""
    service = session.service
    now = service.clock.now_ms()
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
        "expires_at": fields.expires_at_ms if fields else now + service.settings.default_ttl_seconds * 1000,
        "deleted_at": None,
    }

    def record(tx: Tx) -> None:
        _insert_output(tx, row)
        idempotency.release(tx, session.account.id, session.key, session.claim.output_id)

    await service.db.write(record)


def blob_failure() -> StoreError:
    return StoreError("upload_failed", "The content could not be stored. Retry the same request with the same key.")


def json_body_too_large() -> StoreError:
    return too_large(JSON_BODY_LIMIT, json_body=True)


def too_large(limit: int, *, json_body: bool = False) -> StoreError:
    """The refusal of content (or a JSON body) past its limit."""
    if json_body:
        return StoreError("payload_too_large", f"JSON upload bodies are limited to {limit} bytes; use multipart.")
    return StoreError("payload_too_large", f"The content exceeds the upload limit of {limit} bytes.")


def _insert_output(tx: Tx, row: dict[str, Any]) -> None:
    tx.defer(
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

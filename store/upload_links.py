"""Upload links (SPEC section 14): an agent asks for a signed, short-lived URL and its own shell PUTs
the bytes there (``curl -T FILE URL``), so no artifact passes through a model or a JSON body.

- Creating a link (``POST /v1/uploads``) validates the fields exactly as an upload does, checks the
  quota before any byte moves (with ``sizeBytes`` when sent) and stores the link under the request's
  Idempotency-Key. The same key with the same fields returns the same link while it is pending (a
  fresh expiry once it lapsed unused) and the output once completed; other fields are a conflict.
  The key namespace is shared with ``POST /v1/outputs`` (:mod:`store.upload_keys`).
- The link is ``<base>/u/<token>``, the token signing the upload id and the expiry
  (:class:`store.sharing.LinkSigner`, purpose ``upload``): it carries its expiry (one hour by
  default, never past the output's ``expiresAt``) and
  names no account. Anything expired, forged or unknown is the same 404 ``not_found``.
- The PUT goes through the one upload protocol (:class:`store.service.UploadSession`) with the link's
  key and fields, so streaming, size limits, quota, charging, blobs and idempotency are the rules of
  every upload: charged when the bytes land, a repeated PUT of the same bytes is a replay, other bytes
  a conflict. Declared ``sizeBytes``/``sha256`` must match or nothing is kept (and the link stays open).
- State lives in the database (``upload_links``), so any server process answers any link.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from pydantic import ValidationError

from store.accounts import Account
from store.clock import iso_ms
from store.contract import upload_link_contract, upload_status_contract
from store.db import Tx
from store.errors import StoreError, idempotency_conflict, invalid_request
from store.limits import IDEMPOTENCY_RETENTION_MS
from store.models import UploadLinkRow, column_list
from store.quota import check_quota
from store.ratelimit import RateState
from store.schemas import CreateUpload
from store.service import ArtifactService
from store.uploads import UploadResult, UploadSession, check_fields, too_large
from store.validation import (
    CheckedFields,
    check_idempotency_key,
    fingerprint,
    store_error_from_validation,
)
from store.views import OUTPUT_COLUMNS, expires_in_seconds, render_output

UPLOAD_PURPOSE = "upload"
UPLOAD_PATH = "/u/"
UPLOAD_PREFIX = "upl_"
LINK_COLUMNS = column_list(UploadLinkRow, leave_out=("created_at",))
SIZE_FIELDS = ("sizeBytes", "sha256")


@dataclass(frozen=True, slots=True)
class CreatedLink:
    """The answer to a link creation: the link, or (``completed``) the output the link made.

    ``replayed``: an earlier request with this key made it (the same link, or its output)."""

    body: dict[str, Any]
    replayed: bool = False
    completed: bool = False


def link_not_found() -> StoreError:
    return StoreError("not_found", "This upload link is not valid: it is unknown, altered or expired.")


def curl_command(upload_url: str, file_name: str | None) -> str:
    """The one-line shell command that sends a file to the link."""
    return f"curl -sS -T {shlex.quote(file_name or 'FILE')} {shlex.quote(upload_url)}"


# --- creating --------------------------------------------------------------------------------


def _checked_request(service: ArtifactService, document: Any) -> tuple[dict[str, Any], CreateUpload]:
    """The upload fields (wire names) and the validated request; the codes are those of an upload."""
    if not isinstance(document, dict):
        raise invalid_request("The JSON body must be an object.")
    fields = {name: value for name, value in document.items() if name not in SIZE_FIELDS}
    try:
        request = CreateUpload.model_validate(document)
    except ValidationError as exc:
        check_fields(service, fields)  # a field's own code (invalid_mime_type, invalid_expiry…) comes first
        raise (store_error_from_validation(exc) or invalid_request("Invalid upload link request.")) from None
    return fields, request


def _link_fingerprint(checked: CheckedFields, size_bytes: int | None, sha256: str | None) -> str:
    """What tells a repeated creation from a conflicting one: the upload's fingerprint without content,
    plus the declared size and digest."""
    canonical = {"fields": fingerprint(checked, ""), "sizeBytes": size_bytes, "sha256": sha256}
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


async def create(service: ArtifactService, account: Account, idempotency_key: str | None, document: Any) -> CreatedLink:
    """``POST /v1/uploads`` (see the module docstring)."""
    key = check_idempotency_key(idempotency_key)
    fields, request = _checked_request(service, document)
    checked = check_fields(service, fields)
    limit = service.upload_limit(account)
    if request.sizeBytes is not None and request.sizeBytes > limit:
        raise too_large(limit)
    sha256 = request.sha256.lower() if request.sha256 else None
    link_fp = _link_fingerprint(checked, request.sizeBytes, sha256)
    now = service.clock.now_ms()
    until = now + service.settings.upload_link_ttl_seconds * 1000
    if checked.expires_at_raw is not None:
        until = min(until, checked.expires_at_ms)
    new_row = {
        "id": service.ids.new(UPLOAD_PREFIX.rstrip("_")),
        "account_id": account.id,
        "idempotency_key": key,
        "fingerprint": link_fp,
        "fields": json.dumps(fields, separators=(",", ":"), ensure_ascii=False),
        "size_bytes": request.sizeBytes,
        "sha256": sha256,
        "output_id": None,
        "expires_at": until,
    }

    def claim(tx: Tx) -> tuple[dict[str, Any], bool]:
        """The link row, and whether an earlier request made it."""
        row = _link_by_key(tx, account.id, key)
        if row is None:
            _check_key_free(service, tx, account.id, key, now)
            current = tx.lock_account(account.id)
            if current is None:
                raise StoreError("invalid_api_key", "The account of this API key no longer exists.")
            check_quota(Account.from_row(current), request.sizeBytes or 0)
            inserted = tx.execute(
                f"INSERT INTO upload_links ({LINK_COLUMNS}, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (account_id, idempotency_key) DO NOTHING",
                (*new_row.values(), now),
            )
            if inserted:
                return new_row, False
            row = _link_by_key(tx, account.id, key)  # created by a concurrent request just now
            assert row is not None
        if row["fingerprint"] != link_fp:
            raise idempotency_conflict()
        if row["output_id"] is None and int(row["expires_at"]) <= now:
            # Lapsed unused: the same request renews it rather than stranding its key.
            tx.execute("UPDATE upload_links SET expires_at = ? WHERE id = ?", (until, row["id"]))
            return {**row, "expires_at": until}, False
        return row, True

    row, replayed = await service.db.write(claim)
    if row["output_id"] is not None:
        output = await _output(service, str(row["output_id"]))
        return CreatedLink({**output, "uploadId": row["id"]}, replayed=True, completed=True)
    return CreatedLink(await _pending_link(service, row, checked.label, limit, now), replayed=replayed)


async def _pending_link(
    service: ArtifactService, row: dict[str, Any], label: str | None, limit: int, now: int
) -> dict[str, Any]:
    """The body of ``POST /v1/uploads`` for a link that awaits its bytes."""
    url = await _upload_url(service, row)
    return {
        "uploadId": row["id"],
        "uploadUrl": url,
        "method": "PUT",
        "uploadExpiresAt": iso_ms(int(row["expires_at"])),
        "maxSizeBytes": row["size_bytes"] or limit,
        "status": "pending",
        "curl": curl_command(url, label),
        "agent_contract": upload_link_contract(url, row["id"], expires_in_seconds(int(row["expires_at"]), now)),
    }


def _link_by_key(tx: Tx, account_id: str, key: str) -> dict[str, Any] | None:
    return tx.one(
        f"SELECT {LINK_COLUMNS} FROM upload_links WHERE account_id = ? AND idempotency_key = ?", (account_id, key)
    )


def _check_key_free(service: ArtifactService, tx: Tx, account_id: str, key: str, now: int) -> None:
    """A key ``POST /v1/outputs`` used (or is using) is not free for a link."""
    slot = tx.one(
        "SELECT state, created_at, heartbeat_at FROM idempotency_keys WHERE account_id = ? AND key = ?",
        (account_id, key),
    )
    if slot is None:
        return
    if slot["state"] == "in_flight" and slot["heartbeat_at"] > now - service.stale_slot_ms:
        raise StoreError(
            "idempotency_in_flight",
            "A request with this Idempotency-Key is already being processed. Retry after 5 seconds.",
        )
    if slot["state"] == "completed" and slot["created_at"] > now - IDEMPOTENCY_RETENTION_MS:
        raise idempotency_conflict()


async def _upload_url(service: ArtifactService, row: dict[str, Any]) -> str:
    ulid = str(row["id"]).removeprefix(UPLOAD_PREFIX)
    token = await service.signer.sign(UPLOAD_PURPOSE, ulid, int(row["expires_at"]))
    return f"{service.urls.base_url}{UPLOAD_PATH}{token}"


async def _output(service: ArtifactService, output_id: str) -> dict[str, Any]:
    row = await service.db.read(lambda tx: tx.one(f"SELECT {OUTPUT_COLUMNS} FROM outputs WHERE id = ?", (output_id,)))
    if row is None:
        raise StoreError("server_error", "The output of this upload link is missing.")
    return render_output(row, service.clock.now_ms(), service.urls)


# --- status ----------------------------------------------------------------------------------


async def status(service: ArtifactService, account: Account, upload_id: str) -> dict[str, Any]:
    """``GET /v1/uploads/{uploadId}``: pending, completed (with the outputId) or expired."""
    row = await service.db.read(
        lambda tx: tx.one(
            f"SELECT {LINK_COLUMNS} FROM upload_links WHERE id = ? AND account_id = ?", (upload_id, account.id)
        )
    )
    if row is None:
        raise StoreError("not_found", "No upload with this id exists for this API key.")
    now = service.clock.now_ms()
    expires_at = int(row["expires_at"])
    output_id = row["output_id"]
    state = "completed" if output_id is not None else "pending" if expires_at > now else "expired"
    url = await _upload_url(service, row) if state == "pending" else None
    remaining = expires_in_seconds(expires_at, now) if state == "pending" else None
    return {
        "uploadId": row["id"],
        "status": state,
        "outputId": output_id,
        "uploadExpiresAt": iso_ms(expires_at),
        "uploadUrl": url,
        "agent_contract": upload_status_contract(
            state, upload_id=row["id"], upload_url=url, output_id=output_id, expires_in_seconds=remaining
        ),
    }


# --- the PUT ---------------------------------------------------------------------------------


async def begin_put(service: ArtifactService, token: str, content_length: int | None) -> LinkUpload:
    """Open the upload behind a link (keyless: the signed token is the authority)."""
    signed = await service.signer.verify(UPLOAD_PURPOSE, token)
    if signed is None or signed.until_ms <= service.clock.now_ms():
        raise link_not_found()
    row = await service.db.read(
        lambda tx: tx.one(f"SELECT {LINK_COLUMNS} FROM upload_links WHERE id = ?", (UPLOAD_PREFIX + signed.ulid,))
    )
    if row is None:
        raise link_not_found()
    declared = row["size_bytes"]
    if declared is not None and content_length is not None and content_length != declared:
        raise invalid_request(f"Content-Length is {content_length}, not the declared sizeBytes ({declared}).")
    try:
        account = await service.account(str(row["account_id"]))
    except StoreError:
        raise link_not_found() from None
    session = await service.begin_upload(account, str(row["idempotency_key"]), size=content_length, via_link=True)
    session.set_fields(json.loads(row["fields"]))
    session.expect(declared, row["sha256"])
    return LinkUpload(service, str(row["id"]), session)


class LinkUpload:
    """An upload arriving through a link; use as ``async with`` (as :class:`UploadSession`)."""

    def __init__(self, service: ArtifactService, upload_id: str, session: UploadSession) -> None:
        self._service = service
        self.upload_id = upload_id
        self._session = session

    @property
    def rate(self) -> RateState | None:
        return self._session.rate

    async def __aenter__(self) -> LinkUpload:
        await self._session.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._session.__aexit__(exc_type, exc, tb)

    async def write(self, chunk: bytes) -> None:
        await self._session.write(chunk)

    async def finish(self) -> UploadResult:
        result = await self._session.finish()
        output_id = result.body["outputId"]
        await self._service.db.write(
            lambda tx: tx.execute(
                "UPDATE upload_links SET output_id = ? WHERE id = ? AND output_id IS NULL", (output_id, self.upload_id)
            )
        )
        return result

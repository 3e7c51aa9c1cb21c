"""Outputs once stored: read (with expiry evaluated on every read), open their bytes, delete, list."""

from __future__ import annotations

import base64
import dataclasses
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from store.blobs.base import SMALL_READ_BYTES
from store.contract import list_contract
from store.db import Tx
from store.errors import (
    StoreError,
    invalid_request,
    output_deleted,
    output_expired,
    output_not_found,
    upload_not_completed,
)
from store.quota import give_back_storage
from store.schemas import CURSOR_PATTERN
from store.views import OUTPUT_COLUMNS, effective_status, output_fields, render_output

if TYPE_CHECKING:
    from store.accounts import Account
    from store.owned_reads import OwnedOutput
    from store.service import ArtifactService

STATUSES = ("ready", "failed", "expired", "deleted")


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


def blob_key(account_id: str, output_id: str) -> str:
    """Where an output's bytes live in the blob store."""
    return f"{account_id}/{output_id}"


async def owned_row(
    service: ArtifactService, account: Account, output_id: str, found: OwnedOutput | None = None
) -> dict[str, Any]:
    """The row of an output of this account; any other id is not found. ``found``: the row as the
    authentication's own statement already read it (no second read)."""
    if found is not None and found.output_id == output_id:
        row = found.row
    else:
        row = await service.db.read(
            lambda tx: tx.one(
                f"SELECT {OUTPUT_COLUMNS} FROM outputs WHERE id = ? AND account_id = ?", (output_id, account.id)
            )
        )
    if row is None:
        raise output_not_found()
    return row


async def get_output(
    service: ArtifactService, account: Account, output_id: str, found: OwnedOutput | None = None
) -> OutputResult:
    row = await owned_row(service, account, output_id, found)
    now = service.clock.now_ms()
    return OutputResult(render_output(row, now, service.urls), effective_status(row, now))


async def open_content(
    service: ArtifactService, account: Account, output_id: str, found: OwnedOutput | None = None
) -> Content:
    """The bytes of an owned output; a public one redirects to its public URL."""
    row = await owned_row(service, account, output_id, found)
    content = readable_content(service, row)
    if content.public:
        return dataclasses.replace(content, redirect=f"{service.urls.public_base_url}/{output_id}")
    return content


async def open_public(service: ArtifactService, output_id: str) -> Content:
    """The bytes of a public output, for anyone; private and unknown ids are alike not found."""
    row = await service.db.read(lambda tx: tx.one(f"SELECT {OUTPUT_COLUMNS} FROM outputs WHERE id = ?", (output_id,)))
    if row is None or not row["public"]:
        raise output_not_found()
    return readable_content(service, row)


def readable_content(service: ArtifactService, row: dict[str, Any]) -> Content:
    """The bytes of a row that is ready and not expired; a gone or failed output is refused."""
    status = effective_status(row, service.clock.now_ms())
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
    service: ArtifactService, content: Content, start: int = 0, length: int | None = None
) -> bytes | AsyncIterator[bytes]:
    """The bytes: small spans whole, larger ones as a stream whose first chunk is already read.

    Either way a backend failure surfaces here, before any response has started, and becomes a
    proper error answer instead of a truncated 200.
    """
    span = content.size_bytes - start if length is None else length
    if span <= SMALL_READ_BYTES:
        return await service.blobs.read_small(content.blob_key, start, span)
    chunks = service.blobs.read(content.blob_key, start, length)
    try:
        first = await anext(chunks)
    except StopAsyncIteration:
        first = b""
    return _prepend(first, chunks)


async def delete_output(service: ArtifactService, account: Account, output_id: str) -> tuple[dict[str, Any], Account]:
    """Soft delete: the row stays (410 forever), the blob goes, the storage comes back exactly once.
    Also the account after the delete (the give-back's own answer; unchanged when nothing came back)."""
    now = service.clock.now_ms()
    after = account

    def delete(tx: Tx) -> dict[str, Any]:
        nonlocal after
        row = tx.one(f"SELECT {OUTPUT_COLUMNS} FROM outputs WHERE id = ? AND account_id = ?", (output_id, account.id))
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
            given_back = give_back_storage(tx, account.id, row["size_bytes"])
            if given_back is not None:
                after = type(account).from_row(given_back)
        return {**row, "status": "deleted", "deleted_at": now}

    row = await service.db.write(delete)
    if row["blob_key"] is not None:
        await delete_blob(service, row["id"], row["blob_key"])
    return render_output(row, now, service.urls), after


async def delete_blob(service: ArtifactService, output_id: str, key: str) -> None:
    """Remove a blob, then forget its key; a failure leaves the key for the sweeper to retry."""
    try:
        await service.blobs.delete(key)
    except StoreError:
        return
    await service.db.write(
        lambda tx: tx.execute(
            "UPDATE outputs SET blob_key = NULL WHERE id = ? AND status IN ('expired', 'deleted')", (output_id,)
        )
    )


async def list_outputs(
    service: ArtifactService,
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
    if status is not None and status not in STATUSES:
        raise invalid_request("status must be one of ready, failed, expired, deleted.")
    after = _decode_cursor(cursor) if cursor else None
    now = service.clock.now_ms()
    sql, params = _page_query(account.id, after, status, mime_type, now, limit)
    rows = await service.db.read(lambda tx: tx.all(sql, params))
    has_more = len(rows) > limit
    page = rows[:limit]
    next_cursor = _encode_cursor(page[-1]["id"]) if has_more and page else None
    return {
        "outputs": [output_fields(row, effective_status(row, now), service.urls) for row in page],
        "pageInfo": {"nextCursor": next_cursor, "hasMore": has_more},
        "agent_contract": list_contract(
            next_cursor,
            limit,
            {name: value for name, value in (("status", status), ("mimeType", mime_type)) if value is not None},
        ),
    }


def _page_query(
    account_id: str, after: str | None, status: str | None, mime_type: str | None, now: int, limit: int
) -> tuple[str, list[Any]]:
    sql = f"SELECT {OUTPUT_COLUMNS} FROM outputs WHERE account_id = ?"
    params: list[Any] = [account_id]
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
    return sql, params


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

"""Outputs once stored: read (with expiry evaluated on every read), open their bytes, delete.

Listing lives in :mod:`store.listing`."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from store.blobs.base import SMALL_READ_BYTES
from store.db import Tx
from store.errors import (
    StoreError,
    output_deleted,
    output_expired,
    output_not_found,
    upload_not_completed,
)
from store.quota import give_back_storage
from store.views import OUTPUT_COLUMNS, effective_status, render_output

if TYPE_CHECKING:
    from store.accounts import Account
    from store.owned_reads import OwnedOutput
    from store.service import ArtifactService


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
        # The common case in one statement: a ready output of this account becomes deleted.
        deleted = tx.one(
            "UPDATE outputs SET status = 'deleted', deleted_at = ? WHERE id = ? AND account_id = ? "
            f"AND status = 'ready' RETURNING {OUTPUT_COLUMNS}",
            (now, output_id, account.id),
        )
        if deleted is None:
            return _delete_unready(tx, account, output_id, now)
        if effective_status({**deleted, "status": "ready"}, now) == "expired":
            raise output_expired()  # past its expiry, so not deleted: raising rolls the update back
        given_back = give_back_storage(tx, account.id, deleted["size_bytes"], last=True)
        if given_back is not None:
            after = type(account).from_row(given_back)
        return deleted

    row = await service.db.write(delete)
    if row["blob_key"] is not None:
        await delete_blob(service, row["id"], row["blob_key"])
    return render_output(row, now, service.urls), after


def _delete_unready(tx: Tx, account: Account, output_id: str, now: int) -> dict[str, Any]:
    """A delete of an output that was not ready: unknown, expired, failed, or deleted already (which
    answers the stored deletion again); no storage comes back. (A ready row never arrives here: no
    status turns back into ready, so the ready row the caller's UPDATE missed was changed meanwhile.)"""
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
    return {**row, "status": "deleted", "deleted_at": now}


async def delete_blob(service: ArtifactService, output_id: str, key: str) -> None:
    """Remove a blob, then forget its key (in a statement shared with other deletes:
    :mod:`store.blob_key_forgetting`); a failure leaves the key for the sweeper to retry."""
    try:
        await service.blobs.delete(key)
    except StoreError:
        return
    await service.blob_keys.forget(output_id)


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk

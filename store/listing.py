"""The listing of an account's outputs (``GET /v1/outputs``, ``list_artifacts``): cursor paging,
filters, and the page rendered to JSON bytes without per-item work on the hot path.

Why a page is cheap: an output's wire fields (``views.output_fields``) never change except its
status, ``deletedAt`` (written with the ``deleted`` status) and ``expiresAt`` (never changed by the
service, only by operators and tests). So each item is rendered once to JSON bytes and kept under
``(id, effective status, expires_at)``; a page first reads just those three columns for its ids,
takes the rendered items it already has and reads and renders the full rows of the others only.
A changed status, expiry or deletion is a different key, so a page never shows a stale item.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from store.contract import list_contract
from store.db import Row, Tx
from store.errors import invalid_request
from store.schemas import CURSOR_PATTERN
from store.views import OUTPUT_COLUMNS, Urls, effective_status, output_fields

if TYPE_CHECKING:
    from store.accounts import Account
    from store.service import ArtifactService

STATUSES = ("ready", "failed", "expired", "deleted")
# Rendered items kept per service: ~600 bytes each, so at most a few MB.
RENDERED_ITEMS_LIMIT = 4096

ItemKey = tuple[str, str, int]


@dataclass(frozen=True, slots=True)
class ListingPage:
    """One page as the JSON document sent on the wire (``body``), fields in the published order."""

    body: bytes

    def document(self) -> dict[str, Any]:
        """The page as JSON values, for callers that hand it on as an object (MCP)."""
        document: dict[str, Any] = orjson.loads(self.body)
        return document


class RenderedItems:
    """Listing items already rendered to JSON bytes, by ``(id, effective status, expires_at)``.

    Bounded by emptying it when full: a plain dict keeps a lookup at ~50 ns (an LRU's bookkeeping
    would cost more per item than rendering saves on a page of hits), and refilling costs one
    render per item, i.e. what every page cost before the cache.
    """

    def __init__(self, limit: int = RENDERED_ITEMS_LIMIT) -> None:
        self._items: dict[ItemKey, bytes] = {}
        self._limit = limit

    def get(self, key: ItemKey) -> bytes | None:
        return self._items.get(key)

    def put(self, key: ItemKey, rendered: bytes) -> None:
        if len(self._items) >= self._limit:
            self._items.clear()
        self._items[key] = rendered


async def list_page(
    service: ArtifactService,
    account: Account,
    *,
    limit: int = 20,
    cursor: str | None = None,
    status: str | None = None,
    mime_type: str | None = None,
) -> ListingPage:
    """One page, newest first. The cursor is the last id of the previous page (opaque to clients)."""
    if not 1 <= limit <= 100:
        raise invalid_request("limit must be an integer from 1 to 100.")
    if status is not None and status not in STATUSES:
        raise invalid_request("status must be one of ready, failed, expired, deleted.")
    after = _decode_cursor(cursor) if cursor else None
    now = service.clock.now_ms()
    sql, params = _page_query(account.id, after, status, mime_type, now, limit)
    cache = service.rendered_items
    urls = service.urls

    def read_page(tx: Tx) -> tuple[list[bytes], bool, str | None]:
        # Planned for this account at each run: a prepared (generic) plan assumes every account holds an
        # average share of the table and, once one account holds most of it, walks the primary key
        # past all of that account's rows to find a small account's page (~5 ms instead of ~0.05 ms).
        heads = tx.all(sql, params, prepare=False)
        has_more = len(heads) > limit
        page = heads[:limit]
        keys = [(head["id"], effective_status(head, now), head["expires_at"]) for head in page]
        items = [cache.get(key) for key in keys]
        missing = [key[0] for key, item in zip(keys, items, strict=True) if item is None]
        if missing:
            fresh = _render_rows(tx, account.id, missing, now, urls, cache)
            items = [item if item is not None else fresh.get(key[0]) for key, item in zip(keys, items, strict=True)]
        return [item for item in items if item is not None], has_more, page[-1]["id"] if page else None

    items, has_more, last_id = await service.db.read(read_page)
    next_cursor = _encode_cursor(last_id) if has_more and last_id is not None else None
    filters = {name: value for name, value in (("status", status), ("mimeType", mime_type)) if value is not None}
    body = orjson.dumps(
        {
            "outputs": orjson.Fragment(b"[" + b",".join(items) + b"]"),
            "pageInfo": {"nextCursor": next_cursor, "hasMore": has_more},
            "agent_contract": list_contract(next_cursor, limit, filters),
        }
    )
    return ListingPage(body)


def _render_rows(
    tx: Tx, account_id: str, output_ids: Sequence[str], now: int, urls: Urls, cache: RenderedItems
) -> dict[str, bytes]:
    """Read and render the full rows of these outputs, keeping each rendering for later pages.

    A row read here may have changed since the page's ids were read (deleted meanwhile): it is shown
    as it is now, which is what a listing taken a moment later would show.
    """
    marks = ", ".join("?" * len(output_ids))
    rows = tx.all(
        f"SELECT {OUTPUT_COLUMNS} FROM outputs WHERE account_id = ? AND id IN ({marks})", (account_id, *output_ids)
    )
    rendered: dict[str, bytes] = {}
    for row in rows:
        item = _render_item(row, now, urls)
        cache.put((row["id"], effective_status(row, now), row["expires_at"]), item)
        rendered[row["id"]] = item
    return rendered


def _render_item(row: Row, now: int, urls: Urls) -> bytes:
    return orjson.dumps(output_fields(row, effective_status(row, now), urls))


def _page_query(
    account_id: str, after: str | None, status: str | None, mime_type: str | None, now: int, limit: int
) -> tuple[str, list[Any]]:
    """The page's ids with what decides their rendering (status, expiry), one more than the page
    to tell whether another page follows."""
    sql = "SELECT id, status, expires_at FROM outputs WHERE account_id = ?"
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


def _encode_cursor(output_id: str) -> str:
    return base64.urlsafe_b64encode(output_id.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    """The id a cursor names. Any unpadded base64url text (CURSOR_PATTERN, as published) is a cursor:
    it only bounds ids from above within the caller's own outputs, so a forged one reveals nothing."""
    if not re.fullmatch(CURSOR_PATTERN, cursor):
        raise invalid_request("cursor is not valid; pass pageInfo.nextCursor unchanged.")
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("utf-8", "replace")

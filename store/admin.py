"""Operator views of accounts (``outputlayer accounts list`` / ``show``): ids, plan, quota and purchases.

Read-only and synchronous, like the other command-line use cases; the answers use the API's field
names so an operator reads the same words a client sees.
"""

from __future__ import annotations

from typing import Any

from store.clock import iso_ms
from store.db import Database, Tx
from store.errors import invalid_request

LIST_LIMIT_MAX = 10_000


def list_accounts(db: Database, limit: int) -> list[dict[str, Any]]:
    """Accounts, newest first (ids are monotonic ULIDs), at most ``limit`` of them."""
    if not 1 <= limit <= LIST_LIMIT_MAX:
        raise invalid_request(f"--limit must be between 1 and {LIST_LIMIT_MAX}.")
    rows = db.read_sync(
        lambda tx: tx.all(
            "SELECT id, email, plan_tier, free_remaining, credits_remaining, storage_used_bytes, "
            "storage_limit_bytes, created_at FROM accounts ORDER BY id DESC LIMIT ?",
            (limit,),
        )
    )
    return [_account(row) for row in rows]


def describe_account(db: Database, account_id: str) -> dict[str, Any]:
    """One account with its quota and every purchase (newest first)."""

    def load(tx: Tx) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        row = tx.one(
            "SELECT id, email, plan_tier, free_remaining, credits_remaining, storage_used_bytes, "
            "storage_limit_bytes, created_at FROM accounts WHERE id = ?",
            (account_id,),
        )
        purchases = tx.all(
            "SELECT id, pack_id, status, provider_order_id, capture_id, credits_added, created_at, updated_at "
            "FROM purchases WHERE account_id = ? ORDER BY id DESC",
            (account_id,),
        )
        return row, purchases

    row, purchases = db.read_sync(load)
    if row is None:
        raise invalid_request(f"No account {account_id}.")
    return {**_account(row), "purchases": [_purchase(p) for p in purchases]}


def _account(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "accountId": row["id"],
        "email": row["email"],
        "planTier": row["plan_tier"],
        "freeRemaining": int(row["free_remaining"]),
        "creditsRemaining": int(row["credits_remaining"]),
        "storageUsedBytes": int(row["storage_used_bytes"]),
        "storageLimitBytes": int(row["storage_limit_bytes"]),
        "createdAt": iso_ms(int(row["created_at"])),
    }


def _purchase(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "purchaseId": row["id"],
        "packId": row["pack_id"],
        "status": row["status"],
        "creditsAdded": int(row["credits_added"]),
        "paypalOrderId": row["provider_order_id"],
        "paypalCaptureId": row["capture_id"],
        "createdAt": iso_ms(int(row["created_at"])),
        "updatedAt": iso_ms(int(row["updated_at"])),
    }

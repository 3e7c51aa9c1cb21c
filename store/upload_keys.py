"""One Idempotency-Key namespace per account for both ways in (SPEC section 14): a key that an upload
link holds (``POST /v1/uploads``) is a conflict on ``POST /v1/outputs`` and the reverse; a link's row
is forgotten with the same retention as a completed upload's key.

The upload protocol (:mod:`store.service`) and the upload links (:mod:`store.upload_links`) both ask
here, inside their own transactions.
"""

from __future__ import annotations

from store.db import Tx


def key_held_by_link(tx: Tx, account_id: str, key: str) -> bool:
    """Whether an upload link was created with this key."""
    row = tx.one("SELECT 1 AS held FROM upload_links WHERE account_id = ? AND idempotency_key = ?", (account_id, key))
    return row is not None


def prune_upload_links(tx: Tx, created_before_ms: int) -> int:
    """Forget links (and so free their keys) past the idempotency retention."""
    return tx.execute("DELETE FROM upload_links WHERE created_at < ?", (created_before_ms,))

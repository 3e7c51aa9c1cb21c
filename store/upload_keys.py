"""One Idempotency-Key namespace per account for both ways in (SPEC section 14): a key that an upload
link holds (``POST /v1/uploads``) is a conflict on ``POST /v1/outputs`` and the reverse; a link's row
is forgotten with the same retention as a completed upload's key.

The upload protocol (:mod:`store.service`) and the upload links (:mod:`store.upload_links`) both ask
here, inside their own transactions.
"""

from __future__ import annotations

from store.db import Tx

# Whether an upload link was created with a key, as a column of a query over ``accounts a`` (one
# parameter: the key); the upload's claim reads it with the slot and the account in one statement.
HELD_BY_LINK_COLUMN = (
    "EXISTS (SELECT 1 FROM upload_links l WHERE l.account_id = a.id AND l.idempotency_key = ?) AS held_by_link"
)


def prune_upload_links(tx: Tx, created_before_ms: int) -> int:
    """Forget links (and so free their keys) past the idempotency retention."""
    return tx.execute("DELETE FROM upload_links WHERE created_at < ?", (created_before_ms,))

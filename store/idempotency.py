"""Idempotency-Key slots: claim, complete, release, heartbeat and reclaim (SPEC section 6).

"What happens when the same key arrives twice" is answered here: a completed key (kept 7 days) turns the
upload into a replay check, a key in flight answers 503 until its heartbeat goes stale, a stale one is
reclaimed with a fresh output id, and a key an upload link holds is a conflict for any other upload.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from store.accounts import Account, gone_account
from store.db import ACCOUNT_COLUMNS, Tx
from store.errors import StoreError, idempotency_conflict
from store.limits import IDEMPOTENCY_RETENTION_MS
from store.plans import uploads_per_hour
from store.quota import check_quota
from store.ratelimit import RateState
from store.upload_keys import HELD_BY_LINK_COLUMN, prune_upload_links

if TYPE_CHECKING:
    from store.service import ArtifactService


@dataclass(frozen=True, slots=True)
class Claim:
    output_id: str
    replay_fingerprint: str | None
    replay_output_id: str | None
    previous_output_id: str | None
    rate: RateState | None


def in_flight() -> StoreError:
    return StoreError(
        "idempotency_in_flight",
        "A request with this Idempotency-Key is already being processed. "
        "Retry with the same key and payload after 5 seconds.",
    )


_SLOT_COLUMNS = ("state", "fingerprint", "output_id", "created_at", "heartbeat_at")
# Everything a claim decides on, in one statement: the account (quota columns), its slot for the key (if
# any) and whether an upload link holds the key.
_CLAIM_STATE_SQL = (
    f"SELECT {', '.join(f'a.{name.strip()}' for name in ACCOUNT_COLUMNS.split(','))}, "
    + ", ".join(f"k.{name} AS slot_{name}" for name in _SLOT_COLUMNS)
    + f", {HELD_BY_LINK_COLUMN} "
    "FROM accounts a LEFT JOIN idempotency_keys k ON k.account_id = a.id AND k.key = ? WHERE a.id = ?"
)


def claim(
    service: ArtifactService,
    tx: Tx,
    account: Account,
    key: str,
    output_id: str,
    floor: int,
    now: int,
    via_link: bool = False,
) -> Claim:
    """Claim ``key`` for a new upload of at least ``floor`` bytes, or answer what the key already is."""
    known = tx.one(_CLAIM_STATE_SQL, (key, key, account.id))
    if known is None:
        raise gone_account()
    if not via_link and known["held_by_link"]:
        raise idempotency_conflict()
    slot = None if known["slot_output_id"] is None else {name: known[f"slot_{name}"] for name in _SLOT_COLUMNS}
    previous = None
    if slot is not None:
        if slot["state"] == "completed" and slot["created_at"] > now - IDEMPOTENCY_RETENTION_MS:
            return Claim(output_id, slot["fingerprint"], slot["output_id"], None, None)
        if slot["state"] == "in_flight" and slot["heartbeat_at"] > now - service.stale_slot_ms:
            raise in_flight()
        if slot["state"] == "in_flight":
            previous = str(slot["output_id"])
    limit = uploads_per_hour(service.settings, account.plan_tier)
    rate = service.consume_rate(tx, f"uploads:{account.id}", limit, 3600)
    check_quota(Account.from_row(known), floor)
    # Last: the claim commits with taking the slot (one round trip on PostgreSQL). A slot another claim
    # took meanwhile was not changed, so refusing afterwards has nothing to undo.
    if _take_slot(tx, account.id, key, output_id, now, slot) != 1:
        raise in_flight()
    return Claim(output_id, None, None, previous, rate)


def _take_slot(tx: Tx, account_id: str, key: str, output_id: str, now: int, slot: dict[str, Any] | None) -> int:
    if slot is None:
        return tx.execute(
            "INSERT INTO idempotency_keys (account_id, key, state, fingerprint, output_id, created_at, "
            "heartbeat_at) VALUES (?, ?, 'in_flight', NULL, ?, ?, ?) ON CONFLICT (account_id, key) DO NOTHING",
            (account_id, key, output_id, now, now),
            last=True,
        )
    return tx.execute(
        "UPDATE idempotency_keys SET state = 'in_flight', fingerprint = NULL, output_id = ?, created_at = ?, "
        "heartbeat_at = ? WHERE account_id = ? AND key = ? AND output_id = ?",
        (output_id, now, now, account_id, key, slot["output_id"]),
        last=True,
    )


def complete(tx: Tx, account_id: str, key: str, output_id: str, fp: str, now: int) -> None:
    """Mark the slot completed with the upload's fingerprint; fails when it was reclaimed meanwhile."""
    completed = tx.execute(
        "UPDATE idempotency_keys SET state = 'completed', fingerprint = ?, heartbeat_at = ? "
        "WHERE account_id = ? AND key = ? AND output_id = ? AND state = 'in_flight'",
        (fp, now, account_id, key, output_id),
    )
    if completed != 1:
        raise StoreError("upload_failed", "The upload took too long and its slot was reclaimed. Retry.")


def release(tx: Tx, account_id: str, key: str, output_id: str) -> int:
    """Free an in-flight slot (a failed upload releases its key)."""
    return tx.execute(
        "DELETE FROM idempotency_keys WHERE account_id = ? AND key = ? AND output_id = ? AND state = 'in_flight'",
        (account_id, key, output_id),
    )


def heartbeat(tx: Tx, account_id: str, key: str, output_id: str, now: int) -> int:
    """An upload still receiving bytes keeps its slot from going stale."""
    return tx.execute(
        "UPDATE idempotency_keys SET heartbeat_at = ? WHERE account_id = ? AND key = ? AND output_id = ?",
        (now, account_id, key, output_id),
    )


def stale_slots(tx: Tx, stale_before: int) -> list[dict[str, Any]]:
    """In-flight slots whose heartbeat stopped: their uploads died with a process."""
    return tx.all(
        "SELECT account_id, key, output_id FROM idempotency_keys WHERE state = 'in_flight' AND heartbeat_at < ?",
        (stale_before,),
    )


def prune_completed(tx: Tx, now: int) -> None:
    """Forget completed keys (and the upload links naming them) past their retention."""
    tx.execute(
        "DELETE FROM idempotency_keys WHERE state = 'completed' AND created_at < ?",
        (now - IDEMPOTENCY_RETENTION_MS,),
    )
    prune_upload_links(tx, now - IDEMPOTENCY_RETENTION_MS)

"""Lifecycle: the sweeper's pass (expire due outputs, remove left-over blobs, reclaim dead upload slots,
prune counters) and the storage-invariant check (SPEC section 7). Reads expire outputs on their own
(store/views.py); the sweep only makes the rows and the storage catch up."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from anyio.lowlevel import checkpoint

from store import idempotency, ratelimit
from store.db import Tx
from store.limits import SWEEP_BATCH
from store.outputs import blob_key, delete_blob
from store.quota import give_back_storage

if TYPE_CHECKING:
    from store.service import ArtifactService


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


async def sweep(service: ArtifactService) -> SweepReport:
    """One expiry pass: expire due rows, delete their blobs, reclaim dead upload slots, prune counters.

    SQLite writes and file deletes may run on the event loop itself, so the pass yields to waiting
    requests before each item: a large pass never holds the loop for long.
    """
    now = service.clock.now_ms()
    expired = await _expire_due(service, now)
    blobs_deleted = await _delete_leftover_blobs(service)
    stale = await service.db.read(lambda tx: idempotency.stale_slots(tx, now - service.stale_slot_ms))
    for slot in stale:
        await checkpoint()
        await service.blobs.delete(blob_key(slot["account_id"], slot["output_id"]))
        release = functools.partial(
            idempotency.release, account_id=slot["account_id"], key=slot["key"], output_id=slot["output_id"]
        )
        await service.db.write(release)

    def prune(tx: Tx) -> int:
        idempotency.prune_completed(tx, now)
        return ratelimit.prune(tx, now - 3600 * 1000)

    pruned = await service.db.write(prune)
    return SweepReport(expired, blobs_deleted, len(stale), pruned)


async def _expire_due(service: ArtifactService, now: int) -> int:
    expired = 0
    while True:
        due = await service.db.read(
            lambda tx: tx.all(
                "SELECT id, account_id, size_bytes FROM outputs WHERE status = 'ready' AND expires_at <= ? "
                "ORDER BY expires_at LIMIT ?",
                (now, SWEEP_BATCH),
            )
        )
        for row in due:
            await checkpoint()
            expired += await service.db.write(functools.partial(expire, row=row))
        if len(due) < SWEEP_BATCH:
            return expired


async def _delete_leftover_blobs(service: ArtifactService) -> int:
    leftovers = await service.db.read(
        lambda tx: tx.all(
            "SELECT id, blob_key FROM outputs WHERE status IN ('expired', 'deleted') AND blob_key IS NOT NULL LIMIT ?",
            (SWEEP_BATCH * 5,),
        )
    )
    for row in leftovers:
        await checkpoint()
        await delete_blob(service, row["id"], row["blob_key"])
    return len(leftovers)


def expire(tx: Tx, row: dict[str, Any]) -> int:
    """Mark one due output expired and give its storage back; 0 when another sweeper got there first."""
    changed = tx.execute("UPDATE outputs SET status = 'expired' WHERE id = ? AND status = 'ready'", (row["id"],))
    if changed:
        give_back_storage(tx, row["account_id"], row["size_bytes"], last=True)
    return changed


def check(service: ArtifactService) -> CheckReport:
    """Verify the storage invariant (SPEC section 7); every problem found is one line in the report."""
    report = CheckReport()

    def load(tx: Tx) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        accounts = tx.all("SELECT id, storage_used_bytes FROM accounts")
        outputs = tx.all("SELECT id, account_id, status, size_bytes, blob_key FROM outputs")
        slots = tx.all("SELECT account_id, output_id FROM idempotency_keys WHERE state = 'in_flight'")
        return accounts, outputs, slots

    accounts, outputs, slots = service.db.read_sync(load)
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
    in_flight = {blob_key(s["account_id"], s["output_id"]) for s in slots}
    lingering = {row["blob_key"] for row in outputs if row["status"] != "ready" and row["blob_key"]}
    present = set(service.blobs.keys())
    for key in sorted(expected_blobs - present):
        report.problems.append(f"blob missing for ready output: {key}")
    for key in sorted(present - expected_blobs - in_flight - lingering):
        report.problems.append(f"blob without a ready output: {key}")
    return report

"""Quota: the only arithmetic on an account's upload units and storage bytes.

An upload costs one unit (free uploads first, then credits) and adds its bytes; deleting or expiring a
ready output gives its bytes back (the unit is not refunded). Every caller that checks, charges or gives
back goes through these functions, so the storage invariant (SPEC section 7) has one author.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from store.accounts import gone_account, load_account
from store.db import ACCOUNT_COLUMNS, RowMissing
from store.errors import StoreError

if TYPE_CHECKING:
    from store.accounts import Account
    from store.db import Tx
    from store.service import ArtifactService

T = TypeVar("T")
# How a charged unit charges: called as its last statement with the transaction, the account and the size.
Charge = Callable[["Tx", "Account", int], "Account"]


def check_quota(account: Account, size: int) -> None:
    """Refuse an upload of ``size`` bytes the account cannot pay for or hold."""
    if account.free_remaining <= 0 and account.credits_remaining <= 0:
        raise StoreError("quota_exhausted", "No free quota or credits remaining. Purchase credits to continue.")
    if account.storage_used_bytes + size > account.storage_limit_bytes:
        raise StoreError(
            "storage_limit_reached",
            f"Storing {size} more bytes would exceed the storage limit of {account.storage_limit_bytes} bytes "
            f"({account.storage_used_bytes} used). Delete outputs or buy a pack.",
        )


def charge_upload(tx: Tx, account: Account, size: int) -> Account:
    """Take one unit and add ``size`` bytes (the account row is locked by the caller); the account after."""
    free_used = 1 if account.free_remaining > 0 else 0
    tx.execute(
        "UPDATE accounts SET free_remaining = free_remaining - ?, credits_remaining = credits_remaining - ?, "
        "storage_used_bytes = storage_used_bytes + ? WHERE id = ?",
        (free_used, 1 - free_used, size, account.id),
    )
    return type(account)(
        account.id,
        account.plan_tier,
        account.free_remaining - free_used,
        account.credits_remaining - (1 - free_used),
        account.storage_used_bytes + size,
        account.storage_limit_bytes,
    )


# Checks and charges in one statement (the rule of check_quota and charge_upload, in SQL): the row changes
# only when a unit is left and the bytes fit. Every right-hand side reads the row as it was.
_CHARGE_IF_ALLOWED_SQL = (
    "UPDATE accounts SET "
    "free_remaining = free_remaining - CASE WHEN free_remaining > 0 THEN 1 ELSE 0 END, "
    "credits_remaining = credits_remaining - CASE WHEN free_remaining > 0 THEN 0 ELSE 1 END, "
    "storage_used_bytes = storage_used_bytes + ? "
    "WHERE id = ? AND (free_remaining > 0 OR credits_remaining > 0) AND storage_used_bytes + ? <= storage_limit_bytes "
    f"RETURNING {ACCOUNT_COLUMNS}"
)


def charge_if_allowed(tx: Tx, account: Account, size: int) -> Account:
    """Check and charge an upload of ``size`` bytes in one statement; the account after. The UPDATE takes the
    row's lock and holds it until commit, so a settle runs this last (the lock is held one round trip).
    A refusal reads the row to say why: ``quota_exhausted`` or ``storage_limit_reached``."""
    row = tx.one(_CHARGE_IF_ALLOWED_SQL, (size, account.id, size))
    if row is not None:
        return type(account).from_row(row)
    current = tx.lock_account(account.id)
    if current is None:
        raise gone_account()
    locked = type(account).from_row(current)
    check_quota(locked, size)
    # Allowed after all (a grant committed between the two statements): the row is locked now.
    return charge_upload(tx, locked, size)


def charge_with_commit(tx: Tx, account: Account, size: int) -> Account:
    """Check and charge an upload of ``size`` bytes as the unit's last statement, sent with its COMMIT (one
    round trip fewer than :func:`charge_if_allowed`, and the row lock held only while PostgreSQL commits);
    the account after. A refusal raises :class:`~store.db.RowMissing` and nothing of the unit commits:
    :func:`write_charged` names it."""
    row = tx.one(_CHARGE_IF_ALLOWED_SQL, (size, account.id, size), last=True, required=True)
    assert row is not None  # required=True raises instead of answering None
    return type(account).from_row(row)


async def write_charged(service: ArtifactService, account: Account, size: int, unit: Callable[[Tx, Charge], T]) -> T:
    """Run the write ``unit``, which ends with ``charge(tx, account, size)``: first charging with the
    COMMIT (:func:`charge_with_commit`). A refusal reads the account once to say why (``quota_exhausted``
    or ``storage_limit_reached``); when the account allows it after all (a grant committed between the
    two), the unit runs once more, charging the row-locking way (:func:`charge_if_allowed`)."""
    try:
        return await service.db.write(lambda tx: unit(tx, charge_with_commit))
    except RowMissing:
        pass
    check_quota(await load_account(service, account.id), size)
    return await service.db.write(lambda tx: unit(tx, charge_if_allowed))


def give_back_storage(tx: Tx, account_id: str, size: int, *, last: bool = False) -> dict[str, Any] | None:
    """Return the bytes of a ready output that was just deleted or expired (exactly once, by the caller's
    conditional status update); the account row after, so nobody reads it again. The UPDATE takes the
    row's lock itself: no separate locking read. ``last``: the caller's unit ends with it (``Tx.one``)."""
    return tx.one(
        f"UPDATE accounts SET storage_used_bytes = storage_used_bytes - ? WHERE id = ? RETURNING {ACCOUNT_COLUMNS}",
        (size, account_id),
        last=last,
    )

"""Accounts: registration (the key shown once, its digest stored), authentication by key, balances and
operator grants."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from store.contract import balance_contract, register_contract
from store.db import ACCOUNT_COLUMNS, Tx
from store.errors import StoreError, invalid_request, missing_api_key
from store.ids import key_digest, looks_like_api_key, new_api_key
from store.ratelimit import RateState

if TYPE_CHECKING:
    from store.service import ArtifactService


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    plan_tier: str
    free_remaining: int
    credits_remaining: int
    storage_used_bytes: int
    storage_limit_bytes: int

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Account:
        return cls(
            id=row["id"],
            plan_tier=row["plan_tier"],
            free_remaining=int(row["free_remaining"]),
            credits_remaining=int(row["credits_remaining"]),
            storage_used_bytes=int(row["storage_used_bytes"]),
            storage_limit_bytes=int(row["storage_limit_bytes"]),
        )


def gone_account() -> StoreError:
    return StoreError("invalid_api_key", "The account of this API key no longer exists.")


async def register(
    service: ArtifactService, *, email: str | None, client: str
) -> tuple[dict[str, Any], RateState | None]:
    """Create an account and its key; the key is returned once and only its digest is stored.

    ``client`` names who registers, for the per-client registration limit (REST: the client's IP).
    """
    api_key = new_api_key()
    account_id = service.ids.new("key")
    now = service.clock.now_ms()
    settings = service.settings

    def insert(tx: Tx) -> RateState | None:
        limit = settings.rate_limits.registrations_per_hour
        rate = service.consume_rate(tx, f"register:{client}", limit, 3600)
        tx.execute(
            "INSERT INTO accounts (id, key_hash, email, plan_tier, free_remaining, credits_remaining, "
            "storage_used_bytes, storage_limit_bytes, created_at) VALUES (?, ?, ?, 'free', ?, 0, 0, ?, ?)",
            (account_id, key_digest(api_key), email, settings.free_uploads, settings.storage_limit_bytes, now),
        )
        return rate

    rate = await service.db.write(insert)
    return {"apiKey": api_key, "accountId": account_id, "agent_contract": register_contract()}, rate


def presented_key_digest(api_key: str | None) -> str:
    """The stored digest to look a presented key up by; a missing or malformed key is refused first."""
    if not api_key:
        raise missing_api_key()
    if not looks_like_api_key(api_key):
        raise StoreError("invalid_api_key", "The API key is not valid.")
    return key_digest(api_key)


async def authenticate(service: ArtifactService, api_key: str | None) -> Account:
    """The account of an API key; ``None`` when the caller sent none."""
    digest = presented_key_digest(api_key)
    row = await service.db.one(f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE key_hash = ?", (digest,))
    if row is None:
        raise StoreError("invalid_api_key", "The API key is not valid.")
    return Account.from_row(row)


async def load_account(service: ArtifactService, account_id: str) -> Account:
    row = await service.db.read(
        lambda tx: tx.one(f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?", (account_id,))
    )
    if row is None:
        raise gone_account()
    return Account.from_row(row)


def quota_fields(account: Account) -> dict[str, Any]:
    """An account's units and storage as the wire names them (balance, capabilities)."""
    return {
        "accountId": account.id,
        "planTier": account.plan_tier,
        "freeRemaining": account.free_remaining,
        "creditsRemaining": account.credits_remaining,
        "storageUsedBytes": account.storage_used_bytes,
        "storageLimitBytes": account.storage_limit_bytes,
    }


def balance(account: Account) -> dict[str, Any]:
    return {
        **quota_fields(account),
        "agent_contract": balance_contract(account.free_remaining, account.credits_remaining),
    }


def grant(service: ArtifactService, account_id: str, credits: int, storage_bytes: int) -> Account:
    """Operator grant (``outputlayer accounts grant``): add credits and storage to an account."""
    if credits < 0 or storage_bytes < 0:
        raise invalid_request("Grants must be zero or positive.")

    def apply(tx: Tx) -> Account:
        row = tx.lock_account(account_id)
        if row is None:
            raise StoreError("invalid_request", f"No account {account_id}.")
        tx.execute(
            "UPDATE accounts SET credits_remaining = credits_remaining + ?, "
            "storage_limit_bytes = storage_limit_bytes + ? WHERE id = ?",
            (credits, storage_bytes, account_id),
        )
        updated = tx.one(f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?", (account_id,))
        assert updated is not None
        return Account.from_row(updated)

    return service.db.write_sync(apply)

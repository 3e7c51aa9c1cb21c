"""The artifact service: the one door to state. Every use case of REST and MCP is a method here.

Each method is one line that hands the use case to the module owning its rule (docs/ARCHITECTURE.md):
accounts, uploads (with idempotency and quota under it), outputs, sharing, lifecycle, billing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from store import accounts, admin, lifecycle, listing, outputs, owned_reads, rate_families, ratelimit, sharing, uploads
from store.accounts import Account
from store.billing import Billing
from store.blob_key_forgetting import BlobKeyForgetter
from store.blobs import BlobStore
from store.clock import Clock, SystemClock
from store.db import Database, Tx
from store.ids import IdFactory
from store.lifecycle import CheckReport, SweepReport
from store.listing import ListingPage, RenderedItems
from store.outputs import Content, OutputResult
from store.owned_reads import OwnedOutput
from store.rate_families import RateFamily
from store.ratelimit import RateState
from store.settings import Settings
from store.uploads import UploadResult, UploadSession
from store.views import Urls

__all__ = [
    "Account",
    "ArtifactService",
    "CheckReport",
    "Content",
    "ListingPage",
    "OutputResult",
    "SweepReport",
    "UploadResult",
    "UploadSession",
]


class ArtifactService:
    """Use cases over a database, a blob store and a clock; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        blobs: BlobStore,
        *,
        clock: Clock | None = None,
        ids: IdFactory | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.blobs = blobs
        self.clock = clock or SystemClock()
        self.ids = ids or IdFactory()
        self.urls = Urls(settings.base_url, settings.effective_public_base_url)
        self.signer = sharing.LinkSigner(db)
        self.stale_slot_ms = settings.stale_upload_seconds * 1000
        self.billing = Billing(settings, db, self.clock, self.ids)
        self.rendered_items = RenderedItems()
        self.blob_keys = BlobKeyForgetter(db)

    def close(self) -> None:
        self.db.close()
        self.blobs.close()

    async def aclose(self) -> None:
        """Close from inside the event loop that ran the service (the lifespan's end, a command's last
        step): the database's async pool is closed on its own loop."""
        await self.blob_keys.drain()
        await self.db.aclose()
        self.blobs.close()

    # --- accounts (store/accounts.py, store/admin.py) ------------------------------------------

    async def register(self, *, email: str | None = None, client: str) -> tuple[dict[str, Any], RateState | None]:
        """Create an account and its key; the key is returned once and only its digest is stored."""
        return await accounts.register(self, email=email, client=client)

    async def authenticate(self, api_key: str | None) -> Account:
        """The account of an API key (``None`` when none was sent: ``missing_api_key``)."""
        return await accounts.authenticate(self, api_key)

    async def account(self, account_id: str) -> Account:
        return await accounts.load_account(self, account_id)

    def balance(self, account: Account) -> dict[str, Any]:
        return accounts.balance(account)

    def grant(self, account_id: str, credits: int, storage_bytes: int) -> Account:
        """Operator grant (``outputlayer accounts grant``): add credits and storage to an account."""
        return accounts.grant(self, account_id, credits, storage_bytes)

    def list_accounts(self, limit: int) -> list[dict[str, Any]]:
        """Operator listing (``outputlayer accounts list``)."""
        return admin.list_accounts(self.db, limit)

    def describe_account(self, account_id: str) -> dict[str, Any]:
        """Operator view of one account and its purchases (``outputlayer accounts show``)."""
        return admin.describe_account(self.db, account_id)

    # --- billing (store/billing.py) ------------------------------------------------------------

    async def checkout(self, account: Account, document: Any) -> dict[str, Any]:
        """Start a pack purchase (``billing_disabled`` until PayPal is configured)."""
        return await self.billing.checkout(account.id, document)

    async def verify_purchase(self, account: Account, purchase_id: str) -> dict[str, Any]:
        return await self.billing.verify(account.id, purchase_id)

    async def paypal_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> dict[str, Any]:
        return await self.billing.webhook(headers, raw_body)

    # --- rate limits (store/ratelimit.py) ------------------------------------------------------

    def consume_rate(self, tx: Tx, bucket: str, limit: int, window_seconds: int) -> RateState | None:
        """Count one event in ``bucket`` inside the caller's transaction (nothing when limits are off)."""
        if not self.settings.rate_limits_enabled:
            return None
        return ratelimit.consume(tx, bucket, limit, window_seconds, self.clock.now_ms())

    async def enforce_rate(self, family: RateFamily, subject: str) -> RateState | None:
        """Count one request of a rate-limit family (``family_of(use_case)``, store/rate_families.py)."""
        if not self.settings.rate_limits_enabled:
            return None
        limit, window = rate_families.budget(self.settings.rate_limits, family)
        return await self.db.write(lambda tx: self.consume_rate(tx, f"{family}:{subject}", limit, window))

    # --- uploads (store/uploads.py, store/idempotency.py, store/quota.py) ----------------------

    def upload_limit(self, account: Account) -> int:
        return uploads.upload_limit(self, account)

    async def begin_upload(
        self,
        account: Account,
        idempotency_key: str | None,
        *,
        size: int | None = None,
        min_size: int = 0,
        via_link: bool = False,
    ) -> UploadSession:
        """Open an upload session; see :mod:`store.uploads`."""
        return await uploads.begin_upload(
            self, account, idempotency_key, size=size, min_size=min_size, via_link=via_link
        )

    # --- reading, deleting, listing (store/outputs.py, store/listing.py) -----------------------

    async def authenticate_with_output(self, api_key: str | None, output_id: str) -> tuple[Account, OwnedOutput]:
        """:meth:`authenticate` and the row of one of its outputs, in one statement (store/owned_reads.py)."""
        return await owned_reads.authenticate_with_output(self, api_key, output_id)

    async def get_output(self, account: Account, output_id: str, found: OwnedOutput | None = None) -> OutputResult:
        return await outputs.get_output(self, account, output_id, found)

    async def open_content(self, account: Account, output_id: str, found: OwnedOutput | None = None) -> Content:
        """The bytes of an owned output; a public one redirects to its public URL."""
        return await outputs.open_content(self, account, output_id, found)

    async def open_public(self, output_id: str) -> Content:
        """The bytes of a public output, for anyone; private and unknown ids are alike not found."""
        return await outputs.open_public(self, output_id)

    async def read_content(
        self, content: Content, start: int = 0, length: int | None = None
    ) -> bytes | AsyncIterator[bytes]:
        """The bytes: small spans whole, larger ones as a stream whose first chunk is already read."""
        return await outputs.read_content(self, content, start, length)

    async def delete_output(self, account: Account, output_id: str) -> dict[str, Any]:
        """Soft delete: the row stays (410 forever), the blob goes, the storage comes back exactly once."""
        body, _ = await outputs.delete_output(self, account, output_id)
        return body

    async def delete_output_for(self, account: Account, output_id: str) -> tuple[dict[str, Any], Account]:
        """:meth:`delete_output`, and the account after it (for the quota headers, without reading it again)."""
        return await outputs.delete_output(self, account, output_id)

    async def list_outputs(
        self,
        account: Account,
        *,
        limit: int = 20,
        cursor: str | None = None,
        status: str | None = None,
        mime_type: str | None = None,
    ) -> dict[str, Any]:
        """One page, newest first, as JSON values."""
        page = await self.list_page(account, limit=limit, cursor=cursor, status=status, mime_type=mime_type)
        return page.document()

    async def list_page(
        self,
        account: Account,
        *,
        limit: int = 20,
        cursor: str | None = None,
        status: str | None = None,
        mime_type: str | None = None,
    ) -> ListingPage:
        """One page, newest first, rendered as the JSON document of ``GET /v1/outputs``."""
        return await listing.list_page(self, account, limit=limit, cursor=cursor, status=status, mime_type=mime_type)

    # --- share links (store/sharing.py) ------------------------------------------------------

    async def share(self, account: Account, output_id: str, expires_in_seconds: int | None) -> dict[str, Any]:
        """A link that serves the bytes without a key: the public URL, or a signed expiring one."""
        return await sharing.share_link(self, account, output_id, expires_in_seconds)

    async def open_shared(self, token: str) -> Content:
        """The bytes behind a share link, while the link and the output both live."""
        return await sharing.open_shared(self, token)

    # --- lifecycle (store/lifecycle.py) -------------------------------------------------------

    async def sweep(self) -> SweepReport:
        """One expiry pass: expire due rows, delete their blobs, reclaim dead upload slots, prune counters."""
        return await lifecycle.sweep(self)

    def check(self) -> CheckReport:
        """Verify the storage invariant (SPEC section 7); every problem found is one line in the report."""
        return lifecycle.check(self)

"""Billing: credit packs bought through PayPal, credited exactly once (SPEC section 7, steps 1-4).

Purchase states: ``pending`` (order created, not paid), ``confirmed`` (captured and credited),
``failed`` (capture declined, or a capture that does not match the pack), ``refunded`` (credits
taken back). A purchase moves by guarded ``UPDATE … WHERE status IN (…)``, so concurrent deliveries
of one event cannot both move it.

Exactly once: crediting inserts the PayPal capture id into ``billing_captures`` (primary key) with
``ON CONFLICT DO NOTHING`` in the same transaction that adds the credits; only the transaction
whose insert took effect credits, whichever delivery, process or ``verify`` call it was. The
webhook and ``verify`` paths both end in :meth:`Billing._apply_order` / :meth:`Billing._credit`,
so a lost webhook is recovered by ``verify`` under the same rule.

Every webhook is verified through PayPal (``verify-webhook-signature``) before it changes anything.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from store.clock import Clock
from store.contract import purchase_contract
from store.db import Database, Tx
from store.errors import StoreError, invalid_request
from store.ids import IdFactory
from store.models import PurchaseRow, column_list
from store.paypal import TRANSMISSION_HEADERS, PayPalClient, PayPalRefused, PayPalUnavailable
from store.plans import PACKS, Pack, higher_tier
from store.schemas import Checkout
from store.settings import Settings
from store.validation import parse_request

log = logging.getLogger("outputlayer.billing")

CURRENCY = "USD"
WEBHOOK_BODY_LIMIT = 262_144
# Capture refusals that mean the buyer's payment was declined (the purchase fails; a new checkout may work).
DECLINED_ISSUES = frozenset({"INSTRUMENT_DECLINED", "TRANSACTION_REFUSED"})
PURCHASE_COLUMNS = column_list(PurchaseRow, leave_out=("created_at", "updated_at"))


@dataclass(frozen=True, slots=True)
class Capture:
    """One PayPal capture as found in an order or a webhook event."""

    capture_id: str
    status: str
    amount: str
    currency: str
    custom_id: str | None


def billing_disabled() -> StoreError:
    return StoreError(
        "billing_disabled",
        "Billing is not enabled on this server; ask its operator to grant credits (outputlayer accounts grant).",
    )


def payment_provider_down() -> StoreError:
    return StoreError("service_unavailable", "The payment provider is temporarily unavailable. Retry shortly.")


class Billing:
    """Checkout, webhooks and verify over the database and one PayPal application."""

    def __init__(self, settings: Settings, db: Database, clock: Clock, ids: IdFactory) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock
        self.ids = ids
        self.paypal: PayPalClient | None = None
        if settings.billing_enabled:
            self.paypal = PayPalClient(
                settings.paypal_base_url, settings.paypal_client_id, settings.paypal_client_secret, clock
            )

    def _client(self) -> PayPalClient:
        if self.paypal is None:
            raise billing_disabled()
        return self.paypal

    # --- step 1: checkout --------------------------------------------------------------------

    async def checkout(self, account_id: str, document: Any) -> dict[str, Any]:
        """Create a PayPal order for a pack and a ``pending`` purchase holding its id."""
        request = parse_request(Checkout, document, 'The body must be {"packId": "basic"|"pro"|"agency"}.')
        paypal = self._client()
        pack = PACKS[request.packId]
        purchase_id = self.ids.new("purch")
        try:
            # PayPal-Request-Id = purchaseId: a retried create (ours or the HTTP client's) makes one order.
            order = await paypal.create_order(purchase_id, pack.price_usd, CURRENCY, purchase_id)
        except (PayPalUnavailable, PayPalRefused) as exc:
            log.warning("checkout %s: creating the PayPal order failed: %s", purchase_id, exc)
            raise payment_provider_down() from None
        now = self.clock.now_ms()
        await self.db.write(
            lambda tx: tx.execute(
                "INSERT INTO purchases (id, account_id, pack_id, status, provider_order_id, capture_id, credits_added, "
                "created_at, updated_at) VALUES (?, ?, ?, 'pending', ?, NULL, 0, ?, ?)",
                (purchase_id, account_id, pack.pack_id, order.order_id, now, now),
            )
        )
        log.info("checkout %s: pack %s, PayPal order %s", purchase_id, pack.pack_id, order.order_id)
        return {
            "purchaseId": purchase_id,
            "packId": pack.pack_id,
            "checkoutUrl": order.approve_url,
            "status": "pending",
            "agent_contract": purchase_contract(purchase_id, "pending"),
        }

    # --- step 4: verify ----------------------------------------------------------------------

    async def verify(self, account_id: str, purchase_id: str) -> dict[str, Any]:
        """The purchase from the database; while pending, PayPal is asked and the answer applied."""
        row = await self._purchase_of(account_id, purchase_id)
        if row["status"] == "pending" and row["provider_order_id"] and self.paypal is not None:
            try:
                order = await self.paypal.get_order(row["provider_order_id"])
                await self._apply_order(row, order, capture=True)
            except (PayPalUnavailable, PayPalRefused) as exc:
                # The database's answer stands (pending, retry later); PayPal is asked again next time.
                log.warning("verify %s: asking PayPal failed: %s", purchase_id, exc)
            row = await self._purchase_of(account_id, purchase_id)
        return {
            "purchaseId": row["id"],
            "packId": row["pack_id"],
            "status": row["status"],
            "creditsAdded": int(row["credits_added"]),
            "agent_contract": purchase_contract(row["id"], row["status"]),
        }

    async def _purchase_of(self, account_id: str, purchase_id: str) -> dict[str, Any]:
        row = await self.db.read(
            lambda tx: tx.one(
                f"SELECT {PURCHASE_COLUMNS} FROM purchases WHERE id = ? AND account_id = ?", (purchase_id, account_id)
            )
        )
        if row is None:
            raise StoreError("purchase_not_found", "No purchase with this id exists for this API key.")
        return row

    # --- step 2: webhooks --------------------------------------------------------------------

    async def webhook(self, headers: Mapping[str, str], raw_body: bytes) -> dict[str, Any]:
        """Verify a delivery through PayPal, then apply it; a verified event always answers ``received``."""
        paypal = self._client()
        event = _parse_event(raw_body)
        transmission = {name: headers.get(name, "") for name in TRANSMISSION_HEADERS}
        if not all(transmission.values()):
            raise invalid_request("The webhook lacks PayPal's transmission headers; nothing was changed.")
        try:
            genuine = await paypal.verify_webhook(transmission, self.settings.paypal_webhook_id, raw_body)
        except PayPalRefused as exc:
            log.warning("webhook %s: PayPal refused to verify it: %s", transmission["paypal-transmission-id"], exc)
            genuine = False
        except PayPalUnavailable as exc:
            log.warning("webhook: verifying with PayPal failed: %s", exc)
            raise payment_provider_down() from None
        if not genuine:
            log.warning("webhook %s: signature not verified; ignored", transmission["paypal-transmission-id"])
            raise invalid_request("The webhook signature could not be verified; nothing was changed.")
        event_type = str(event.get("event_type", ""))
        resource = event.get("resource")
        if isinstance(resource, dict):
            try:
                await self._dispatch(event_type, resource, str(event.get("id", "")))
            except (PayPalUnavailable, PayPalRefused) as exc:
                # The event is genuine and acknowledged; verify (or PayPal's next event) finishes the work.
                log.warning("webhook %s: PayPal call failed while applying it: %s", event.get("id"), exc)
        return {"received": True}

    async def _dispatch(self, event_type: str, resource: dict[str, Any], event_id: str) -> None:
        log.info("webhook %s: %s", event_id, event_type)
        if event_type == "CHECKOUT.ORDER.APPROVED":
            row = await self._find(_custom_id_of_order(resource), _text(resource.get("id")))
            if row is not None and row["status"] == "pending":
                await self._apply_order(row, resource, capture=True)
        elif event_type == "PAYMENT.CAPTURE.COMPLETED":
            capture = _capture(resource)
            row = await self._find(capture.custom_id if capture else None, _order_id_of_capture(resource))
            if capture is not None:
                await self._settle_capture(row, capture)
        elif event_type == "PAYMENT.CAPTURE.DENIED":
            capture = _capture(resource)
            row = await self._find(capture.custom_id if capture else None, _order_id_of_capture(resource))
            if row is not None:
                await self._fail(row["id"], "capture denied")
        elif event_type in ("PAYMENT.CAPTURE.REFUNDED", "PAYMENT.CAPTURE.REVERSED"):
            await self._refund(resource)

    async def _find(self, custom_id: str | None, order_id: str | None) -> dict[str, Any] | None:
        """The purchase an event names: by ``custom_id`` (our purchaseId), else by PayPal's order id."""

        def find(tx: Tx) -> dict[str, Any] | None:
            if custom_id:
                row = tx.one(f"SELECT {PURCHASE_COLUMNS} FROM purchases WHERE id = ?", (custom_id,))
                if row is not None:
                    return row
            if order_id:
                return tx.one(f"SELECT {PURCHASE_COLUMNS} FROM purchases WHERE provider_order_id = ?", (order_id,))
            return None

        row = await self.db.read(find)
        if row is None:
            log.warning(
                "billing event names no purchase (custom_id %s, order %s); nothing credited", custom_id, order_id
            )
        return row

    # --- step 3: capture, credit, fail, refund -----------------------------------------------

    async def _apply_order(self, row: dict[str, Any], order: dict[str, Any], *, capture: bool) -> None:
        """Bring a purchase in line with its PayPal order: capture an approved one, credit a completed one."""
        if order.get("status") == "APPROVED" and capture:
            captured = await self._capture_order(row)
            if captured is None:
                return
            order = captured
        captures = _captures_of_order(order)
        for found in captures:
            if found.status == "COMPLETED":
                await self._settle_capture(row, found)
                return
        if any(found.status == "DECLINED" for found in captures):
            await self._fail(row["id"], "capture declined")
        elif order.get("status") == "VOIDED":
            await self._fail(row["id"], "order voided")

    async def _capture_order(self, row: dict[str, Any]) -> dict[str, Any] | None:
        """Capture an approved order (``PayPal-Request-Id`` = purchaseId + ``-capture``); None when nothing to apply."""
        paypal = self._client()
        order_id = row["provider_order_id"]
        try:
            return await paypal.capture_order(order_id, f"{row['id']}-capture")
        except PayPalRefused as exc:
            if exc.issue in DECLINED_ISSUES:
                await self._fail(row["id"], f"capture declined ({exc.issue})")
                return None
            if exc.issue == "ORDER_ALREADY_CAPTURED":
                return await paypal.get_order(order_id)
            log.warning("purchase %s: capturing order %s refused: %s", row["id"], order_id, exc)
            return None

    async def _settle_capture(self, row: dict[str, Any] | None, capture: Capture) -> None:
        if row is None:
            return
        if capture.custom_id and capture.custom_id != row["id"]:
            log.warning(
                "capture %s names purchase %s but belongs to %s; nothing credited",
                capture.capture_id,
                capture.custom_id,
                row["id"],
            )
            return
        await self._credit(row["id"], capture)

    async def _credit(self, purchase_id: str, capture: Capture) -> None:
        now = self.clock.now_ms()

        def credit(tx: Tx) -> str:
            purchase = tx.one(f"SELECT {PURCHASE_COLUMNS} FROM purchases WHERE id = ?", (purchase_id,))
            if purchase is None:
                return "unknown"
            pack = PACKS.get(purchase["pack_id"])
            matches = pack is not None and _same_money(capture, pack)
            outcome = "credited" if matches else "mismatch"
            inserted = tx.execute(
                "INSERT INTO billing_captures (capture_id, purchase_id, outcome, amount, currency, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (capture_id) DO NOTHING",
                (capture.capture_id, purchase_id, outcome, capture.amount[:32], capture.currency[:8], now),
            )
            if inserted == 0:
                return "already applied"
            if pack is None or not matches:
                tx.execute(
                    "UPDATE purchases SET status = 'failed', updated_at = ? WHERE id = ? AND status = 'pending'",
                    (now, purchase_id),
                )
                return "mismatch"
            moved = tx.execute(
                "UPDATE purchases SET status = 'confirmed', capture_id = ?, credits_added = ?, updated_at = ? "
                "WHERE id = ? AND status IN ('pending', 'failed')",
                (capture.capture_id, pack.credits, now, purchase_id),
            )
            if moved == 0:
                return "already settled"
            account = tx.lock_account(purchase["account_id"])
            if account is None:
                return "no account"
            tx.execute(
                "UPDATE accounts SET credits_remaining = credits_remaining + ?, "
                "storage_limit_bytes = storage_limit_bytes + ?, plan_tier = ? WHERE id = ?",
                (pack.credits, pack.storage_bytes, higher_tier(account["plan_tier"], pack.pack_id), account["id"]),
            )
            return "credited"

        outcome = await self.db.write(credit)
        if outcome == "credited":
            log.info("purchase %s: capture %s credited", purchase_id, capture.capture_id)
        elif outcome == "mismatch":
            log.warning(
                "purchase %s: capture %s of %s %s does not match the pack's price; nothing credited",
                purchase_id,
                capture.capture_id,
                capture.amount,
                capture.currency,
            )

    async def _fail(self, purchase_id: str, why: str) -> None:
        now = self.clock.now_ms()
        moved = await self.db.write(
            lambda tx: tx.execute(
                "UPDATE purchases SET status = 'failed', updated_at = ? WHERE id = ? AND status = 'pending'",
                (now, purchase_id),
            )
        )
        if moved:
            log.info("purchase %s failed: %s", purchase_id, why)

    async def _refund(self, resource: dict[str, Any]) -> None:
        """Take a refunded or reversed purchase's credits back (never below 0); storage and tier stay."""
        capture_ids = [i for i in (_up_capture_id(resource), _text(resource.get("id"))) if i]
        custom_id = _text(resource.get("custom_id"))
        now = self.clock.now_ms()

        def refund(tx: Tx) -> str | None:
            purchase = None
            for capture_id in capture_ids:
                purchase = tx.one(f"SELECT {PURCHASE_COLUMNS} FROM purchases WHERE capture_id = ?", (capture_id,))
                if purchase is not None:
                    break
            if purchase is None and custom_id:
                purchase = tx.one(f"SELECT {PURCHASE_COLUMNS} FROM purchases WHERE id = ?", (custom_id,))
            if purchase is None:
                return None
            moved = tx.execute(
                "UPDATE purchases SET status = 'refunded', updated_at = ? WHERE id = ? AND status = 'confirmed'",
                (now, purchase["id"]),
            )
            if moved == 0:
                return None
            taken = int(purchase["credits_added"])
            if tx.lock_account(purchase["account_id"]) is not None:
                tx.execute(
                    "UPDATE accounts SET credits_remaining = CASE WHEN credits_remaining > ? "
                    "THEN credits_remaining - ? ELSE 0 END WHERE id = ?",
                    (taken, taken, purchase["account_id"]),
                )
            return str(purchase["id"])

        refunded = await self.db.write(refund)
        if refunded:
            log.info("purchase %s refunded: credits taken back", refunded)
        else:
            log.info("refund event for capture %s matched no confirmed purchase", capture_ids or custom_id)


# --- reading PayPal documents ----------------------------------------------------------------


def _parse_event(raw_body: bytes) -> dict[str, Any]:
    try:
        event = json.loads(raw_body)
    except ValueError:
        raise invalid_request("The webhook body is not valid JSON.") from None
    if not isinstance(event, dict):
        raise invalid_request("The webhook body must be a JSON object.")
    return event


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _capture(resource: dict[str, Any]) -> Capture | None:
    capture_id = _text(resource.get("id"))
    amount = resource.get("amount")
    if capture_id is None or not isinstance(amount, dict):
        return None
    return Capture(
        capture_id=capture_id,
        status=str(resource.get("status", "")),
        amount=str(amount.get("value", "")),
        currency=str(amount.get("currency_code", "")),
        custom_id=_text(resource.get("custom_id")),
    )


def _units(order: dict[str, Any]) -> list[dict[str, Any]]:
    units = order.get("purchase_units")
    return [unit for unit in units if isinstance(unit, dict)] if isinstance(units, list) else []


def _captures_of_order(order: dict[str, Any]) -> list[Capture]:
    found = []
    for unit in _units(order):
        payments = unit.get("payments")
        captures = payments.get("captures") if isinstance(payments, dict) else None
        for item in captures if isinstance(captures, list) else []:
            capture = _capture(item) if isinstance(item, dict) else None
            if capture is not None:
                # A capture inside an order may omit custom_id; the purchase unit carries it.
                custom_id = capture.custom_id or _text(unit.get("custom_id"))
                found.append(Capture(capture.capture_id, capture.status, capture.amount, capture.currency, custom_id))
    return found


def _custom_id_of_order(order: dict[str, Any]) -> str | None:
    for unit in _units(order):
        custom_id = _text(unit.get("custom_id"))
        if custom_id:
            return custom_id
    return None


def _order_id_of_capture(resource: dict[str, Any]) -> str | None:
    """``supplementary_data.related_ids.order_id``, else the order named by the capture's ``up`` link."""
    data = resource.get("supplementary_data")
    related = data.get("related_ids") if isinstance(data, dict) else None
    order_id = _text(related.get("order_id")) if isinstance(related, dict) else None
    return order_id or _up_link_id(resource, "/checkout/orders/")


def _up_capture_id(resource: dict[str, Any]) -> str | None:
    """A refund names its capture by its ``up`` link: ``…/v2/payments/captures/{capture_id}``."""
    return _up_link_id(resource, "/captures/")


def _up_link_id(resource: dict[str, Any], collection: str) -> str | None:
    links = resource.get("links")
    for link in links if isinstance(links, list) else []:
        if isinstance(link, dict) and link.get("rel") == "up" and isinstance(link.get("href"), str):
            path = link["href"].split("?", 1)[0].rstrip("/")
            if collection in path:
                return _text(path.rsplit("/", 1)[-1])
    return None


def _same_money(capture: Capture, pack: Pack) -> bool:
    if capture.currency != CURRENCY:
        return False
    try:
        return Decimal(capture.amount) == Decimal(pack.price_usd)
    except InvalidOperation:
        return False

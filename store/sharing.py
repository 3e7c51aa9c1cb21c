"""Keyless links: the secret that signs them, and the share-link rule (SPEC sections 13 and 14).

- One secret per installation, kept in the database (``server_secrets``), so every server process
  signs and verifies the same links. It is loaded once per process and cached.
- A token is ``<subject>.<until ms>.<mac>``: the link carries its own expiry, the MAC (HMAC-SHA-256,
  truncated to 128 bits) covers the purpose, the subject and the expiry, so no field can be changed
  and a token made for one purpose (a share link) never opens another (an upload link). The subject
  is an id; nothing in a link names the account.
- The share lifetime rule, the same for public and private outputs and for every door: at least
  :data:`SHARE_MIN_SECONDS`, :data:`SHARE_DEFAULT_SECONDS` when not asked, never past the output's
  own expiry. A public output's link is its ``publicUrl``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from store.clock import iso_ms
from store.contract import share_contract
from store.db import Database, Tx
from store.errors import StoreError, invalid_request, output_not_found
from store.views import OUTPUT_COLUMNS
from store.views import expires_in_seconds as seconds_until

if TYPE_CHECKING:
    from store.service import Account, ArtifactService, Content

SHARE_DEFAULT_SECONDS = 86_400
SHARE_MIN_SECONDS = 60
SECRET_NAME = "share_links"
SHARE_PATH = "/s/"


@dataclass(frozen=True, slots=True)
class SignedToken:
    subject: str
    until_ms: int


class LinkSigner:
    """Signs and verifies link tokens with the installation's secret."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._secret: bytes | None = None

    async def secret(self) -> bytes:
        if self._secret is None:
            candidate = secrets.token_hex(32)

            def load(tx: Tx) -> str:
                tx.execute(
                    "INSERT INTO server_secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                    (SECRET_NAME, candidate),
                )
                row = tx.one("SELECT value FROM server_secrets WHERE name = ?", (SECRET_NAME,))
                assert row is not None
                return str(row["value"])

            self._secret = bytes.fromhex(await self._db.write(load))
        return self._secret

    async def sign(self, purpose: str, subject: str, until_ms: int) -> str:
        payload = f"{subject}.{until_ms}"
        # Share links sign the bare payload (links handed out before purposes existed stay valid).
        message = f"{purpose}:{payload}" if purpose else payload
        mac = hmac.new(await self.secret(), message.encode(), hashlib.sha256).digest()[:16]
        return f"{payload}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"

    async def verify(self, purpose: str, token: str) -> SignedToken | None:
        """The subject and expiry of an authentic token (expired or not); None for anything forged or malformed."""
        parts = token.split(".")
        if len(parts) != 3 or not parts[1].isdigit() or len(parts[1]) > 15:
            return None
        subject, until_text, _ = parts
        expected = await self.sign(purpose, subject, int(until_text))
        if not hmac.compare_digest(expected.encode(), token.encode()):
            return None
        return SignedToken(subject, int(until_text))


def share_until_ms(requested_seconds: int | None, now_ms: int, output_expires_ms: int) -> int:
    """When a share link made now ends (the one share-lifetime rule; see the module docstring)."""
    lifetime = SHARE_DEFAULT_SECONDS if requested_seconds is None else requested_seconds
    if lifetime < SHARE_MIN_SECONDS:
        raise invalid_request(f"expiresInSeconds must be at least {SHARE_MIN_SECONDS}.")
    return min(now_ms + lifetime * 1000, output_expires_ms)


async def share_link(
    service: ArtifactService, account: Account, output_id: str, expires_in_seconds: int | None
) -> dict[str, Any]:
    """A link that serves an owned output's bytes without a key: its public URL, or a signed expiring one."""
    row = await service._row(account, output_id)
    content = service._content(row)
    now = service.clock.now_ms()
    until = share_until_ms(expires_in_seconds, now, int(row["expires_at"]))
    if content.public:
        url = f"{service.urls.public_base_url}/{output_id}"
        until = int(row["expires_at"])
    else:
        token = await service.signer.sign("", output_id, until)
        url = f"{service.urls.base_url}{SHARE_PATH}{token}"
    return {
        "shareUrl": url,
        "shareExpiresAt": iso_ms(until),
        "agent_contract": share_contract(url, output_id, seconds_until(until, now)),
    }


async def open_shared(service: ArtifactService, token: str) -> Content:
    """The bytes behind a share link, while the link and the output both live."""
    signed = await service.signer.verify("", token)
    if signed is None:
        raise output_not_found()
    if signed.until_ms <= service.clock.now_ms():
        raise StoreError("output_expired", "This share link has expired.")
    row = await service.db.read(
        lambda tx: tx.one(f"SELECT {OUTPUT_COLUMNS} FROM outputs WHERE id = ?", (signed.subject,))
    )
    if row is None:
        raise output_not_found()
    # A preview counts down to whichever ends first: this link or its output.
    return replace(service._content(row), available_until_ms=min(signed.until_ms, int(row["expires_at"])))

"""Keyless links: the secret that signs them, and the share-link rule (SPEC sections 13 and 14).

- One secret per installation, kept in the database (``server_secrets``), so every server process
  signs and verifies the same links. It is loaded once per process and cached.
- A token is 42 URL-safe base64 characters: the id's ULID (16 bytes), the expiry in epoch
  milliseconds (6 bytes) and a MAC (HMAC-SHA-256 truncated to 72 bits: a link lives hours to days and
  every guess costs a request) over the purpose, the ULID and the expiry. So the link carries its own
  expiry, no part can be changed, and a token made for one purpose (a share link) never opens another
  (an upload link). The route names the kind of id; nothing in a link names the account. Short,
  because links travel through tool results, where every character costs the agent.
- The share lifetime rule, the same for public and private outputs and for every door: at least
  :data:`SHARE_MIN_SECONDS`, :data:`SHARE_DEFAULT_SECONDS` when not asked, never past the output's
  own expiry. A public output's link is its ``publicUrl``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ulid import ULID

from store import outputs
from store.clock import iso_ms
from store.contract import share_contract
from store.db import Database, Tx
from store.errors import StoreError, invalid_request, output_not_found
from store.limits import SHARE_DEFAULT_SECONDS, SHARE_MIN_SECONDS
from store.views import OUTPUT_COLUMNS
from store.views import expires_in_seconds as seconds_until

if TYPE_CHECKING:
    from store.service import Account, ArtifactService, Content

SECRET_NAME = "share_links"
SHARE_PATH = "/s/"
SHARE_PURPOSE = "share"
OUTPUT_PREFIX = "out_"
UNTIL_BYTES = 6
MAC_BYTES = 9
TOKEN_CHARS = len(base64.urlsafe_b64encode(bytes(16 + UNTIL_BYTES + MAC_BYTES)).rstrip(b"="))


@dataclass(frozen=True, slots=True)
class SignedToken:
    ulid: str
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

    async def sign(self, purpose: str, ulid: str, until_ms: int) -> str:
        """A token for the id whose ULID part is ``ulid``, valid until ``until_ms``."""
        payload = ULID.from_str(ulid).bytes + until_ms.to_bytes(UNTIL_BYTES, "big")
        return _b64(payload + await self._mac(purpose, payload))

    async def verify(self, purpose: str, token: str) -> SignedToken | None:
        """The ULID and expiry of an authentic token (expired or not); None for anything forged or malformed."""
        if len(token) != TOKEN_CHARS:
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            return None
        payload, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
        # Re-encoding must give the token back: one token per link, no malleable spellings.
        if _b64(raw) != token or not hmac.compare_digest(mac, await self._mac(purpose, payload)):
            return None
        return SignedToken(str(ULID.from_bytes(payload[:16])), int.from_bytes(payload[16:], "big"))

    async def _mac(self, purpose: str, payload: bytes) -> bytes:
        return hmac.new(await self.secret(), purpose.encode() + b":" + payload, hashlib.sha256).digest()[:MAC_BYTES]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def share_lifetime_seconds(requested_seconds: int | None) -> int:
    """The lifetime a share link asks for, refused below the minimum (the one share-lifetime rule)."""
    lifetime = SHARE_DEFAULT_SECONDS if requested_seconds is None else requested_seconds
    if lifetime < SHARE_MIN_SECONDS:
        raise invalid_request(f"expiresInSeconds must be at least {SHARE_MIN_SECONDS}.")
    return lifetime


def share_until_ms(requested_seconds: int | None, now_ms: int, output_expires_ms: int) -> int:
    """When a share link made now ends (see the module docstring)."""
    return min(now_ms + share_lifetime_seconds(requested_seconds) * 1000, output_expires_ms)


async def share_link(
    service: ArtifactService, account: Account, output_id: str, expires_in_seconds: int | None
) -> dict[str, Any]:
    """A link that serves an owned output's bytes without a key: its public URL, or a signed expiring one."""
    share_lifetime_seconds(expires_in_seconds)  # a malformed request is refused before the output is looked at
    row = await outputs.owned_row(service, account, output_id)
    content = outputs.readable_content(service, row)
    now = service.clock.now_ms()
    until = share_until_ms(expires_in_seconds, now, int(row["expires_at"]))
    if content.public:
        url = f"{service.urls.public_base_url}/{output_id}"
        until = int(row["expires_at"])
    else:
        token = await service.signer.sign(SHARE_PURPOSE, output_id.removeprefix(OUTPUT_PREFIX), until)
        url = f"{service.urls.base_url}{SHARE_PATH}{token}"
    return {
        "shareUrl": url,
        "shareExpiresAt": iso_ms(until),
        "agent_contract": share_contract(url, output_id, seconds_until(until, now)),
    }


async def open_shared(service: ArtifactService, token: str) -> Content:
    """The bytes behind a share link, while the link and the output both live."""
    signed = await service.signer.verify(SHARE_PURPOSE, token)
    if signed is None:
        raise output_not_found()
    if signed.until_ms <= service.clock.now_ms():
        raise StoreError("output_expired", "This share link has expired.")
    row = await service.db.read(
        lambda tx: tx.one(f"SELECT {OUTPUT_COLUMNS} FROM outputs WHERE id = ?", (OUTPUT_PREFIX + signed.ulid,))
    )
    if row is None:
        raise output_not_found()
    # A preview counts down to whichever ends first: this link or its output.
    return replace(
        outputs.readable_content(service, row), available_until_ms=min(signed.until_ms, int(row["expires_at"]))
    )

"""Identifiers and secrets: ULID-based ids with their prefixes, API keys and their stored digests."""

from __future__ import annotations

import hashlib
import re
import secrets

from ulid import LaxMonotonicPolicy, ULIDGenerator

API_KEY_PREFIX = "ol_live_"


class IdFactory:
    """Monotonic ULIDs (one generator per service, so ids made in one process sort in order)."""

    def __init__(self) -> None:
        self._generator = ULIDGenerator(policy=LaxMonotonicPolicy())

    def new(self, prefix: str) -> str:
        return f"{prefix}_{self._generator.generate()}"


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_hex(32)


def key_digest(api_key: str) -> str:
    """The only form of an API key the database ever holds."""
    return hashlib.sha256(api_key.encode("utf-8", "surrogateescape")).hexdigest()


_API_KEY_SHAPE = re.compile(r"ol_live_[0-9a-f]{64}")


def looks_like_api_key(value: str) -> bool:
    return _API_KEY_SHAPE.fullmatch(value) is not None

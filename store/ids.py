"""Identifiers and secrets: ULID-based ids with their prefixes, API keys and their stored digests."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import threading
import time

API_KEY_PREFIX = "ol_live_"

# Crockford's base32 (the ULID alphabet), as every pair of symbols for a 10-bit value: a 128-bit ULID
# becomes 13 table lookups instead of 26 shifts (python-ulid's encoder cost ~4 µs per id, one per request).
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = tuple(first + second for first in _CROCKFORD for second in _CROCKFORD)
_RANDOM_BITS = 80
_RANDOM_BYTES = _RANDOM_BITS // 8
_RANDOM_MAX = (1 << _RANDOM_BITS) - 1
# One getrandom() call serves this many ids.
_POOL_IDS = 256


def _base32_80(value: int) -> str:
    """The 16 Crockford base32 symbols of an 80-bit value."""
    pairs = _PAIRS
    return "".join(
        [
            pairs[(value >> 70) & 1023],
            pairs[(value >> 60) & 1023],
            pairs[(value >> 50) & 1023],
            pairs[(value >> 40) & 1023],
            pairs[(value >> 30) & 1023],
            pairs[(value >> 20) & 1023],
            pairs[(value >> 10) & 1023],
            pairs[value & 1023],
        ]
    )


class IdFactory:
    """Monotonic ULIDs (one generator per service, so ids made in one process sort in order).

    A ULID is 48 bits of milliseconds and 80 random bits, written as 26 Crockford base32 symbols.
    Within one millisecond the random part counts up from the first draw (ids sort in the order they
    were made); when it would overflow, a fresh draw is taken. Random bytes come from the OS's
    CSPRNG in batches, so an id costs no system call.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_random = 0
        self._time_symbols = ""
        self._pool = b""
        self._offset = 0

    def new(self, prefix: str) -> str:
        now_ms = time.time_ns() // 1_000_000
        with self._lock:
            if now_ms == self._last_ms and self._last_random < _RANDOM_MAX:
                random_part = self._last_random + 1
            else:
                random_part = self._fresh_random()
            if now_ms != self._last_ms:
                # 48 bits fit in the low 10 symbols of an 80-bit rendering.
                self._time_symbols = _base32_80(now_ms)[6:]
                self._last_ms = now_ms
            self._last_random = random_part
            time_symbols = self._time_symbols
        return f"{prefix}_{time_symbols}{_base32_80(random_part)}"

    def _fresh_random(self) -> int:
        start = self._offset
        if start + _RANDOM_BYTES > len(self._pool):
            self._pool = os.urandom(_RANDOM_BYTES * _POOL_IDS)
            start = 0
        self._offset = start + _RANDOM_BYTES
        return int.from_bytes(self._pool[start : start + _RANDOM_BYTES], "big")


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_hex(32)


def key_digest(api_key: str) -> str:
    """The only form of an API key the database ever holds."""
    return hashlib.sha256(api_key.encode("utf-8", "surrogateescape")).hexdigest()


_API_KEY_SHAPE = re.compile(r"ol_live_[0-9a-f]{64}")


def looks_like_api_key(value: str) -> bool:
    return _API_KEY_SHAPE.fullmatch(value) is not None

"""Bounded JSON: every JSON document the server reads is checked for size and nesting depth before
it is parsed (SPEC section 15), so a hostile document is a 400 within milliseconds, never a
``RecursionError`` (a 500) or a hang.

The depth is measured by one regular-expression pass over the raw text that skips string literals
and counts brackets, without building anything: its cost is linear and its stack constant.
"""

from __future__ import annotations

import json
import re
from typing import Any

from store.errors import StoreError

MAX_DEPTH = 64
# A string literal (escapes included), one bracket or a colon; everything else is skipped by finditer.
_STRUCTURE = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}:]')


def nesting_depth(text: str | bytes) -> int:
    """The deepest nesting of objects and arrays in ``text`` (0 for a scalar)."""
    return _scan(text, None)[0]


def _scan(text: str | bytes, stop_above: int | None) -> tuple[int, str | None]:
    """(deepest nesting, the top-level member it is in); stops early once past ``stop_above``."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    depth = deepest = 0
    member: str | None = None
    deepest_member: str | None = None
    previous = b""
    for match in _STRUCTURE.finditer(data):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest, deepest_member = depth, member
                if stop_above is not None and depth > stop_above:
                    break
        elif token in (b"]", b"}"):
            depth -= 1
        elif token == b":" and depth == 1 and previous[:1] == b'"':
            member = previous[1:-1].decode("utf-8", "replace")
        previous = token
    return deepest, deepest_member


def parse_json(
    text: str | bytes,
    *,
    max_bytes: int,
    what: str = "The body",
    code: str = "invalid_request",
    max_depth: int = MAX_DEPTH,
    member_codes: dict[str, str] | None = None,
) -> Any:
    """Parse ``text`` if it is at most ``max_bytes`` long and ``max_depth`` deep; ``code`` otherwise
    (or, when the excess nesting is inside a top-level member named in ``member_codes``, that code)."""
    if len(text) > max_bytes:
        raise StoreError(code, f"{what} is larger than {max_bytes} bytes.")
    depth, member = _scan(text, max_depth)
    if depth > max_depth:
        where = f"{what} ({member})" if member else what
        raise StoreError(
            (member_codes or {}).get(member or "", code), f"{where} is nested more than {max_depth} levels deep."
        )
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise StoreError(code, f"{what} is not valid JSON.") from None


def parse_json_object(
    text: str | bytes, *, max_bytes: int, what: str = "The body", code: str = "invalid_request"
) -> dict[str, Any]:
    """A bounded JSON document that must be an object: ``null``, arrays and scalars are refused."""
    document = parse_json(text, max_bytes=max_bytes, what=what, code=code)
    if not isinstance(document, dict):
        raise StoreError(code, f"{what} must be a JSON object.")
    return document


def check_depth(value: Any, *, what: str, code: str = "invalid_request", max_depth: int = MAX_DEPTH) -> None:
    """Refuse an already-parsed value (MCP arguments) nested deeper than ``max_depth``; iterative."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            depth += 1
            if depth > max_depth:
                raise StoreError(code, f"{what} is nested more than {max_depth} levels deep.")
            stack.extend((child, depth) for child in (item.values() if isinstance(item, dict) else item))

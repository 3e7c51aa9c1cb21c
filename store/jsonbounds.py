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
# A string literal (escapes included) or one bracket; everything else is skipped by finditer.
_STRUCTURE = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def nesting_depth(text: str | bytes) -> int:
    """The deepest nesting of objects and arrays in ``text`` (0 for a scalar)."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    depth = deepest = 0
    for match in _STRUCTURE.finditer(data):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


def parse_json(
    text: str | bytes,
    *,
    max_bytes: int,
    what: str = "The body",
    code: str = "invalid_request",
    max_depth: int = MAX_DEPTH,
) -> Any:
    """Parse ``text`` if it is at most ``max_bytes`` long and ``max_depth`` deep; ``code`` otherwise."""
    if len(text) > max_bytes:
        raise StoreError(code, f"{what} is larger than {max_bytes} bytes.")
    depth = nesting_depth(text)
    if depth > max_depth:
        raise StoreError(code, f"{what} is nested {depth} levels deep; the limit is {max_depth}.")
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

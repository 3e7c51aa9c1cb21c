"""Base64 content as clients really send it (SPEC section 15): plain, wrapped in RFC 2045 lines (what
``base64 FILE`` prints), or as a ``data:<mime>;base64,`` URI. This module owns turning those forms
into the one strict alphabet the decoders check; anything else stays invalid base64.
"""

from __future__ import annotations

import re

# RFC 2397: "data:" [mediatype] [";base64"] "," data; only the base64 form carries binary content.
_DATA_URI = re.compile(r"data:[^,]*;base64,", re.IGNORECASE)
_LINE_BREAKS = str.maketrans("", "", "\r\n")


def unwrap_base64(text: str) -> str:
    """The base64 payload of ``text`` without a ``data:`` prefix and without line breaks."""
    prefix = _DATA_URI.match(text)
    if prefix is not None:
        text = text[prefix.end() :]
    if "\n" in text or "\r" in text:
        text = text.translate(_LINE_BREAKS)
    return text

"""Content responses: streamed bytes with the headers of SPEC section 4, ``Range`` and ``If-None-Match``."""

from __future__ import annotations

import re
from urllib.parse import quote

from starlette.responses import RedirectResponse, Response, StreamingResponse

from rest.endpoint import Call
from store import Content, StoreError

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


# The bytes shown inside a preview page: still sandboxed (no scripts, an opaque origin), loading
# nothing from elsewhere, and framable only by this site's own pages.
INLINE_CONTENT_SECURITY_POLICY = (
    "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; frame-ancestors 'self'"
)


def content_disposition(label: str | None, disposition: str = "attachment") -> str:
    if not label:
        return disposition
    ascii_name = label.encode("ascii", "replace").decode("ascii").replace("\\", "_").replace('"', "'")
    if ascii_name == label:
        return f'{disposition}; filename="{ascii_name}"'
    return f"{disposition}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(label, safe='')}"


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, length) of a single satisfiable byte range; None means "send it all".

    Malformed or multi-range headers are ignored (RFC 9110 allows serving the whole body);
    a well-formed range that starts past the end is refused with 416.
    """
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        length = min(int(last), size)
        if length == 0:
            raise _unsatisfiable(size)
        return size - length, length
    start = int(first)
    if start >= size:
        raise _unsatisfiable(size)
    end = min(int(last), size - 1) if last else size - 1
    if end < start:
        return None
    return start, end - start + 1


def _unsatisfiable(size: int) -> StoreError:
    error = StoreError("range_not_satisfiable", f"The requested range is outside the content's {size} bytes.")
    error.headers = {"Content-Range": f"bytes */{size}"}
    return error


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    candidates = [part.strip().removeprefix("W/") for part in header.split(",")]
    return "*" in candidates or etag in candidates


async def content_response(call: Call, content: Content, *, public: bool, inline: bool = False) -> Response:
    """The bytes; ``inline`` (keyless links only) shows them in a preview page instead of saving them."""
    if content.redirect is not None:
        return RedirectResponse(content.redirect, status_code=302)
    etag = f'"{content.sha256}"'
    headers = {
        "ETag": etag,
        "Content-Disposition": content_disposition(content.label, "inline" if inline else "attachment"),
        "Cache-Control": "private, no-store",
        "X-Content-Type-Options": "nosniff",
        "Accept-Ranges": "bytes",
        "Content-Type": content.mime_type,
    }
    if public:
        headers["Content-Security-Policy"] = INLINE_CONTENT_SECURITY_POLICY if inline else "sandbox"
    if _etag_matches(call.request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    byte_range = parse_range(call.request.headers.get("range"), content.size_bytes)
    status = 200
    start, length = 0, content.size_bytes
    if byte_range is not None:
        status = 206
        start, length = byte_range
        headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{content.size_bytes}"
    body = await call.service.read_content(content, start, length)
    if isinstance(body, bytes):
        return Response(body, status_code=status, headers=headers)
    headers["Content-Length"] = str(length)
    return StreamingResponse(body, status_code=status, headers=headers)

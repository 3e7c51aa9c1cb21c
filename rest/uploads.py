"""Upload bodies off the wire: their framing (content type, the Content-Length pre-checks), JSON
(bounded) and multipart (streamed), fed into a store upload session.

Multipart parsing uses python-multipart's push parser (the one Starlette itself uses), fed chunk
by chunk from ``request.stream()``, so the file part flows to the blob store without ever being
held whole; fields may come before or after the file. All rules about the values live in the store;
this module knows only how the two wire shapes wrap them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from store import JSON_BODY_LIMIT, StoreError, UploadSession, json_body_too_large, parse_json, too_large

TEXT_FIELD_LIMIT = 16_384
CONTENT_FIELD = "content"
# Bytes a body may carry besides the content: a multipart body's text fields, boundaries and part
# headers, or a JSON body's fields around its base64 content.
FORM_ENVELOPE_BYTES = 16_384

Wire = Literal["json", "multipart"]


@dataclass(frozen=True, slots=True)
class Framing:
    """What an upload body's headers tell before a byte of it is read."""

    wire: Wire
    # The fewest content bytes a body of the declared length can carry (the store's storage pre-check).
    min_size: int


def upload_wire(content_type: str | None) -> Wire:
    """Which wire shape an upload body has: "json" or "multipart"; anything else is refused."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == "application/json":
        return "json"
    if media == "multipart/form-data":
        return "multipart"
    raise StoreError("invalid_request", "Send the upload as application/json (base64 content) or multipart/form-data.")


def upload_framing(content_type: str | None, content_length: int | None, limit: int) -> Framing:
    """The body's wire shape, and a declared length that cannot fit refused before the body is read:
    a JSON body above 1 MiB, a multipart body above the per-file ``limit`` plus its envelope."""
    wire = upload_wire(content_type)
    if content_length is None:
        return Framing(wire, 0)
    if wire == "json":
        if content_length > JSON_BODY_LIMIT:
            raise json_body_too_large()
        # base64 carries 3 bytes in 4 characters
        return Framing(wire, max(0, (content_length - FORM_ENVELOPE_BYTES) * 3 // 4))
    if content_length > limit + FORM_ENVELOPE_BYTES:
        raise too_large(limit)
    return Framing(wire, max(0, content_length - FORM_ENVELOPE_BYTES))


async def feed_upload(request: Request, session: UploadSession, wire: Wire) -> None:
    if wire == "json":
        await _feed_json(request, session)
    else:
        await _feed_multipart(request, session)


async def _feed_json(request: Request, session: UploadSession) -> None:
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > JSON_BODY_LIMIT:
            raise json_body_too_large()
    # Metadata nested too deep is bad metadata, as it is in a multipart field (SPEC section 15).
    document = parse_json(bytes(body), max_bytes=JSON_BODY_LIMIT, member_codes={"metadata": "invalid_metadata"})
    await session.accept_json(document)


class _PartCollector:
    """Turns the parser's callbacks into a queue of (kind, name, bytes) events for async handling."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, bytes]] = []
        self._header_field = b""
        self._header_value = b""
        self._name = ""
        self._text = bytearray()
        self.names_seen = 0
        self.ended = False

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda data, start, end: self._add_header_field(data[start:end]),
            "on_header_value": lambda data, start, end: self._add_header_value(data[start:end]),
            "on_header_end": self._header_end,
            "on_part_data": lambda data, start, end: self._data(data[start:end]),
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self._name = ""
        self._text = bytearray()

    def _add_header_field(self, data: bytes) -> None:
        self._header_field += data

    def _add_header_value(self, data: bytes) -> None:
        self._header_value += data

    def _header_end(self) -> None:
        if self._header_field.lower() == b"content-disposition":
            _, options = parse_options_header(self._header_value)
            self._name = options.get(b"name", b"").decode("utf-8", "replace")
            self.names_seen += 1
        self._header_field = b""
        self._header_value = b""

    def _data(self, data: bytes) -> None:
        if self._name == CONTENT_FIELD:
            self.events.append(("content", CONTENT_FIELD, bytes(data)))
            return
        self._text.extend(data)
        if len(self._text) > TEXT_FIELD_LIMIT:
            # An oversized metadata document is bad metadata (SPEC section 15), like a malformed one.
            code = "invalid_metadata" if self._name == "metadata" else "invalid_request"
            raise StoreError(code, f"The field {self._name!r} is longer than {TEXT_FIELD_LIMIT} bytes.")

    def _part_end(self) -> None:
        if self._name == CONTENT_FIELD:
            self.events.append(("content_end", CONTENT_FIELD, b""))
        else:
            self.events.append(("field", self._name, bytes(self._text)))

    def _end(self) -> None:
        self.ended = True


async def _feed_multipart(request: Request, session: UploadSession) -> None:
    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        raise StoreError("invalid_request", "The multipart Content-Type has no boundary.")
    collector = _PartCollector()
    parser = MultipartParser(boundary, collector.callbacks())  # type: ignore[arg-type]
    content_parts = 0
    async for chunk in request.stream():
        try:
            parser.write(chunk)
        except StoreError:
            raise
        except Exception as exc:  # the parser raises its own exception types on malformed input
            raise StoreError("invalid_request", "The multipart body is malformed.") from exc
        events, collector.events = collector.events, []
        for kind, name, data in events:
            if kind == "content":
                await session.write(data)
            elif kind == "content_end":
                content_parts += 1
                if content_parts > 1:
                    raise StoreError("invalid_request", "Send exactly one part named 'content'.")
            else:
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError:
                    raise StoreError("invalid_request", f"The field {name!r} is not valid UTF-8.") from None
                session.add_form_field(name, text)
    if not collector.ended:
        raise StoreError("invalid_request", "The multipart body ended before its closing boundary.")
    if content_parts == 0:
        raise StoreError("invalid_request", "The content part is required (a file part named 'content').")

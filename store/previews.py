"""Previews: what a person who opens a keyless link (a public URL or a share link) is shown about it.

This module owns the rules of a preview, so the page that renders one only lays it out:

- which kind of preview each stored MIME type gets (:data:`PREVIEW_KINDS`): images and PDFs are
  shown by the browser from the raw bytes, agent-written HTML only inside a sandboxed frame, text,
  JSON, XML and CSV as text the server reads and the page escapes, everything else not at all;
- how much is read for a text preview (:data:`PREVIEW_TEXT_MAX_BYTES`) and how many CSV rows are
  shown (:data:`PREVIEW_CSV_MAX_ROWS`), with a flag when the preview is cut short;
- JSON is shown pretty-printed when it parses within those bounds, as sent otherwise;
- until when the link serves the bytes (a share link may end before its output does), as a count
  of seconds from the service clock, so the page's countdown never depends on the viewer's clock.

The bytes are read through the same door as a download (``open_public``/``open_shared``), so a
preview is available exactly when a download is, and answers the same errors otherwise.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field, replace
from typing import Literal

from store.clock import iso_ms
from store.service import ArtifactService, Content
from store.views import expires_in_seconds

PreviewKind = Literal["image", "pdf", "html", "csv", "json", "xml", "text", "none"]

PREVIEW_KINDS: dict[str, PreviewKind] = {
    "image/png": "image",
    "image/jpeg": "image",
    "image/gif": "image",
    "image/webp": "image",
    "application/pdf": "pdf",
    "text/html": "html",
    "text/csv": "csv",
    "application/json": "json",
    "application/xml": "xml",
    "text/plain": "text",
}
# Kinds whose preview is text the server reads (and the page escapes).
TEXT_KINDS = frozenset({"csv", "json", "xml", "text"})
PREVIEW_TEXT_MAX_BYTES = 262_144
PREVIEW_CSV_MAX_ROWS = 500
# A CSV row wider than this is shown cut: a table of thousands of columns helps no one.
PREVIEW_CSV_MAX_COLUMNS = 50


@dataclass(frozen=True, slots=True)
class Preview:
    """The facts of a linked output and, for text kinds, the part of its content to show."""

    output_id: str
    label: str | None
    mime_type: str
    size_bytes: int
    sha256: str
    kind: PreviewKind
    available_until: str | None
    available_for_seconds: int | None
    text: str | None = None
    rows: list[list[str]] = field(default_factory=list)
    truncated: bool = False


async def preview_public(service: ArtifactService, output_id: str) -> Preview:
    """The preview behind a public URL; errors as :meth:`ArtifactService.open_public`."""
    return await _preview(service, await service.open_public(output_id))


async def preview_shared(service: ArtifactService, token: str) -> Preview:
    """The preview behind a share link; errors as :meth:`ArtifactService.open_shared`."""
    return await _preview(service, await service.open_shared(token))


def preview_kind(mime_type: str) -> PreviewKind:
    return PREVIEW_KINDS.get(mime_type, "none")


async def _preview(service: ArtifactService, content: Content) -> Preview:
    kind = preview_kind(content.mime_type)
    until = content.available_until_ms
    preview = Preview(
        output_id=content.output_id,
        label=content.label,
        mime_type=content.mime_type,
        size_bytes=content.size_bytes,
        sha256=content.sha256,
        kind=kind,
        available_until=iso_ms(until) if until is not None else None,
        available_for_seconds=expires_in_seconds(until, service.clock.now_ms()) if until is not None else None,
    )
    if kind not in TEXT_KINDS:
        return preview
    data = await _head(service, content, PREVIEW_TEXT_MAX_BYTES)
    cut = content.size_bytes > len(data)
    # errors="replace": a cut in the middle of a multi-byte character, or bytes that are not UTF-8,
    # show as U+FFFD instead of refusing the preview.
    text = data.decode("utf-8", errors="replace")
    if kind == "csv":
        rows, more = csv_rows(text, cut)
        if rows is not None:
            return replace(preview, rows=rows, truncated=more)
    if kind == "json" and not cut:
        text = pretty_json(text)
    return replace(preview, text=text, truncated=cut)


async def _head(service: ArtifactService, content: Content, limit: int) -> bytes:
    span = min(content.size_bytes, limit)
    if span == 0:
        return b""
    body = await service.read_content(content, 0, span)
    if isinstance(body, bytes):
        return body
    chunks = bytearray()
    async for chunk in body:
        chunks.extend(chunk)
    return bytes(chunks[:span])


def csv_rows(text: str, cut: bool) -> tuple[list[list[str]] | None, bool]:
    """The first rows of a CSV text and whether there are more; None when it is not CSV at all."""
    if cut:
        text = text[: text.rfind("\n") + 1]  # the last line was cut by the read limit: never show half a row
    rows: list[list[str]] = []
    try:
        for row in csv.reader(io.StringIO(text, newline="")):
            if len(rows) == PREVIEW_CSV_MAX_ROWS:
                return rows, True
            rows.append(row[:PREVIEW_CSV_MAX_COLUMNS])
    except csv.Error:
        return None, cut
    return rows, cut


def pretty_json(text: str) -> str:
    """JSON indented for reading; the text as sent when it does not parse (or nests absurdly deep)."""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except (ValueError, RecursionError):
        return text

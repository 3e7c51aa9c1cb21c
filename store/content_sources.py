"""Content sources for MCP: the artifact use cases for callers that hold their arguments and bytes in hand
instead of reading an HTTP body. The MCP server (``outputlayer_mcp``) is such a caller; this module
owns the rules that only such callers need, so its tools merely translate:

- content arrives as base64 text, plain text or a local file; each is a :class:`ContentSource`
  whose size is known before a byte is decoded or read, so an oversize artifact is refused with
  ``payload_too_large`` first, and the size is the ``content_length`` the upload pre-checks
  (quota, storage) run on. Content is handed to the upload in slices, never decoded or read whole;
- a local file is accepted only from inside the allowed roots (``OUTPUTLAYER_MCP_ROOTS``, default
  the working directory; none at all over HTTP). The path is resolved before the check, so neither
  ``..`` nor a symbolic link leads out; the file is then opened without following a link and must
  still be the file that was checked;
- without an idempotency key the key is derived from the request's fingerprint (SPEC section 11),
  so an identical retry is a replay, never a second charge;
- a small artifact (at most :data:`INLINE_CONTENT_MAX_BYTES`) may be returned inline, as text for
  text types and as an image for images;
- each read, share, list and delete counts against the rate-limit family store/rate_families.py names
  for its use case, as its REST route does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import mimetypes
import os
import secrets
import stat
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import anyio

from store import sharing, upload_links
from store.accounts import Account
from store.base64text import unwrap_base64
from store.errors import StoreError, invalid_request
from store.outputs import Content, OutputResult
from store.rate_families import family_of
from store.service import ArtifactService
from store.uploads import UploadResult, check_fields, too_large
from store.validation import SUPPORTED_MIME_TYPES, fingerprint

INLINE_CONTENT_MAX_BYTES = 262_144
LABEL_MAX_CHARS = 200
DERIVED_KEY_PREFIX = "fp-"
LINK_KEY_PREFIX = "link-"
# Content is handed to the upload in slices of this many bytes; a multiple of 3, so the matching
# slice of base64 text (4/3 as long) never splits a 4-character group.
SLICE_BYTES = 786_432
TEXT_MIME_TYPES = frozenset({"text/plain", "text/csv", "text/html", "application/json", "application/xml"})
IMAGE_MIME_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})

InlineKind = Literal["text", "image", "blob"]


class ContentSource(Protocol):
    """Content whose size is known up front and which can be read more than once, in slices."""

    @property
    def size(self) -> int: ...

    def chunks(self) -> AsyncIterator[bytes]: ...


@dataclass(frozen=True, slots=True)
class BytesSource:
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    async def chunks(self) -> AsyncIterator[bytes]:
        view = memoryview(self.data)
        for start in range(0, len(view), SLICE_BYTES):
            yield bytes(view[start : start + SLICE_BYTES])


@dataclass(frozen=True, slots=True)
class Base64Source:
    """Base64 text decoded slice by slice, so the decoded artifact is never held whole."""

    text: str
    size: int

    async def chunks(self) -> AsyncIterator[bytes]:
        step = SLICE_BYTES // 3 * 4
        for start in range(0, len(self.text), step):
            piece = self.text[start : start + step]
            # Padding belongs only at the very end; a decoder of one slice cannot see that.
            if start + step < len(self.text) and piece.endswith("="):
                raise _bad_base64()
            try:
                yield base64.b64decode(piece, validate=True)
            except (binascii.Error, ValueError):
                raise _bad_base64() from None


def base64_source(text: str, limit: int) -> Base64Source:
    """Content sent as base64; its decoded size is computed from the text, before any decoding."""
    text = unwrap_base64(text)
    padding = 2 if text.endswith("==") else 1 if text.endswith("=") else 0
    size = len(text) * 3 // 4 - padding
    if size > limit:
        raise too_large(limit)
    if len(text) % 4:
        raise _bad_base64()
    return Base64Source(text, size)


def text_source(text: str, limit: int) -> BytesSource:
    """Content sent as text, stored as its UTF-8 bytes."""
    # Every character is at least one byte: a text longer than the limit is refused before encoding.
    if len(text) > limit:
        raise too_large(limit)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid_request("content_text must be valid Unicode text.") from None
    if len(data) > limit:
        raise too_large(limit)
    return BytesSource(data)


def _bad_base64() -> StoreError:
    return invalid_request("content_base64 must be valid base64.")


@dataclass(frozen=True, slots=True)
class FileSource:
    """A checked local file; each read re-opens it and refuses a file swapped in since the check."""

    path: Path
    size: int
    device: int
    inode: int

    async def chunks(self) -> AsyncIterator[bytes]:
        fd = await anyio.to_thread.run_sync(self._open)
        try:
            while True:
                chunk = await anyio.to_thread.run_sync(os.read, fd, SLICE_BYTES)
                if not chunk:
                    return
                yield chunk
        finally:
            os.close(fd)

    def _open(self) -> int:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            raise invalid_request(f"The file {str(self.path)!r} can no longer be read.") from None
        info = os.fstat(fd)
        if (info.st_dev, info.st_ino) != (self.device, self.inode) or not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise invalid_request(f"The file {str(self.path)!r} changed while it was being read.")
        return fd


def file_source(path: str, roots: Sequence[Path], limit: int) -> FileSource:
    """The file at ``path`` (relative paths start at the first root) if it lies inside ``roots``."""
    if not roots:
        raise invalid_request(
            "path is accepted only by the local stdio server (outputlayer mcp); send content_base64 or content_text."
        )
    candidate = Path(path).expanduser()
    if not candidate.is_absolute():
        candidate = roots[0] / candidate
    try:
        # Not strict: whether a file exists outside the roots is none of the caller's business.
        resolved = candidate.resolve()
    except (OSError, RuntimeError):
        raise invalid_request(f"The path {path!r} cannot be resolved.") from None
    if not any(resolved.is_relative_to(root) for root in roots):
        allowed = ", ".join(str(root) for root in roots)
        raise invalid_request(f"The path {path!r} is outside the allowed roots ({allowed}); see OUTPUTLAYER_MCP_ROOTS.")
    try:
        info = os.stat(resolved)
    except OSError:
        raise invalid_request(f"There is no readable file at {path!r}.") from None
    if not stat.S_ISREG(info.st_mode):
        raise invalid_request(f"The path {path!r} is not a regular file.")
    if info.st_size > limit:
        raise too_large(limit)
    return FileSource(resolved, info.st_size, info.st_dev, info.st_ino)


def content_source(
    *, content_base64: str, content_text: str, path: str, roots: Sequence[Path], limit: int
) -> ContentSource:
    """The one content argument that was sent (an empty string counts as not sent)."""
    sent = [
        name
        for name, value in (("content_base64", content_base64), ("content_text", content_text), ("path", path))
        if value
    ]
    if not sent:
        raise invalid_request("The content is required: send one of content_base64, content_text or path.")
    if len(sent) > 1:
        raise invalid_request(f"Send exactly one of content_base64, content_text or path, not {' and '.join(sent)}.")
    if content_base64:
        return base64_source(content_base64, limit)
    if content_text:
        return text_source(content_text, limit)
    return file_source(path, roots, limit)


def guess_mime_type(file_name: str) -> str:
    """The supported MIME type a file name's extension stands for; application/octet-stream otherwise.

    Python's built-in table only (not the host's mime.types files), so every machine guesses alike.
    """
    guessed, _ = mimetypes.MimeTypes().guess_type(file_name, strict=True)
    return guessed if guessed in SUPPORTED_MIME_TYPES else "application/octet-stream"


def allowed_roots(configured: Sequence[Path], working_dir: Path) -> tuple[Path, ...]:
    """The roots local files may be read from: the configured ones, else the working directory."""
    return tuple(configured) or (working_dir.resolve(),)


# --- saving ----------------------------------------------------------------------------------


def derived_idempotency_key(service: ArtifactService, fields: dict[str, Any], content_sha256: str) -> str:
    """The key of a request sent without one: its fingerprint, so the same artifact gets the same key."""
    return DERIVED_KEY_PREFIX + fingerprint(check_fields(service, fields), content_sha256)


async def save(
    service: ArtifactService,
    account: Account,
    fields: dict[str, Any],
    source: ContentSource,
    idempotency_key: str | None,
) -> UploadResult:
    """Upload ``source`` with ``fields`` (wire names, as in REST) through the one upload protocol.

    A local file saved without a label is labelled with its file name, so downloads keep the name;
    without a MIME type, its type is guessed from the name's extension (:func:`guess_mime_type`).
    """
    if isinstance(source, FileSource):
        if not fields.get("label"):
            fields = {**fields, "label": source.path.name[:LABEL_MAX_CHARS]}
        if not fields.get("mimeType"):
            fields = {**fields, "mimeType": guess_mime_type(source.path.name)}
    expected: str | None = None
    if idempotency_key is None:
        digest = hashlib.sha256()
        async for chunk in source.chunks():
            digest.update(chunk)
        expected = digest.hexdigest()
        idempotency_key = derived_idempotency_key(service, fields, expected)
    session = await service.begin_upload(account, idempotency_key, size=source.size)
    async with session:
        session.set_fields(fields)
        written = hashlib.sha256()
        async for chunk in source.chunks():
            written.update(chunk)
            await session.write(chunk)
        # A local file can change between the pass that derived the key and the pass that stored it.
        if expected is not None and written.hexdigest() != expected:
            raise invalid_request("The content changed while it was being read; send the request again.")
        return await session.finish()


# --- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Inline:
    """An artifact small enough to travel inside a tool result."""

    kind: InlineKind
    mime_type: str
    data: bytes
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Fetched:
    output: OutputResult
    inline: Inline | None = None
    # Why content that was asked for is not inline (too large, or not readable).
    not_inline: str | None = None
    # A keyless download link (a share link) for an artifact above the inline limit.
    download: dict[str, Any] | None = None


def inline_kind(mime_type: str) -> InlineKind:
    if mime_type in TEXT_MIME_TYPES:
        return "text"
    if mime_type in IMAGE_MIME_TYPES:
        return "image"
    return "blob"


async def fetch(service: ArtifactService, account: Account, output_id: str, *, include_content: bool) -> Fetched:
    """An output's metadata and contract (a read, as ``GET /v1/outputs/{id}``), with small content inline."""
    await service.enforce_rate(family_of("read_output"), account.id)
    output = await service.get_output(account, output_id)
    size = int(output.body["sizeBytes"])
    if output.status == "ready" and size > INLINE_CONTENT_MAX_BYTES:
        # Too large for a tool result: a signed link the agent's shell fetches without the key.
        link = await sharing.share_link(service, account, output_id, None)
        download = {"downloadUrl": link["shareUrl"], "downloadExpiresAt": link["shareExpiresAt"]}
        note = f"{size} bytes is more than the {INLINE_CONTENT_MAX_BYTES}-byte inline limit"
        return Fetched(output, not_inline=note if include_content else None, download=download)
    if not include_content or output.status != "ready":
        return Fetched(output, not_inline=None if not include_content else f"the output is {output.status}")
    content = await service.open_content(account, output_id)
    data = await _read_all(service, content)
    kind = inline_kind(content.mime_type)
    if kind == "text":
        try:
            return Fetched(output, Inline("text", content.mime_type, data, data.decode("utf-8")))
        except UnicodeDecodeError:
            kind = "blob"  # text that is not UTF-8 still travels, as bytes
    return Fetched(output, Inline(kind, content.mime_type, data))


async def read(service: ArtifactService, account: Account, output_id: str) -> tuple[Content, bytes]:
    """All the bytes of an owned output (a read, as ``GET /v1/outputs/{id}/content``).

    Bounded by the per-file upload limit, which every stored artifact is within.
    """
    await service.enforce_rate(family_of("read_content"), account.id)
    content = await service.open_content(account, output_id)
    return content, await _read_all(service, content)


async def _read_all(service: ArtifactService, content: Content) -> bytes:
    body = await service.read_content(content)
    if isinstance(body, bytes):
        return body
    return b"".join([chunk async for chunk in body])


# --- the other use cases, each counted against its use case's rate-limit family ---------------------------


async def share(
    service: ArtifactService, account: Account, output_id: str, expires_in_seconds: int | None
) -> dict[str, Any]:
    await service.enforce_rate(family_of("share"), account.id)
    return await service.share(account, output_id, expires_in_seconds)


async def create_upload_link(
    service: ArtifactService, account: Account, document: dict[str, Any], idempotency_key: str | None
) -> upload_links.CreatedLink:
    """An upload link (as ``POST /v1/uploads``). Without a key each call makes a new link: a link costs
    nothing until bytes arrive, and a key derived from the fields alone would hand a second file of the
    same type the first one's link (or output)."""
    await service.enforce_rate(family_of("create_upload_link"), account.id)
    key = idempotency_key or f"{LINK_KEY_PREFIX}{secrets.token_hex(16)}"
    return await upload_links.create(service, account, key, document)


async def list_page(
    service: ArtifactService,
    account: Account,
    *,
    limit: int,
    cursor: str | None,
    status: str | None,
    mime_type: str | None,
) -> dict[str, Any]:
    await service.enforce_rate(family_of("list_outputs"), account.id)
    return await service.list_outputs(account, limit=limit, cursor=cursor, status=status, mime_type=mime_type)


async def delete(service: ArtifactService, account: Account, output_id: str) -> dict[str, Any]:
    await service.enforce_rate(family_of("delete_output"), account.id)
    return await service.delete_output(account, output_id)

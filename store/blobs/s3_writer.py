"""Writes to S3 with bounded memory: one part buffer per upload, refilled for every part.

A small blob (up to :data:`STAGE_BYTES`) is kept as the chunks that came and sent with one PUT at
commit. Past that, the bytes are copied into one part buffer of :data:`PART_BYTES`; whenever it is full
and more bytes arrive, it goes out as the next part of a multipart upload (the multipart upload is
created in the same worker-thread hop as the first part) and is refilled from its start. The request
awaits each part: while a part is on its way, the client's next bytes wait in the socket, so a writer
never holds more than that one buffer. The last part and the completion go in one hop at commit (or one
plain PUT when everything fit in one part). Nothing is visible under the key before the upload completes.

The buffer is an anonymous memory map, not a Python ``bytes``: it is returned to the system the moment
the upload ends. Part-sized ``bytes`` (what the SDK's own ``put_object`` builds, several per part, on
its pool of upload threads) come from malloc, which after the first one keeps such blocks in its arenas,
so a server's resident memory grew by up to two parts per upload, at random.
"""

from __future__ import annotations

import contextlib
import io
import mmap
from collections.abc import Callable
from typing import Any, TypeVar, TypeVarTuple

from store.blobs.blocking import run_blocking
from store.errors import StoreError, service_unavailable

PART_BYTES = 5 * 1024 * 1024  # S3's smallest part (the last one may be smaller)
STAGE_BYTES = 256 * 1024  # up to this much is kept as the chunks themselves and sent with one PUT

T = TypeVar("T")
Args = TypeVarTuple("Args")


def upload_failed() -> StoreError:
    return StoreError("upload_failed", "The content could not be stored. Retry the same request.")


class PartBuffer:
    """One part's bytes in an anonymous memory map, filled from the start again after each part."""

    def __init__(self) -> None:
        self._memory = mmap.mmap(-1, PART_BYTES)
        self.filled = 0

    @property
    def full(self) -> bool:
        return self.filled == PART_BYTES

    def take(self, data: memoryview) -> int:
        """Copy as much of ``data`` as fits; answers how many bytes that was."""
        taken = min(len(data), PART_BYTES - self.filled)
        self._memory[self.filled : self.filled + taken] = data[:taken]
        self.filled += taken
        return taken

    def contents(self) -> memoryview:
        """The filled bytes, without a copy; release the view before :meth:`close`."""
        return memoryview(self._memory)[: self.filled]

    def close(self) -> None:
        # A view still held (say, by an exception's traceback) keeps the map until the view goes.
        with contextlib.suppress(BufferError):
            self._memory.close()


class S3BlobWriter:
    """Bytes for one key, sent as described in the module docstring. ``client`` is a ``minio.Minio``."""

    def __init__(
        self, client: Any, bucket: str, key: str, content_type: str, errors: tuple[type[Exception], ...]
    ) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._content_type = content_type
        self._errors = errors
        self._chunks: list[bytes] = []
        self._staged = 0
        self._part: PartBuffer | None = None
        self._upload_id: str | None = None
        self._parts: list[Any] = []

    async def write(self, chunk: bytes) -> None:
        if self._part is None:
            self._chunks.append(chunk)
            self._staged += len(chunk)
            if self._staged <= STAGE_BYTES:
                return
            self._part = PartBuffer()
            staged, self._chunks, self._staged = self._chunks, [], 0
            for piece in staged:
                await self._fill(piece)
            return
        await self._fill(chunk)

    async def _fill(self, chunk: bytes) -> None:
        assert self._part is not None
        data = memoryview(chunk)
        while data:
            # A full buffer goes out only once more bytes come: the last part is sent by commit.
            if self._part.full:
                await self._in_thread(self._send_part)
            data = data[self._part.take(data) :]

    async def commit(self) -> None:
        if self._part is None:
            data, self._chunks, self._staged = b"".join(self._chunks), [], 0
            await self._in_thread(self._put_small, data)
            return
        try:
            await self._in_thread(self._send_last_part)
        finally:
            self._release()

    async def abort(self) -> None:
        self._chunks, self._staged = [], 0
        self._release()
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            try:
                await run_blocking(self._client._abort_multipart_upload, self._bucket, self._key, upload_id)
            except self._errors as exc:
                # S3 is away: the delete that follows (or the sweep's, later) aborts it by key.
                raise service_unavailable("blob store") from exc

    async def _in_thread(self, work: Callable[[*Args], T], *args: *Args) -> T:
        """One worker-thread hop into the synchronous SDK; what S3 answers badly is ``upload_failed``."""
        try:
            return await run_blocking(work, *args)
        except self._errors as exc:
            raise upload_failed() from exc

    def _release(self) -> None:
        if self._part is not None:
            self._part.close()
            self._part = None

    # --- run in a worker thread -----------------------------------------------------------------------
    # The SDK sends parts only from a stream through its own thread pool (see the module docstring), so
    # the multipart calls are its lower-level methods, which it has under private names.

    def _put_small(self, data: bytes) -> None:
        self._client.put_object(
            self._bucket, self._key, io.BytesIO(data), length=len(data), content_type=self._content_type
        )

    def _send_part(self) -> None:
        from minio.datatypes import Part

        assert self._part is not None
        if self._upload_id is None:
            self._upload_id = self._client._create_multipart_upload(
                self._bucket, self._key, {"Content-Type": self._content_type}
            )
        number = len(self._parts) + 1
        with self._part.contents() as body:
            etag = self._client._upload_part(self._bucket, self._key, body, None, self._upload_id, number)
        self._parts.append(Part(number, etag))
        self._part.filled = 0

    def _send_last_part(self) -> None:
        assert self._part is not None
        if self._upload_id is None:
            with self._part.contents() as body:
                self._client._put_object(self._bucket, self._key, body, {"Content-Type": self._content_type})
            return
        self._send_part()
        self._client._complete_multipart_upload(self._bucket, self._key, self._upload_id, self._parts)
        self._upload_id = None

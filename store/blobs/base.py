"""The blob store interface: where artifact bytes live, by key, streamed in and out in chunks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Protocol

CHUNK_BYTES = 256 * 1024
# Reads up to this size are served as one body, not a stream (fewer thread hops per download).
SMALL_READ_BYTES = 64 * 1024


class BlobWriter(Protocol):
    """Bytes for one key, written in order; invisible under the key until :meth:`commit`."""

    async def write(self, chunk: bytes) -> None: ...

    async def commit(self) -> None: ...

    async def abort(self) -> None:
        """Drop what was written; safe to call after a failure and more than once."""
        ...


class BlobStore(Protocol):
    async def writer(self, key: str, content_type: str) -> BlobWriter: ...

    def read(self, key: str, start: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """The bytes of ``key`` from ``start``, ``length`` of them (all when None)."""
        ...

    async def read_small(self, key: str, start: int, length: int) -> bytes:
        """``length`` bytes (at most :data:`SMALL_READ_BYTES`) in one call: one worker-thread hop."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the blob and any partial write of it; a missing blob is not an error."""
        ...

    async def exists(self, key: str) -> bool: ...

    def keys(self) -> Iterator[str]:
        """Every committed key (used by ``outputlayer check``; synchronous, may be slow)."""
        ...

    def delete_sync(self, key: str) -> None: ...

    async def ping(self) -> None: ...

    def close(self) -> None: ...

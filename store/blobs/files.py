"""Blobs as files under one directory: ``<root>/<account>/<output>``, written via ``<root>/.partial``.

A write goes to a partial file and is renamed into place on commit, so a reader never sees half a
blob and a crash leaves only a partial file that :meth:`FileBlobStore.delete` also removes. Small
blobs are buffered and written at commit in one go, on the event loop; larger ones spill to the
partial file in 1 MiB batches through a worker thread, so memory stays bounded whatever the size.
A small read whose bytes are all in the page cache is served on the event loop (``RWF_NOWAIT``);
any other read takes a worker thread. Deletes (an unlink) run on the loop too.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import BinaryIO

from store.blobs.base import CHUNK_BYTES
from store.blobs.blocking import run_blocking
from store.errors import StoreError, service_unavailable

SPILL_BYTES = 1024 * 1024
PARTIAL_DIR = ".partial"


class FileBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / PARTIAL_DIR).mkdir(parents=True, exist_ok=True)
        # Small reads of cached bytes happen on the event loop where the platform can ask for them.
        self._nowait_reads = hasattr(os, "RWF_NOWAIT") and hasattr(os, "preadv")

    def _final(self, key: str) -> Path:
        return self.root / key

    def _partial(self, key: str) -> Path:
        return self.root / PARTIAL_DIR / key.replace("/", "__")

    async def writer(self, key: str, content_type: str) -> FileBlobWriter:
        return FileBlobWriter(self._partial(key), self._final(key))

    async def read(self, key: str, start: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        try:
            handle, remaining, chunk = await run_blocking(self._open_range, key, start, length)
        except FileNotFoundError as exc:
            raise StoreError("server_error", "The stored content of this output is missing.") from exc
        except OSError as exc:
            raise service_unavailable("blob store") from exc
        try:
            while chunk:
                yield chunk
                remaining -= len(chunk)
                if remaining <= 0:
                    break  # the span is all here: no hop just to learn that it ended
                chunk = await run_blocking(handle.read, min(CHUNK_BYTES, remaining))
        finally:
            handle.close()

    def _open_range(self, key: str, start: int, length: int | None) -> tuple[BinaryIO, int, bytes]:
        """The open file, the bytes of the span still to read and its first chunk, in one hop."""
        handle = self._final(key).open("rb")
        try:
            remaining = os.fstat(handle.fileno()).st_size - start if length is None else length
            handle.seek(start)
            first = handle.read(min(CHUNK_BYTES, remaining)) if remaining > 0 else b""
        except BaseException:
            handle.close()
            raise
        return handle, remaining, first

    async def read_small(self, key: str, start: int, length: int) -> bytes:
        try:
            cached = self._read_cached(key, start, length) if self._nowait_reads else None
            if cached is not None:
                return cached
            return await run_blocking(self._read_range, key, start, length)
        except FileNotFoundError as exc:
            raise StoreError("server_error", "The stored content of this output is missing.") from exc
        except OSError as exc:
            raise service_unavailable("blob store") from exc

    def _read_cached(self, key: str, start: int, length: int) -> bytes | None:
        """The span read on the event loop if the page cache holds all of it, else None.

        ``RWF_NOWAIT`` makes the read fail instead of waiting for the disk, so the loop never waits
        for one: a read of cached bytes costs a few µs where a worker-thread hop costs ~50 µs and,
        on a busy machine, the wait for a thread to be scheduled.
        """
        buffer = bytearray(length)
        descriptor = os.open(self._final(key), os.O_RDONLY)
        try:
            read = os.preadv(descriptor, [buffer], start, os.RWF_NOWAIT)
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
            self._nowait_reads = False  # this file system cannot tell: every read goes to the thread
            return None
        finally:
            os.close(descriptor)
        # Fewer bytes: partly cached, or the file ends early; the thread's read settles which.
        return bytes(buffer) if read == length else None

    def _read_range(self, key: str, start: int, length: int) -> bytes:
        with self._final(key).open("rb") as handle:
            handle.seek(start)
            return handle.read(length)

    async def delete(self, key: str) -> None:
        # On the loop: removing a file is one directory update (~10 µs), where the worker-thread hop
        # cost ~0.2 ms of CPU per delete and most of its p99 on a busy machine (docs/DECISIONS.md).
        self.delete_sync(key)

    def delete_sync(self, key: str) -> None:
        try:
            for path in (self._final(key), self._partial(key)):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        except OSError as exc:
            raise service_unavailable("blob store") from exc

    async def exists(self, key: str) -> bool:
        return await run_blocking(self._final(key).is_file)

    def keys(self) -> Iterator[str]:
        for account_dir in sorted(self.root.iterdir()):
            if account_dir.name == PARTIAL_DIR or not account_dir.is_dir():
                continue
            for blob in sorted(account_dir.iterdir()):
                yield f"{account_dir.name}/{blob.name}"

    def partial_keys(self) -> Iterator[str]:
        for path in (self.root / PARTIAL_DIR).iterdir():
            yield path.name.replace("__", "/")

    async def ping(self) -> None:
        ok = await run_blocking(os.access, self.root, os.W_OK)
        if not ok:
            raise service_unavailable("blob store")

    def close(self) -> None:
        return None


class FileBlobWriter:
    def __init__(self, partial: Path, final: Path) -> None:
        self._partial = partial
        self._final = final
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._handle: BinaryIO | None = None

    async def write(self, chunk: bytes) -> None:
        self._buffer.append(chunk)
        self._buffered += len(chunk)
        if self._buffered >= SPILL_BYTES:
            await self._spill()

    async def _spill(self) -> None:
        data, self._buffer, self._buffered = b"".join(self._buffer), [], 0
        try:
            await run_blocking(self._append, data)
        except OSError as exc:
            raise StoreError("upload_failed", "The content could not be stored. Retry the same request.") from exc

    def _append(self, data: bytes) -> None:
        if self._handle is None:
            self._handle = self._partial.open("wb")
        self._handle.write(data)

    async def commit(self) -> None:
        small = self._handle is None  # never spilled: all of it is in the buffer, below SPILL_BYTES
        data, self._buffer, self._buffered = b"".join(self._buffer), [], 0
        try:
            if small:
                # On the loop, like a delete: a small file's create, write and rename cost tens of µs,
                # less than the worker-thread hop (docs/DECISIONS.md).
                self._commit_sync(data)
            else:
                await run_blocking(self._commit_sync, data)
        except OSError as exc:
            raise StoreError("upload_failed", "The content could not be stored. Retry the same request.") from exc

    def _commit_sync(self, data: bytes) -> None:
        self._append(data)
        assert self._handle is not None
        self._handle.close()
        self._handle = None
        self._final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._partial, self._final)

    async def abort(self) -> None:
        await run_blocking(self._abort_sync)

    def _abort_sync(self) -> None:
        self._buffer, self._buffered = [], 0
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        with contextlib.suppress(FileNotFoundError):
            self._partial.unlink()

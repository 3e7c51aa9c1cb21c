"""Small reads from the file blob store: cached bytes on the event loop, the rest through a worker
thread, the same bytes either way."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from store import StoreError
from store.blobs.files import FileBlobStore

pytestmark = pytest.mark.anyio

CONTENT = bytes(range(256)) * 20  # 5,120 bytes


async def stored(root: Path, key: str = "acct/out_1") -> FileBlobStore:
    blobs = FileBlobStore(root)
    writer = await blobs.writer(key, "application/octet-stream")
    await writer.write(CONTENT)
    await writer.commit()
    return blobs


def evict(path: Path) -> None:
    """Drop the file's pages from the page cache (written out first, so the kernel may drop them)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
        os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(descriptor)


@pytest.mark.parametrize("evicted", [False, True], ids=["cached", "evicted"])
@pytest.mark.parametrize(("start", "length"), [(0, len(CONTENT)), (1000, 24), (len(CONTENT) - 7, 7)])
async def test_small_reads_give_the_span_whether_cached_or_not(
    tmp_path: Path, evicted: bool, start: int, length: int
) -> None:
    blobs = await stored(tmp_path)
    if evicted:
        evict(tmp_path / "acct" / "out_1")
    assert await blobs.read_small("acct/out_1", start, length) == CONTENT[start : start + length]


async def test_a_span_past_the_end_gives_what_the_file_holds(tmp_path: Path) -> None:
    blobs = await stored(tmp_path)
    assert await blobs.read_small("acct/out_1", len(CONTENT) - 10, 100) == CONTENT[-10:]


async def test_a_missing_file_is_a_server_error(tmp_path: Path) -> None:
    blobs = await stored(tmp_path)
    with pytest.raises(StoreError) as caught:
        await blobs.read_small("acct/out_gone", 0, 10)
    assert caught.value.code == "server_error"

"""Blob writes and streamed reads at the edges of their buffers, on both backends: the S3 writer's staged
chunks and its one part buffer (a plain PUT up to one part, a multipart upload past it), the file
writer's spill, and streamed reads whose span ends inside, at, or past a chunk."""

from __future__ import annotations

import hashlib

import pytest

from store import ArtifactService
from store.blobs.base import CHUNK_BYTES
from store.blobs.files import SPILL_BYTES
from store.blobs.s3_writer import PART_BYTES, STAGE_BYTES
from tests.factories import blob_keys, partial_keys, read_blob

pytestmark = pytest.mark.anyio

KEY = "acct/out_edges"
SIZES = [
    STAGE_BYTES,
    STAGE_BYTES + 1,
    SPILL_BYTES + 1,
    PART_BYTES,
    PART_BYTES + 1,
    2 * PART_BYTES,
    2 * PART_BYTES + 3,
]


def content(size: int) -> bytes:
    """``size`` bytes that differ along the way (a misplaced or repeated part changes the digest)."""
    block = hashlib.sha256(str(size).encode()).digest() * 2048  # 64 KiB
    return (block * (size // len(block) + 1))[:size]


async def write(service: ArtifactService, data: bytes, piece: int) -> None:
    writer = await service.blobs.writer(KEY, "application/octet-stream")
    for at in range(0, len(data), piece):
        await writer.write(data[at : at + piece])
    await writer.commit()


# Pieces of 64 KiB (what a server receives) and of an odd size that straddles every buffer edge.
@pytest.mark.parametrize("piece", [64 * 1024, 1_000_003], ids=["64KiB", "odd"])
@pytest.mark.parametrize("size", SIZES)
async def test_a_written_blob_reads_back_whole_and_leaves_no_partial_write(
    service: ArtifactService, size: int, piece: int
) -> None:
    data = content(size)
    await write(service, data, piece)
    assert blob_keys(service) == [KEY]
    assert partial_keys(service) == []
    assert hashlib.sha256(await read_blob(service, KEY)).hexdigest() == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    ("start", "length"),
    [
        (0, CHUNK_BYTES),
        (1, CHUNK_BYTES),
        (CHUNK_BYTES - 1, CHUNK_BYTES + 2),
        (3 * CHUNK_BYTES, None),
        (0, None),
        (PART_BYTES + 5 - 100, None),
    ],
)
async def test_a_streamed_read_gives_exactly_its_span(service: ArtifactService, start: int, length: int | None) -> None:
    data = content(PART_BYTES + 5)
    await write(service, data, 64 * 1024)
    chunks = [chunk async for chunk in service.blobs.read(KEY, start, length)]
    end = len(data) if length is None else start + length
    assert b"".join(chunks) == data[start:end]
    assert all(0 < len(chunk) <= CHUNK_BYTES for chunk in chunks)


async def test_an_aborted_streamed_write_leaves_nothing(service: ArtifactService) -> None:
    writer = await service.blobs.writer(KEY, "application/octet-stream")
    data = content(2 * PART_BYTES + 3)
    for at in range(0, len(data), 64 * 1024):
        await writer.write(data[at : at + 64 * 1024])
    await writer.abort()
    await writer.abort()  # safe more than once
    assert blob_keys(service) == []
    assert partial_keys(service) == []

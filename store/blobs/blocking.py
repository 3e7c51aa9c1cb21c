"""The one seam between the event loop and blocking blob I/O (the synchronous minio SDK, file reads).

Every blocking call of a blob store goes through :func:`run_blocking`: one worker-thread hop each. A hop
costs ~50 µs of CPU and, on a busy machine, the wait for a thread to be scheduled, so the backends bundle
the blocking steps of one use case into one function and hop once: a small read gets and reads the
object whole; a stream's open (the GET, or the file's open and seek) brings its first chunk along; a
streamed write sends one S3 part per hop. What stays on the loop never waits for a disk or the network
(file deletes, small file writes, reads of cached file pages: see store/blobs/files.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, TypeVarTuple

import anyio.to_thread

T = TypeVar("T")
Args = TypeVarTuple("Args")


async def run_blocking(work: Callable[[*Args], T], *args: *Args) -> T:
    """``work(*args)`` in a worker thread; the caller waits for it (a cancel waits for it too, so
    ``work`` never outlives the buffers and responses it was handed)."""
    return await anyio.to_thread.run_sync(work, *args)

"""SQLite WAL checkpoints off the write path: a thread of its own copies the WAL back into the
database file, so no write transaction (on the event loop or in the writer thread) ever waits for
the copy or its fsyncs.

SQLite's automatic checkpoint runs inside the COMMIT that crosses its threshold, holding the write
lock meanwhile; on a busy disk that one commit took hundreds of ms and every write queued behind
it. Here the write connections have it off (``wal_autocheckpoint=0``) and report their commits; every
:data:`COMMITS_PER_CHECKPOINT` commits this thread runs a PASSIVE checkpoint on its own connection,
which copies what it can without taking the write lock or waiting for readers.

A PASSIVE checkpoint copies the WAL as it stood when it began; SQLite starts the WAL over only once a
checkpoint has copied all of it, and under a steady write load commits land during every copy, so the
WAL grew without end (2 pages a write: 360 MB after 40,000 writes). So when a checkpoint leaves more than
:data:`WAL_FRAMES_BOUND` frames behind it, a second PASSIVE checkpoint runs with this process's writes
held (``pause_writes``): it copies only what the first one missed, and completes; the next write starts
the WAL over, and ``journal_size_limit`` truncates the file. The loop never waits for it: a write that
finds the lock taken goes to the writer thread (store/db.py).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager

log = logging.getLogger("outputlayer.store")

# About SQLite's own default threshold (1,000 WAL pages) at the few pages a write transaction adds.
COMMITS_PER_CHECKPOINT = 256
# The WAL a checkpoint may leave behind before the next one completes with writes held: 16 MiB of 4 KiB pages.
WAL_FRAMES_BOUND = 4096


class WalCheckpointer:
    """Runs a PASSIVE checkpoint in its own thread after every :data:`COMMITS_PER_CHECKPOINT` commits."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        every: int = COMMITS_PER_CHECKPOINT,
        *,
        pause_writes: AbstractContextManager[object] | None = None,
        frames_bound: int = WAL_FRAMES_BOUND,
    ) -> None:
        self._connect = connect
        self._every = every
        self._pause_writes = pause_writes
        self._frames_bound = frames_bound
        self._commits = 0
        self._due = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def committed(self) -> None:
        """Count one commit (from any thread); wakes the checkpoint thread when one is due."""
        self._commits += 1
        if self._commits >= self._every:
            self._commits = 0
            self._ensure_thread()
            self._due.set()

    def _ensure_thread(self) -> None:
        with self._start_lock:
            if self._thread is None and not self._stopping:
                self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        connection = self._connect()
        try:
            while True:
                self._due.wait()
                self._due.clear()
                if self._stopping:
                    return
                self._checkpoint(connection)
        finally:
            connection.close()

    def _checkpoint(self, connection: sqlite3.Connection) -> None:
        try:
            _busy, wal_frames, _copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if self._pause_writes is not None and wal_frames > self._frames_bound:
                with self._pause_writes:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error:
            # Another process checkpointing, or a disk hiccup: the next one copies what this one left.
            log.warning("SQLite WAL checkpoint failed; the next one retries", exc_info=True)

    def close(self) -> None:
        with self._start_lock:
            self._stopping = True
            thread = self._thread
        self._due.set()
        if thread is not None:
            thread.join()

"""SQLite WAL checkpoints off the write path: a thread of its own copies the WAL back into the
database file, so no write transaction (on the event loop or in the writer thread) ever waits for
the copy or its fsyncs.

SQLite's automatic checkpoint runs inside the COMMIT that crosses its threshold, holding the write
lock meanwhile; on a busy disk that one commit took hundreds of ms and every write queued behind
it. Here the write connections have it off (``wal_autocheckpoint=0``) and report their commits; every
:data:`COMMITS_PER_CHECKPOINT` commits this thread runs a PASSIVE checkpoint on its own connection,
which copies what it can without taking the write lock or waiting for readers.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable

log = logging.getLogger("outputlayer.store")

# About SQLite's own default threshold (1,000 WAL pages) at the few pages a write transaction adds.
COMMITS_PER_CHECKPOINT = 256


class WalCheckpointer:
    """Runs a PASSIVE checkpoint in its own thread after every :data:`COMMITS_PER_CHECKPOINT` commits."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], every: int = COMMITS_PER_CHECKPOINT) -> None:
        self._connect = connect
        self._every = every
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

    @staticmethod
    def _checkpoint(connection: sqlite3.Connection) -> None:
        try:
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

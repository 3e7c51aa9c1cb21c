"""SQLite WAL checkpoints off the write path, and the WAL kept bounded under a steady write load.

SQLite's automatic checkpoint runs inside the COMMIT that crosses its threshold, holding the write
lock meanwhile; on a busy disk that one commit took hundreds of ms and every write queued behind
it. Here the write connections have it off (``wal_autocheckpoint=0``) and report their commits; every
:data:`COMMITS_PER_CHECKPOINT` commits a thread of its own runs a PASSIVE checkpoint on its own
connection, which copies what it can without taking the write lock or waiting for readers.

SQLite starts the WAL over from its beginning only when a write transaction begins while every frame
has been copied. Under a steady write load each checkpoint copied all it saw, but commits landed
between it and the next write's BEGIN, so the WAL never started over and grew without end (2 pages a
write: 360 MB after 40,000 writes). So once the WAL holds more than :data:`WAL_FRAMES_BOUND` frames,
the checkpoint asks this process's writes for a quiet moment (:class:`WriteGate`): after the long
unguarded pass, it shuts the gate, waits for the write in flight, copies the few frames committed
since, and opens the gate; the next write starts the WAL over, and ``journal_size_limit`` (set on the
write connections, store/db.py) truncates the file back to the bound. Writes on the event loop wait
at the shut gate (an awaited future) rather than going to the writer thread, so they stay on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator

log = logging.getLogger("outputlayer.store")

# About SQLite's own default threshold (1,000 WAL pages) at the few pages a write transaction adds.
COMMITS_PER_CHECKPOINT = 256
# The WAL frames past which a checkpoint completes with this process's writes held: 16 MiB of 4 KiB pages.
WAL_FRAMES_BOUND = 4096
# Set on the write connections: a commit that starts the WAL over truncates the file back to the bound.
LIMIT_WAL_FILE = f"PRAGMA journal_size_limit={WAL_FRAMES_BOUND * 4096}"


class WriteGate:
    """A gate in front of this process's writes, shut by the checkpoint thread for a quiet moment.

    ``quiet()`` shuts it, then takes ``write_lock`` (so the write in flight finishes first); writes on
    an event loop see :attr:`shut` and await :meth:`opened` instead of taking the lock; writes in other
    threads simply wait for the lock.
    """

    def __init__(self, write_lock: threading.Lock) -> None:
        self._write_lock = write_lock
        self._guard = threading.Lock()
        self._shut = False
        self._quiet_moments = 0
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    @property
    def shut(self) -> bool:
        return self._shut

    @property
    def quiet_moments(self) -> int:
        """How many quiet moments have begun; read it before trying the write lock."""
        return self._quiet_moments

    def held_lock_since(self, quiet_moments: int) -> bool:
        """Whether a write lock found taken may have been a quiet moment's: one is on, or one began (and
        maybe ended) since :attr:`quiet_moments` read ``quiet_moments``. Then the write tries again on
        the loop; otherwise the lock is another write's and the write goes to the writer thread."""
        return self._shut or self._quiet_moments != quiet_moments

    async def opened(self) -> None:
        """Return once the gate is open (at once if it is)."""
        loop = asyncio.get_running_loop()
        with self._guard:
            if not self._shut:
                return
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, waiter))
        await waiter

    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        """Hold every write of this process for the block; the gate shuts before the lock is taken, so a
        loop write that finds the lock taken also finds the gate shut and waits at it."""
        with self._guard:
            # Shut before counting: a write that reads the new count then finds the gate shut, or open again.
            self._shut = True
            self._quiet_moments += 1
        try:
            with self._write_lock:
                yield
        finally:
            self._open()

    def _open(self) -> None:
        with self._guard:
            self._shut = False
            waiters, self._waiters = self._waiters, []
        for loop, waiter in waiters:
            with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits there any more
                loop.call_soon_threadsafe(_release, waiter)


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():  # a cancelled wait
        waiter.set_result(None)


class WalCheckpointer:
    """Runs a PASSIVE checkpoint in its own thread after every :data:`COMMITS_PER_CHECKPOINT` commits;
    past ``frames_bound`` frames, completes it with this process's writes held (``gate``), and, should
    that not start the WAL over, asks again only once the WAL has doubled."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        every: int = COMMITS_PER_CHECKPOINT,
        *,
        gate: WriteGate | None = None,
        frames_bound: int = WAL_FRAMES_BOUND,
    ) -> None:
        self._connect = connect
        self._every = every
        self._gate = gate
        self._frames_bound = frames_bound
        # The WAL's frames past which the next quiet moment is asked for (see _checkpoint).
        self._quiet_past = frames_bound
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
            if wal_frames <= self._frames_bound:
                self._quiet_past = self._frames_bound  # the WAL started over since the last quiet moment
            elif self._gate is not None and wal_frames > self._quiet_past:
                # Another process that keeps writing (or reading an old snapshot) can keep a quiet moment
                # from starting the WAL over; then the next one waits for twice the WAL, not 256 commits.
                self._quiet_past = 2 * wal_frames
                # Only the frames committed during the pass above are left: the quiet moment is short.
                with self._gate.quiet():
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

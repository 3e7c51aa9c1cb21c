"""SQLite write transactions (store/db.py): on the event loop when the file's lock is free, in the
writer thread when another connection holds it, so a lock held elsewhere never blocks the loop."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from store import Database, StoreError, migrate, open_database
from store.db import SqliteDatabase, Tx
from store.sqlite_checkpoints import COMMITS_PER_CHECKPOINT, WAL_FRAMES_BOUND, WalCheckpointer, WriteGate

pytestmark = pytest.mark.anyio


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "writes.db"


@pytest.fixture
def db(path: Path) -> Iterator[Database]:
    url = f"sqlite:///{path}"
    migrate(url)
    database = open_database(url)
    yield database
    database.close()


def record_thread(tx: Tx) -> int:
    tx.execute("INSERT INTO rate_events (bucket, at) VALUES ('writes', 0)")
    return threading.get_ident()


def events(db: Database) -> int:
    found = db.read_sync(lambda tx: tx.one("SELECT COUNT(*) AS n FROM rate_events WHERE bucket = 'writes'"))
    assert found is not None
    return int(found["n"])


async def test_writes_run_on_the_loop_while_the_lock_is_free(db: Database) -> None:
    threads = {await db.write(record_thread) for _ in range(20)}
    assert threads == {threading.get_ident()}
    assert events(db) == 20


def checkpoint_fully(path: Path) -> bytes:
    """Copy the whole WAL into the database file (as a fresh start would); the file's bytes after."""
    settled = sqlite3.connect(path, isolation_level=None)
    settled.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    settled.close()
    return path.read_bytes()


def file_changes(path: Path, before: bytes, timeout: float = 30.0) -> bool:
    """Whether the database file's bytes differ from ``before`` within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.read_bytes() != before:
            return True
        time.sleep(0.01)
    return False


async def test_commits_leave_the_database_file_to_the_checkpoint_thread(db: Database, path: Path) -> None:
    """Commits go to the WAL only; after COMMITS_PER_CHECKPOINT of them the checkpoint thread copies
    them into the database file."""
    before = checkpoint_fully(path)
    for _ in range(COMMITS_PER_CHECKPOINT - 1):
        await db.write(record_thread)
    assert not file_changes(path, before, timeout=0.2)
    await db.write(record_thread)
    assert file_changes(path, before)
    assert events(db) == COMMITS_PER_CHECKPOINT


async def test_a_lock_held_elsewhere_sends_the_write_to_the_writer_thread(db: Database, path: Path) -> None:
    """While another connection holds the write lock, the loop keeps serving reads; the write waits
    in the writer thread and lands once the lock is released."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    ran_on: list[int] = []
    done = anyio.Event()

    async def write() -> None:
        ran_on.append(await db.write(record_thread))
        done.set()

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(write)
            await anyio.lowlevel.checkpoint()  # the write's first step: the lock is taken, so off to the thread
            assert await db.read(lambda tx: tx.one("SELECT 1 AS ok")) == {"ok": 1}
            assert not done.is_set()
            other.execute("COMMIT")
            await done.wait()
    other.close()
    assert ran_on != [threading.get_ident()]
    assert events(db) == 1


async def test_a_failed_write_on_the_loop_leaves_nothing_and_the_next_one_lands(db: Database) -> None:
    def insert_then_fail(tx: Tx) -> None:
        record_thread(tx)
        raise StoreError("invalid_request", "refused after the insert")

    with pytest.raises(StoreError):
        await db.write(insert_then_fail)
    assert events(db) == 0
    assert await db.write(record_thread) == threading.get_ident()
    assert events(db) == 1


async def test_a_steady_write_load_keeps_the_wal_bounded_and_the_writes_on_the_loop(db: Database, path: Path) -> None:
    """20,000 writes from 10 interleaved tasks (2-3 pages each: 160+ MB of WAL when nothing bounds it, as
    commits land during every checkpoint) leave a WAL of at most a few times its bound, and every one of
    them ran on the loop: the checkpoint's quiet moments kept none waiting in the writer thread."""
    ran_on: set[int] = set()

    async def writer() -> None:
        for _ in range(2_000):
            ran_on.add(await db.write(record_thread))
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tasks:
        for _ in range(10):
            tasks.start_soon(writer)
    assert ran_on == {threading.get_ident()}
    assert events(db) == 20_000
    wal = path.with_name(path.name + "-wal")
    assert wal.stat().st_size <= 4 * WAL_FRAMES_BOUND * 4096


async def test_a_write_during_a_quiet_moment_waits_on_the_loop_and_lands_after_it(db: Database) -> None:
    """While the checkpoint holds this process's writes, the loop keeps serving reads; a write waits at the
    gate (not in the writer thread) and runs on the loop once the quiet moment ends."""
    assert isinstance(db, SqliteDatabase)
    gate = db._gate
    quiet = threading.Event()
    end_quiet = threading.Event()

    def hold_writes() -> None:
        with gate.quiet():
            quiet.set()
            end_quiet.wait(60)

    holder = threading.Thread(target=hold_writes)
    holder.start()
    assert quiet.wait(60)
    ran_on: list[int] = []
    done = anyio.Event()

    async def write() -> None:
        ran_on.append(await db.write(record_thread))
        done.set()

    try:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(write)
                await anyio.lowlevel.checkpoint()  # the write's first step: the gate is shut, so it waits
                assert await db.read(lambda tx: tx.one("SELECT 1 AS ok")) == {"ok": 1}
                assert not done.is_set()
                end_quiet.set()
                await done.wait()
    finally:
        end_quiet.set()
        holder.join()
    assert ran_on == [threading.get_ident()]
    assert events(db) == 1


def wal_frames(path: Path) -> int:
    """The frames the WAL file holds (its 32-byte header, then 4 KiB pages of 24-byte frame headers)."""
    return (path.with_name(path.name + "-wal").stat().st_size - 32) // (4096 + 24)


def test_a_quiet_moment_that_cannot_start_the_wal_over_is_asked_again_only_when_the_wal_doubled(path: Path) -> None:
    """A read snapshot held elsewhere (as another process can) keeps the WAL from starting over: after the
    first quiet moment at the bound, the next waits until the WAL has doubled; once the WAL has started
    over, the bound applies again."""
    migrate(f"sqlite:///{path}")
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    reader = sqlite3.connect(path, isolation_level=None)
    checkpoint = sqlite3.connect(path, isolation_level=None)
    gate = WriteGate(threading.Lock())
    checkpointer = WalCheckpointer(lambda: checkpoint, gate=gate, frames_bound=20)

    def write_then_checkpoint(commits: int) -> None:
        for number in range(commits):
            writer.execute("INSERT INTO rate_events (bucket, at) VALUES ('frames', ?)", (number,))
        checkpointer._checkpoint(checkpoint)

    try:
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM rate_events").fetchall()  # an old snapshot, held
        write_then_checkpoint(30)
        assert gate.quiet_moments == 1
        first = wal_frames(path)
        while gate.quiet_moments == 1 and wal_frames(path) < 4 * first:
            write_then_checkpoint(5)
        assert gate.quiet_moments == 2
        assert wal_frames(path) > 2 * first
        reader.execute("COMMIT")
        write_then_checkpoint(1)  # copies the whole WAL: nothing holds it now
        write_then_checkpoint(1)  # this write started the WAL over
        write_then_checkpoint(30)
        assert gate.quiet_moments == 3
    finally:
        for connection in (reader, writer, checkpoint):
            connection.close()

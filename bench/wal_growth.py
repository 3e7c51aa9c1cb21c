"""How large SQLite's WAL file grows under a steady write load, and how fast the writes go.

Writes small rows through the store's ``SqliteDatabase`` from the event loop, in ``--tasks`` interleaved
tasks (so commits land while checkpoints run, as under a server's load), into a fresh migrated file:

    .venv/bin/python bench/wal_growth.py [--writes N] [--tasks T]

Prints the WAL file's size every tenth of the run, then writes per second, the p50 and p99 of one write
and the WAL's size at the end (the bound is ``store.sqlite_checkpoints.WAL_FRAMES_BOUND`` frames).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import tempfile
import time
from pathlib import Path

from store import migrate
from store.db import SqliteDatabase, Tx


def _insert(tx: Tx, name: str) -> None:
    tx.execute("INSERT INTO server_secrets (name, value) VALUES (?, ?)", (name, "x" * 100))


def _wal_mib(path: Path) -> float:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size / 2**20 if wal.exists() else 0.0


async def _load(db: SqliteDatabase, path: Path, writes: int, tasks: int) -> list[float]:
    latencies: list[float] = []
    report_every = max(writes // 10, 1)

    async def writer(task: int) -> None:
        for number in range(task, writes, tasks):
            started = time.perf_counter()
            await db.write(functools.partial(_insert, name=f"w{number}"))
            latencies.append(time.perf_counter() - started)
            if len(latencies) % report_every == 0:
                print(f"{len(latencies):>9,} writes  WAL {_wal_mib(path):8.1f} MiB", flush=True)
            await asyncio.sleep(0)  # let the other tasks write in between, as a server's requests do

    await asyncio.gather(*(writer(task) for task in range(tasks)))
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writes", type=int, default=40_000)
    parser.add_argument("--tasks", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "wal.db"
        migrate(f"sqlite:///{path}")
        db = SqliteDatabase(str(path))
        try:
            started = time.perf_counter()
            latencies = asyncio.run(_load(db, path, args.writes, args.tasks))
            elapsed = time.perf_counter() - started
            wal_at_end = _wal_mib(path)
        finally:
            db.close()
    latencies.sort()
    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
    print(
        f"{args.writes / elapsed:,.0f} writes/s  p50 {p50 * 1e6:,.0f} µs  p99 {p99 * 1e6:,.0f} µs  "
        f"WAL at the end {wal_at_end:.1f} MiB"
    )


if __name__ == "__main__":
    main()

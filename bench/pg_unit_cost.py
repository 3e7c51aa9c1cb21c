"""What a PostgreSQL unit of work costs this process in CPU outside its statements: the connection's
checkout and return, and waiting on its socket (``store/pg_kept.py``, ``store/pg_wire.py``).

Starts a throw-away PostgreSQL cluster (``bench/servers.py``) and has 50 tasks (the benchmark's wrk
connections) run units through one :class:`store.db.PostgresDatabase` with a pool of 10, the way 50
concurrent requests would. A write unit locks its task's row and updates it with the COMMIT (two round
trips, as a delete's); a read unit is one statement:

    .venv/bin/python -m bench.pg_unit_cost [--units N] [--rounds R]

Prints, per way (connections kept between units, or each unit's connection checked out of the pool and
returned), the best of R rounds, alternated: units per second and microseconds of this process's CPU
(user + system) per unit. The server's CPU is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg

import store.db
from bench.servers import start_postgres
from store.db import PostgresDatabase, Tx
from store.pg_kept import KeptConnections

TASKS = 50
POOL_SIZE = 10


class PoolCheckoutPerUnit:
    """Each unit's connection checked out of the pool and returned, as before ``store/pg_kept.py``."""

    def __init__(self, pool: Any, *, before_return: Callable[[Any], None]) -> None:
        self.pool = pool
        self._before_return = before_return

    @asynccontextmanager
    async def connection(self, wait_seconds: float | None = None) -> AsyncIterator[Any]:
        async with self.pool.connection(timeout=wait_seconds) as connection:
            try:
                yield connection
            finally:
                self._before_return(connection)

    async def aclose(self) -> None:
        """Nothing kept."""

    def abandon(self) -> list[Any]:
        return []


WAYS: dict[str, Callable[..., Any]] = {
    "kept between units": KeptConnections,
    "pool checkout per unit": PoolCheckoutPerUnit,
}


def _write(tx: Tx, row: int) -> None:
    tx.one("SELECT n FROM unit_cost WHERE id = ? FOR UPDATE", (row,))
    tx.execute("UPDATE unit_cost SET n = n + 1 WHERE id = ?", (row,), last=True)


def _read(tx: Tx, row: int) -> None:
    tx.one("SELECT n FROM unit_cost WHERE id = ?", (row,))


async def _measure(url: str, units: int, way: str, kind: str) -> tuple[float, float]:
    store.db.KeptConnections = WAYS[way]  # type: ignore[misc]  # the one thing the two ways differ in
    database = PostgresDatabase(url, POOL_SIZE)
    unit = _write if kind == "write" else _read
    run = database.write if kind == "write" else database.read
    try:
        await run(functools.partial(_read, row=0))  # the pool opened, outside the measurement

        async def task(row: int) -> None:
            for _ in range(units // TASKS):
                await run(functools.partial(unit, row=row))

        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(task(row) for row in range(TASKS)))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        return units / wall, 1e6 * cpu / units
    finally:
        await database.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        server = start_postgres(Path(scratch))
        try:
            with psycopg.connect(server.url, autocommit=True) as connection:
                connection.execute("CREATE TABLE unit_cost (id integer PRIMARY KEY, n bigint NOT NULL)")
                connection.execute("INSERT INTO unit_cost SELECT g, 0 FROM generate_series(0, %s) AS g", (TASKS,))
            for kind in ("write", "read"):
                results: dict[str, list[tuple[float, float]]] = {way: [] for way in WAYS}
                for _ in range(args.rounds):
                    for way in WAYS:
                        results[way].append(asyncio.run(_measure(server.url, args.units, way, kind)))
                for way, runs in results.items():
                    rate, cpu = max(r[0] for r in runs), min(r[1] for r in runs)
                    print(f"{kind:5} {way:24} {rate:8,.0f} units/s  {cpu:6.1f} µs CPU per unit")
        finally:
            server.close()


if __name__ == "__main__":
    main()

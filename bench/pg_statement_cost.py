"""What one PostgreSQL round trip costs this process in CPU: through psycopg's ``execute``, and through
libpq directly as the store sends it (``store/pg_wire.py``).

Starts a throw-away PostgreSQL cluster (``bench/servers.py``), opens 20 async connections and has 20 tasks
each run ``SELECT $1`` (a prepared statement with one parameter, its row fetched) on its own connection,
the way 20 concurrent requests would:

    .venv/bin/python -m bench.pg_statement_cost [--statements N] [--rounds R]

Prints, per way, the best of R rounds: statements per second and microseconds of this process's CPU
(user + system) per statement. The server's CPU is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from bench.servers import start_postgres
from store.pg_wire import Wire

TASKS = 20


async def _psycopg_select(connection: psycopg.AsyncConnection[Any], value: int) -> None:
    cursor = await connection.execute("SELECT %s::bigint AS x", (value,), prepare=True)
    await cursor.fetchone()


async def _wire_select(wire: Wire, value: int) -> None:
    await wire.one("SELECT $1::bigint AS x", (value,))


async def _measure(url: str, statements: int, way: str) -> tuple[float, float]:
    connections = [
        await psycopg.AsyncConnection.connect(url, autocommit=True, prepare_threshold=0, row_factory=dict_row)
        for _ in range(TASKS)
    ]
    try:
        runners: list[Callable[[int], Awaitable[None]]] = []
        for connection in connections:
            if way == "psycopg execute":
                runners.append(lambda value, c=connection: _psycopg_select(c, value))
            else:
                wire = Wire(connection)
                runners.append(lambda value, w=wire: _wire_select(w, value))

        async def task(run: Callable[[int], Awaitable[None]]) -> None:
            for value in range(statements // TASKS):
                await run(value)

        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(task(run) for run in runners))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        return statements / wall, 1e6 * cpu / statements
    finally:
        for connection in connections:
            await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--statements", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        server = start_postgres(Path(scratch))
        try:
            for way in ("psycopg execute", "libpq (store/pg_wire.py)"):
                results = [asyncio.run(_measure(server.url, args.statements, way)) for _ in range(args.rounds)]
                rate, cpu = max(results, key=lambda result: result[0])[0], min(result[1] for result in results)
                print(f"{way:28} {rate:8,.0f} statements/s  {cpu:6.1f} µs CPU per statement")
        finally:
            server.close()


if __name__ == "__main__":
    main()

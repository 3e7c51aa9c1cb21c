"""What one primary-key lookup of an account costs, through the raw driver and through SQLAlchemy.

The hot path of the service is such lookups (every request authenticates, most read one output row);
this measures the same lookup of a migrated SQLite database in one process, three ways:

* ``raw sqlite3``: the store's way (``store/db.py``): one ``execute``, the row as a dict;
* ``SQLAlchemy Core``: ``select(accounts).where(id == ?)`` on a connection, rows as mappings;
* ``SQLModel ORM``: ``session.exec(select(AccountRow)…)`` in a new session, as a request would use it.

    .venv/bin/python bench/lookup_cost.py [--lookups N]

Prints microseconds per lookup (the best of five rounds) and each way's ratio to the raw driver.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select
from sqlmodel import Session, col
from sqlmodel import select as select_models

from store import migrate
from store.db import ACCOUNT_COLUMNS
from store.models import AccountRow, table_of

ACCOUNT_ID = "acc_01JBENCH0000000000000000000"
ROUNDS = 5


def _seed(path: Path) -> None:
    migrate(f"sqlite:///{path}")
    with sqlite3.connect(path) as connection:
        connection.execute(
            f"INSERT INTO accounts ({ACCOUNT_COLUMNS}) VALUES (?, ?, NULL, 'free', 5, 0, 0, 262144000, 0)",
            (ACCOUNT_ID, "0" * 64),
        )


def _best_microseconds(lookup: Callable[[], Any], lookups: int) -> float:
    assert lookup() is not None
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(lookups):
            lookup()
        best = min(best, (time.perf_counter() - started) / lookups * 1e6)
    return best


def measure(path: Path, lookups: int) -> dict[str, float]:
    raw = sqlite3.connect(path)
    sql = f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?"

    def raw_lookup() -> dict[str, Any] | None:
        cursor = raw.execute(sql, (ACCOUNT_ID,))
        row = cursor.fetchone()
        return None if row is None else {d[0]: v for d, v in zip(cursor.description, row, strict=True)}

    engine = create_engine(f"sqlite:///{path}")
    accounts = table_of(AccountRow)
    core_statement = select(accounts).where(accounts.c.id == ACCOUNT_ID)
    orm_statement = select_models(AccountRow).where(col(AccountRow.id) == ACCOUNT_ID)
    try:
        with engine.connect() as connection:
            figures = {
                "raw sqlite3": _best_microseconds(raw_lookup, lookups),
                "SQLAlchemy Core": _best_microseconds(
                    lambda: connection.execute(core_statement).mappings().first(), lookups
                ),
            }

        def orm_lookup() -> AccountRow | None:
            with Session(engine) as session:
                return session.exec(orm_statement).first()

        figures["SQLModel ORM"] = _best_microseconds(orm_lookup, lookups)
    finally:
        engine.dispose()
        raw.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--lookups", type=int, default=20_000, help="lookups per round and way")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "lookup.db"
        _seed(path)
        figures = measure(path, arguments.lookups)
    raw = figures["raw sqlite3"]
    for way, microseconds in figures.items():
        print(f"{way:16} {microseconds:8.1f} µs per lookup  {microseconds / raw:5.1f}x")


if __name__ == "__main__":
    main()

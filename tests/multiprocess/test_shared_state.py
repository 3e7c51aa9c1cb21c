"""Several processes as one (SPEC sections 6-8, DESIGN decision 5): two ``outputlayer serve`` processes on
one database and one blob store behave like a single server.

Every test starts two real server processes on different ports over a fresh shared backend, sends
them concurrent requests released together by a barrier, and then looks at the shared state itself:
rows in the database, keys in the bucket, and the verdict of ``outputlayer check``.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest

from bench.servers import S3Server
from store import migrate, open_blob_store, open_database
from tests.conftest import BACKENDS
from tests.multiprocess.cluster import (
    Backend,
    assert_check_passes,
    balance,
    cli_together,
    eventually,
    iso_in,
    register,
    request,
    serving,
    together,
    upload,
)
from tests.multiprocess.conftest import fresh_bucket_url

pytestmark = pytest.mark.slow

RATES_OFF = {"OUTPUTLAYER_RATE_LIMITS": "off"}
CONTENT = b"one artifact, many hands\n" * 4000


def ready_due(backend: Backend) -> int:
    """Ready rows whose expiry has passed (what a sweeper still has to do)."""
    return backend.scalar(
        "SELECT COUNT(*) AS n FROM outputs WHERE status = 'ready' AND expires_at <= ?",
        (int(time.time() * 1000),),
    )


def ready_outputs(backend: Backend, account_id: str) -> dict[str, int]:
    """outputId -> sizeBytes of the account's ready rows."""
    found = backend.rows("SELECT id, size_bytes FROM outputs WHERE account_id = ? AND status = 'ready'", (account_id,))
    return {row["id"]: int(row["size_bytes"]) for row in found}


# --- (a) idempotency --------------------------------------------------------------------------------


def test_ten_identical_uploads_across_two_processes_make_one_output_one_charge_one_blob(shared: Backend) -> None:
    """Same key, same body, 10 at once spread over both processes: one output, one unit charged, one blob."""
    with serving(shared, 2, RATES_OFF) as servers:
        auth, account_id = register(servers[0])
        before = balance(servers[1], auth)
        attempts = [
            functools.partial(upload, servers[n % 2], auth, "same-key", CONTENT, label="race.txt") for n in range(10)
        ]
        responses = together(attempts)

        originals, output_ids = 0, set()
        for response in responses:
            body = response.json()
            assert response.status_code in (201, 503), (response.status_code, body)
            if response.status_code == 503:
                assert body["error"] == "idempotency_in_flight"
                assert response.headers["Retry-After"] == "5"
                assert body["agent_contract"]["retryable"] is True
                continue
            output_ids.add(body["outputId"])
            if response.headers.get("Idempotent-Replayed") != "true":
                originals += 1
        assert originals == 1
        assert len(output_ids) == 1
        (output_id,) = output_ids

        for server in servers:  # once settled, either process replays it
            again = upload(server, auth, "same-key", CONTENT, label="race.txt")
            assert (again.status_code, again.headers.get("Idempotent-Replayed")) == (201, "true")
            assert again.json()["outputId"] == output_id
        after = balance(servers[0], auth)

    assert after["freeRemaining"] == before["freeRemaining"] - 1
    assert after["creditsRemaining"] == before["creditsRemaining"]
    assert after["storageUsedBytes"] == len(CONTENT)
    assert shared.scalar("SELECT COUNT(*) AS n FROM outputs") == 1
    assert shared.blob_keys() == {f"{account_id}/{output_id}"}
    assert shared.partial_files() == []
    assert_check_passes(shared)


# --- (b) rate limits --------------------------------------------------------------------------------

LIMIT = 6


def test_a_rate_limit_holds_across_two_processes_together(shared: Backend) -> None:
    """A limit of N reads per hour: 2N reads at once, alternating between the processes, let exactly N through."""
    with serving(shared, 2, {"OUTPUTLAYER_RATE_READS_PER_HOUR": str(LIMIT)}) as servers:
        auth, _ = register(servers[0])
        reads = [
            functools.partial(request, servers[n % 2], "GET", "/v1/outputs", headers=auth) for n in range(2 * LIMIT)
        ]
        responses = together(reads)
        after = request(servers[1], "GET", "/v1/outputs", headers=auth)

    assert sorted(r.status_code for r in responses) == [200] * LIMIT + [429] * LIMIT
    allowed = [r for r in responses if r.status_code == 200]
    assert sorted(int(r.headers["RateLimit-Remaining"]) for r in allowed) == list(range(LIMIT))
    for refused in [r for r in responses if r.status_code == 429] + [after]:
        assert refused.status_code == 429
        assert refused.json()["error"] == "rate_limited"
        assert refused.json()["agent_contract"]["retryable"] is True
        assert int(refused.headers["Retry-After"]) > 0
        assert refused.headers["RateLimit-Remaining"] == "0"


# --- (c) sweepers -----------------------------------------------------------------------------------

# Short-lived outputs are uploaded with this lifetime and then made due (Backend.make_due), so no upload
# races the wall clock; sweeps run every second, and a loaded machine gets a minute to finish them.
LONG_LIFETIME_SECONDS = 3600
SWEEP_WAIT_SECONDS = 60
SWEEPING = {**RATES_OFF, "OUTPUTLAYER_FREE_UPLOADS": "100", "OUTPUTLAYER_SWEEP_INTERVAL_SECONDS": "1"}


def test_four_sweepers_at_once_give_storage_back_exactly_once(shared: Backend) -> None:
    """Both servers' sweepers (every second) and two `outputlayer sweep` processes race over 30 expired
    outputs: storage ends exactly at the bytes of the live outputs and is never seen lower."""
    with serving(shared, 2, SWEEPING) as servers:
        auth, account_id = register(servers[0])
        kept = [upload(servers[n % 2], auth, f"keep-{n}", b"k" * (1000 + n)) for n in range(4)]
        assert [r.status_code for r in kept] == [201] * 4
        expires_at, _ = iso_in(LONG_LIFETIME_SECONDS)
        short = together(
            [
                functools.partial(upload, servers[n % 2], auth, f"short-{n}", b"s" * (2000 + n), expiresAt=expires_at)
                for n in range(30)
            ]
        )
        assert [r.status_code for r in short] == [201] * 30
        kept_bytes = sum(1000 + n for n in range(4))
        assert shared.storage_used(account_id) == kept_bytes + sum(2000 + n for n in range(30))

        shared.make_due([r.json()["outputId"] for r in short])
        seen: list[int] = []
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                seen.append(shared.storage_used(account_id))

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            sweeps = cli_together(shared, ["sweep"], ["sweep"], env=SWEEPING)
        finally:
            stop.set()
            watcher.join(30)
        assert [s.returncode for s in sweeps] == [0, 0], [s.stderr[-2000:] for s in sweeps]
        eventually(lambda: ready_due(shared) == 0, timeout=SWEEP_WAIT_SECONDS, what="every expired output to be swept")
        kept_ids = {r.json()["outputId"] for r in kept}
        eventually(
            lambda: shared.blob_keys() == {f"{account_id}/{i}" for i in kept_ids},
            timeout=SWEEP_WAIT_SECONDS,
            what="the expired outputs' blobs to be deleted",
        )
        final = shared.storage_used(account_id)

    assert final == kept_bytes
    assert seen and min(seen) >= kept_bytes
    assert set(ready_outputs(shared, account_id)) == kept_ids
    short_ids = tuple(r.json()["outputId"] for r in short)
    statuses = shared.rows(f"SELECT status FROM outputs WHERE id IN ({', '.join('?' * len(short_ids))})", short_ids)
    assert [row["status"] for row in statuses] == ["expired"] * 30
    assert_check_passes(shared)


# --- (d) a mixed load ---------------------------------------------------------------------------------


def test_check_finds_no_drift_after_a_mixed_load_on_two_processes(shared: Backend) -> None:
    """Uploads (some short-lived), double deletes raced across both processes, more uploads, expiries: every
    upload is charged once, storage equals the ready outputs, every blob has its row, `check` exits 0."""
    with serving(shared, 2, SWEEPING) as servers:
        auth, account_id = register(servers[0])
        start = balance(servers[0], auth)["freeRemaining"]
        expires_at, _ = iso_in(LONG_LIFETIME_SECONDS)
        first = together(
            [
                functools.partial(
                    upload,
                    servers[n % 2],
                    auth,
                    f"first-{n}",
                    bytes([65 + n]) * (500 + n),
                    **({"expiresAt": expires_at} if n % 3 == 0 else {}),
                )
                for n in range(18)
            ]
        )
        assert [r.status_code for r in first] == [201] * 18
        long_lived = [r.json()["outputId"] for n, r in enumerate(first) if n % 3 != 0]
        doomed = long_lived[:10]

        def delete(server_index: int, output_id: str) -> httpx2.Response:
            return request(servers[server_index], "DELETE", f"/v1/outputs/{output_id}", headers=auth)

        calls: list[Any] = [functools.partial(delete, side, oid) for oid in doomed for side in (0, 1)]
        calls += [
            functools.partial(upload, servers[n % 2], auth, f"second-{n}", bytes([97 + n]) * (700 + n))
            for n in range(8)
        ]
        results = together(calls)
        deletes, second = results[: 2 * len(doomed)], results[2 * len(doomed) :]
        assert [r.status_code for r in deletes] == [200] * len(deletes)
        assert {r.json()["status"] for r in deletes} == {"deleted"}
        assert [r.status_code for r in second] == [201] * 8
        for pair in zip(deletes[::2], deletes[1::2], strict=True):
            assert pair[0].json()["deletedAt"] == pair[1].json()["deletedAt"], "one delete, one deletedAt"

        shared.make_due([r.json()["outputId"] for n, r in enumerate(first) if n % 3 == 0])
        eventually(
            lambda: ready_due(shared) == 0, timeout=SWEEP_WAIT_SECONDS, what="the servers' sweepers to expire the rest"
        )
        final = balance(servers[1], auth)

    expected = {r.json()["outputId"]: int(r.json()["sizeBytes"]) for r in first + second}
    for output_id in doomed + [r.json()["outputId"] for n, r in enumerate(first) if n % 3 == 0]:
        del expected[output_id]
    assert final["freeRemaining"] == start - 26, "26 uploads, each charged once; deletes refund nothing"
    assert ready_outputs(shared, account_id) == expected
    assert final["storageUsedBytes"] == shared.storage_used(account_id) == sum(expected.values())
    eventually(
        lambda: shared.blob_keys() == {f"{account_id}/{i}" for i in expected},
        timeout=SWEEP_WAIT_SECONDS,
        what="blobs of deleted and expired outputs to be removed",
    )
    assert shared.partial_files() == []
    assert_check_passes(shared)


# --- start-up ---------------------------------------------------------------------------------------


def test_processes_starting_together_on_a_missing_bucket_all_start(request: pytest.FixtureRequest) -> None:
    """Each process creates the bucket when it is missing; when several start at once, the ones that lose
    the race to create it (S3 answers BucketAlreadyOwnedByYou) must start anyway."""
    if "postgres" not in BACKENDS:
        pytest.skip("OUTPUTLAYER_TEST_BACKENDS leaves out postgres (and S3)")
    s3_server: S3Server = request.getfixturevalue("s3_server")
    for _ in range(3):
        url = fresh_bucket_url(s3_server)
        outcomes = together([functools.partial(_open_and_ping, url) for _ in range(6)])
        assert outcomes == ["ok"] * 6


def _open_and_ping(url: str) -> str:
    try:
        store = open_blob_store(url)
    except Exception as exc:  # the outcome is what the test compares
        return f"{type(exc).__name__}: {exc} ({exc.__cause__!r})"
    store.close()
    return "ok"


def test_opening_a_new_sqlite_database_while_another_process_migrates_it_waits_for_the_lock(
    tmp_path: Path,
) -> None:
    """Two processes starting on a new SQLite file: one migrates (holding the write lock) while the other
    opens its connections, whose switch to WAL must wait for the lock like any write, not fail at once
    with "database is locked" (SQLite skips the busy handler there)."""
    if "sqlite" not in BACKENDS:
        pytest.skip("OUTPUTLAYER_TEST_BACKENDS leaves out sqlite")
    path = tmp_path / "new.db"
    migrate(f"sqlite:///{path}")
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        assert other.execute("PRAGMA journal_mode").fetchone() == ("delete",), "a new file is not in WAL yet"
        other.execute("BEGIN IMMEDIATE")
        other.execute("SELECT COUNT(*) FROM accounts").fetchone()
        release = threading.Timer(0.5, lambda: other.execute("COMMIT"))
        release.start()
        started = time.monotonic()
        database = open_database(f"sqlite:///{path}")
        waited = time.monotonic() - started
        release.join()
    finally:
        other.close()
    try:
        assert database.read_sync(lambda tx: tx.one("PRAGMA journal_mode")) == {"journal_mode": "wal"}
    finally:
        database.close()
    assert waited >= 0.3, "the open overlapped the other process's write lock"

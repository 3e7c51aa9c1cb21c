"""Faults against real backends: S3 down, PostgreSQL down, a server killed in the middle of an upload.

The backends here are started per test (they are stopped and started again on the same port), and the
server under test is a real ``outputlayer serve`` process. Every outage must give a quick, retryable
answer (never a hang, never a 500), charge nothing, and heal by itself when the backend returns.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from bench.servers import (
    DATABASE_URL_ENV,
    S3_URL_ENV,
    RunningServer,
    S3Server,
    create_database,
    start_postgres,
    start_s3,
)
from tests.conftest import BACKENDS
from tests.multiprocess.cluster import (
    Backend,
    assert_check_passes,
    balance,
    cli,
    eventually,
    register,
    serving,
    upload,
)
from tests.multiprocess.cluster import request as http
from tests.multiprocess.conftest import fresh_bucket_url

pytestmark = pytest.mark.slow

RATES_OFF = {"OUTPUTLAYER_RATE_LIMITS": "off"}
# An outage must be answered within this: a store that stopped answering costs one 10 s read
# timeout (it is not retried); a refused connection is retried once, at once. The margin over 10 s
# is for a loaded machine; a store that retried or waited for minutes would still exceed it.
BOUND_SECONDS = 25.0
# While PostgreSQL is known to be down a request waits 1 s for a connection, not the pool's 10 s:
# 8 s leaves a loaded machine room and still fails a request that waited out the pool.
DB_BOUND_SECONDS = 8.0
# Deadlines for steps that start processes, restart PostgreSQL or stream megabytes (load average 10 on 2 cores).
SLOW_STEP_SECONDS = 120
BIG = bytes(range(256)) * (6 * 1024 * 1024 // 256)  # above one 5 MiB S3 part: the streamed path


def requires_postgres() -> None:
    if "postgres" not in BACKENDS:
        pytest.skip("OUTPUTLAYER_TEST_BACKENDS leaves out postgres")


@pytest.fixture
def own_s3(tmp_path: Path) -> Iterator[S3Server]:
    requires_postgres()
    if os.environ.get(S3_URL_ENV):
        pytest.skip("an external S3 server cannot be stopped by the tests")
    server = start_s3(tmp_path / "own-s3")
    yield server
    server.close()


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[RunningServer]:
    requires_postgres()
    if os.environ.get(DATABASE_URL_ENV):
        pytest.skip("an external PostgreSQL server cannot be stopped by the tests")
    server = start_postgres(tmp_path / "own-postgres")
    yield server
    server.close()


def timed(call: Any, *args: Any, **kwargs: Any) -> tuple[httpx2.Response, float]:
    started = time.monotonic()
    response = call(*args, **kwargs)
    return response, time.monotonic() - started


def assert_retryable_outage(
    response: httpx2.Response, elapsed: float, codes: set[tuple[int, str]], bound: float = BOUND_SECONDS
) -> None:
    body = response.json()
    assert (response.status_code, body.get("error")) in codes, (response.status_code, body)
    assert elapsed < bound, f"answered after {elapsed:.1f} s"
    assert body["agent_contract"]["retryable"] is True
    assert body["request_id"].startswith("req_")
    if response.status_code == 503:
        assert int(response.headers["Retry-After"]) > 0


def big_upload(server: Any, auth: dict[str, str], key: str) -> httpx2.Response:
    return http(
        server,
        "POST",
        "/v1/outputs",
        headers={**auth, "Idempotency-Key": key},
        files={"content": ("big.bin", BIG, "application/octet-stream")},
        data={"mimeType": "application/octet-stream"},
    )


# --- S3 down -----------------------------------------------------------------------------------------

UPLOAD_OUTAGE = {(422, "upload_failed"), (503, "service_unavailable")}
SMALL = b"written while the bucket was away\n" * 100
FROZEN = b"written while the bucket did not answer\n" * 100


def test_uploads_while_s3_is_down_fail_fast_uncharged_and_the_same_key_succeeds_when_it_is_back(
    request: pytest.FixtureRequest, tmp_path: Path, own_s3: S3Server
) -> None:
    """S3 frozen, then crashed: small and streamed uploads answer a retryable 422/503 in bounded time and
    charge nothing, reads answer 503; when S3 is back the same keys upload afresh and every ready
    output has its blob."""
    postgres: RunningServer = request.getfixturevalue("postgres_server")
    template: str = request.getfixturevalue("postgres_template")
    backend = Backend(
        "postgres",
        tmp_path,
        {
            "OUTPUTLAYER_DATA_DIR": str(tmp_path),
            "OUTPUTLAYER_DATABASE_URL": create_database(postgres.url, template=template),
            "OUTPUTLAYER_BLOB_URL": own_s3.url,
        },
    )
    try:
        with serving(backend, 1, RATES_OFF) as (server,):
            auth, account_id = register(server)
            stored = upload(server, auth, "before", b"stored before the outage")
            assert stored.status_code == 201
            before = balance(server, auth)

            # Frozen (a partition or a wedged store): connections open, nothing answers. Then crashed.
            assert own_s3._proc is not None
            os.kill(own_s3._proc.pid, signal.SIGSTOP)
            frozen, frozen_took = timed(upload, server, auth, "during-frozen", FROZEN)
            own_s3.stop(hard=True)
            assert_retryable_outage(frozen, frozen_took, UPLOAD_OUTAGE)
            small, small_took = timed(upload, server, auth, "during-small", SMALL)
            large, large_took = timed(big_upload, server, auth, "during-large")
            read, read_took = timed(
                http, server, "GET", f"/v1/outputs/{stored.json()['outputId']}/content", headers=auth
            )
            assert_retryable_outage(small, small_took, UPLOAD_OUTAGE)
            assert_retryable_outage(large, large_took, UPLOAD_OUTAGE)
            assert_retryable_outage(read, read_took, {(503, "service_unavailable")})
            during = balance(server, auth)
            for field in ("freeRemaining", "creditsRemaining", "storageUsedBytes"):
                assert during[field] == before[field], field

            own_s3.start()
            retried_small = upload(server, auth, "during-small", SMALL)
            retried_large = big_upload(server, auth, "during-large")
            retried_frozen = upload(server, auth, "during-frozen", FROZEN)
            for retried, size in (
                (retried_small, len(SMALL)),
                (retried_large, len(BIG)),
                (retried_frozen, len(FROZEN)),
            ):
                assert retried.status_code == 201, retried.text
                assert retried.headers.get("Idempotent-Replayed") is None
                assert retried.json()["status"] == "ready"
                assert retried.json()["sizeBytes"] == size
            after = balance(server, auth)
            assert after["freeRemaining"] == before["freeRemaining"] - 3
            assert after["storageUsedBytes"] == before["storageUsedBytes"] + len(SMALL) + len(BIG) + len(FROZEN)
            readback = http(server, "GET", f"/v1/outputs/{retried_small.json()['outputId']}/content", headers=auth)
            assert (readback.status_code, readback.content) == (200, SMALL)

        ready = backend.rows("SELECT id FROM outputs WHERE account_id = ? AND status = 'ready'", (account_id,))
        assert {f"{account_id}/{row['id']}" for row in ready} == backend.blob_keys()
        assert_check_passes(backend)
    finally:
        backend.close()


# --- PostgreSQL down ---------------------------------------------------------------------------------


def test_requests_while_postgres_is_down_answer_a_retryable_503_and_the_server_recovers_by_itself(
    request: pytest.FixtureRequest, tmp_path: Path, own_postgres: RunningServer
) -> None:
    """PostgreSQL stopped: reads, listings, downloads, deletes, registration, uploads and /ready all answer a
    retryable 503 with an agent_contract within seconds (/health stays 200); when PostgreSQL is back the
    same server answers again without a restart and the interrupted upload's key works."""
    s3: S3Server = request.getfixturevalue("s3_server")
    backend = Backend(
        "postgres",
        tmp_path,
        {
            "OUTPUTLAYER_DATA_DIR": str(tmp_path),
            "OUTPUTLAYER_DATABASE_URL": own_postgres.url,
            "OUTPUTLAYER_BLOB_URL": fresh_bucket_url(s3),
        },
    )
    try:
        with serving(backend, 1, RATES_OFF) as (server,):
            auth, _ = register(server)
            stored = upload(server, auth, "before", b"stored before the outage")
            assert stored.status_code == 201
            output_path = f"/v1/outputs/{stored.json()['outputId']}"

            own_postgres.stop()
            probes: list[tuple[str, str, dict[str, Any]]] = [
                ("GET", output_path, {"headers": auth}),
                ("GET", "/v1/outputs", {"headers": auth}),
                ("GET", f"{output_path}/content", {"headers": auth}),
                ("DELETE", output_path, {"headers": auth}),
                ("POST", "/v1/keys/register", {"json": {}}),
                ("GET", "/ready", {}),
            ]
            for method, path, kwargs in probes:
                response, took = timed(http, server, method, path, **kwargs)
                assert_retryable_outage(response, took, {(503, "service_unavailable")}, DB_BOUND_SECONDS)
            during, took = timed(upload, server, auth, "during", b"sent while the database was away")
            assert_retryable_outage(during, took, {(503, "service_unavailable")}, DB_BOUND_SECONDS)
            assert http(server, "GET", "/health").status_code == 200, "liveness does not depend on the database"

            own_postgres.start()
            eventually(
                lambda: http(server, "GET", output_path, headers=auth).status_code == 200,
                timeout=SLOW_STEP_SECONDS,
                what="the server to reach PostgreSQL again",
                interval=0.25,
            )
            assert http(server, "GET", "/ready").status_code == 200
            retried = upload(server, auth, "during", b"sent while the database was away")
            assert retried.status_code == 201, retried.text
            assert retried.headers.get("Idempotent-Replayed") is None
            assert balance(server, auth)["freeRemaining"] == 3
        assert_check_passes(backend)
    finally:
        backend.close()


# --- a server killed mid-upload ----------------------------------------------------------------------

BOUNDARY = "killedmidway"
CHUNK = 256 * 1024
CAP = 12 * 1024 * 1024  # below the 25 MB limit: the body never ends while the server lives
# Slots go stale after 2 s without progress; the servers' own sweepers are held off (only the test's
# `outputlayer sweep` reclaims), so a live upload on a loaded machine is never reclaimed under it.
STALE = {**RATES_OFF, "OUTPUTLAYER_STALE_UPLOAD_SECONDS": "2", "OUTPUTLAYER_SWEEP_INTERVAL_SECONDS": "3600"}


def test_a_server_killed_mid_upload_leaves_nothing_check_reports_once_swept(shared: Backend) -> None:
    """SIGKILL while a multi-MB chunked upload streams in: no charge, no row; once the slot is stale a sweep
    frees the key and the partial blob, `check` exits 0, and the same key then uploads afresh elsewhere."""
    with serving(shared, 2, STALE) as (victim, survivor):
        auth, account_id = register(survivor)
        before = balance(survivor, auth)
        sent = [0]
        release = threading.Event()
        outcome: list[object] = []

        def body() -> Iterator[bytes]:
            yield (
                f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="mimeType"\r\n\r\napplication/octet-stream\r\n'
                f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="content"; filename="big.bin"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            block = bytes(range(256)) * (CHUNK // 256)
            while sent[0] < CAP and not release.is_set():
                yield block
                sent[0] += CHUNK
                release.wait(0.02)  # a slow client: about 12 MB/s
            release.wait(60)

        def post() -> None:
            headers = {**auth, "Idempotency-Key": "killed", "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
            try:
                outcome.append(http(victim, "POST", "/v1/outputs", headers=headers, content=body()))
            except httpx2.HTTPError as exc:
                outcome.append(exc)

        sender = threading.Thread(target=post)
        sender.start()

        def receiving() -> dict[str, Any] | None:
            """The upload's slot, once the server has taken several MB and refreshed the slot since."""
            if sent[0] < 8 * 1024 * 1024:
                return None
            found = shared.rows(
                "SELECT output_id FROM idempotency_keys "
                "WHERE key = 'killed' AND state = 'in_flight' AND heartbeat_at > created_at"
            )
            return found[0] if found else None

        slot = eventually(receiving, timeout=SLOW_STEP_SECONDS, what="the server to be several MB into the upload")
        victim.stop(signal.SIGKILL)
        release.set()
        sender.join(SLOW_STEP_SECONDS)
        assert not sender.is_alive()
        assert len(outcome) == 1 and not isinstance(outcome[0], httpx2.Response), outcome

        killed_key = f"{account_id}/{slot['output_id']}"
        assert shared.scalar("SELECT COUNT(*) AS n FROM idempotency_keys WHERE state = 'in_flight'") == 1
        assert shared.scalar("SELECT COUNT(*) AS n FROM outputs") == 0
        if shared.name == "sqlite":
            assert len(shared.partial_files()) == 1, "the killed upload left its partial file for the sweeper"

        def swept() -> bool:
            done = cli(shared, "sweep", env=STALE)
            assert done.returncode == 0, done.stderr[-2000:]
            return shared.scalar("SELECT COUNT(*) AS n FROM idempotency_keys WHERE state = 'in_flight'") == 0

        eventually(swept, timeout=SLOW_STEP_SECONDS, what="a sweep to reclaim the dead upload's slot", interval=0.5)
        assert killed_key not in shared.blob_keys()
        assert shared.partial_files() == []
        assert_check_passes(shared)

        again = upload(survivor, auth, "killed", b"the same key, a fresh attempt")
        assert again.status_code == 201, again.text
        assert again.headers.get("Idempotent-Replayed") is None
        after = balance(survivor, auth)
    assert after["freeRemaining"] == before["freeRemaining"] - 1, "only the completed upload was charged"
    assert shared.blob_keys() == {f"{account_id}/{again.json()['outputId']}"}
    assert_check_passes(shared)

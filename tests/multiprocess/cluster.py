"""Several real ``outputlayer`` processes on one database and one blob store, and ways to look at both.

A :class:`Backend` is a shared pair (PostgreSQL + S3, or one SQLite file + one blob directory) with
the ``OUTPUTLAYER_*`` environment every process of a test gets. :func:`serving` starts ``outputlayer
serve`` processes on it (in parallel, each on its own free port); :func:`cli` runs ``outputlayer
sweep`` / ``check`` against it. The test looks at the state itself through the store's own database
and blob-store doors (:meth:`Backend.rows`, :meth:`Backend.blob_keys`), never through a server.
"""

from __future__ import annotations

import base64
import contextlib
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx2

from store import BlobStore, Database, Settings, open_blob_store, open_database
from tests.serving import OUTPUTLAYER, Server, child_env, running_servers

T = TypeVar("T")
CLI_TIMEOUT_SECONDS = 120.0
HTTP_TIMEOUT_SECONDS = 60.0


@dataclass
class Backend:
    """One database and one blob store shared by every process of a test."""

    name: str
    data_dir: Path
    env: dict[str, str]
    _db: Database | None = field(default=None, repr=False)
    _blobs: BlobStore | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        return Settings.from_env(self.env)

    def process_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of a child process: ours without OUTPUTLAYER_*, then the backend's, then ``extra``."""
        return child_env(self.env | dict(extra or {}))

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows straight from the shared database (``?`` placeholders on both dialects)."""
        if self._db is None:
            self._db = open_database(self.settings.database_url, 2)
        return self._db.read_sync(lambda tx: tx.all(sql, params))

    def make_due(self, output_ids: Sequence[str]) -> None:
        """Move these outputs' expiry to a moment ago, as if their lifetime had passed.

        Tests upload with a long lifetime and then make it pass, instead of uploading with a lifetime of
        a few seconds and racing the wall clock: that race is lost on a slow machine (an upload that
        takes longer than the lifetime is refused as already expired).
        """
        if self._db is None:
            self._db = open_database(self.settings.database_url, 2)
        marks = ", ".join("?" * len(output_ids))
        moment = int(time.time() * 1000) - 1
        self._db.write_sync(
            lambda tx: tx.execute(f"UPDATE outputs SET expires_at = ? WHERE id IN ({marks})", (moment, *output_ids))
        )

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> int:
        found = self.rows(sql, params)
        assert len(found) == 1
        return int(next(iter(found[0].values())))

    def blob_keys(self) -> set[str]:
        """Every committed blob in the shared store."""
        if self._blobs is None:
            self._blobs = open_blob_store(self.settings.blob_url)
        return set(self._blobs.keys())

    def partial_files(self) -> list[Path]:
        """Partial (uncommitted) blob files of the file backend; always empty for S3."""
        partial = self.data_dir / "blobs" / ".partial"
        return sorted(p for p in partial.iterdir() if p.is_file()) if partial.is_dir() else []

    def storage_used(self, account_id: str) -> int:
        return self.scalar("SELECT storage_used_bytes FROM accounts WHERE id = ?", (account_id,))

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
        if self._blobs is not None:
            self._blobs.close()


@contextlib.contextmanager
def serving(backend: Backend, count: int = 2, env: Mapping[str, str] | None = None) -> Iterator[list[Server]]:
    """``count`` ``outputlayer serve`` processes on ``backend``, started together; all stopped after."""
    with running_servers(backend.data_dir, backend.env | dict(env or {}), count) as servers:
        yield servers


def cli(backend: Backend, *args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``outputlayer ARGS`` on the shared backend; bounded by :data:`CLI_TIMEOUT_SECONDS`."""
    return subprocess.run(
        [OUTPUTLAYER, *args],
        env=backend.process_env(env),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
        check=False,
    )


def cli_together(
    backend: Backend, *commands: Sequence[str], env: Mapping[str, str] | None = None
) -> list[subprocess.CompletedProcess[str]]:
    """Several ``outputlayer`` commands started at once as separate processes; waits for all of them."""
    processes = [
        subprocess.Popen(
            [OUTPUTLAYER, *command],
            env=backend.process_env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in commands
    ]
    done = []
    for process, command in zip(processes, commands, strict=True):
        out, err = process.communicate(timeout=CLI_TIMEOUT_SECONDS)
        done.append(subprocess.CompletedProcess([OUTPUTLAYER, *command], process.returncode, out, err))
    return done


def assert_check_passes(backend: Backend) -> None:
    checked = cli(backend, "check")
    assert checked.returncode == 0, checked.stderr[-3000:]


def together(calls: Sequence[Callable[[], T]], timeout: float = 60.0) -> list[T]:
    """Run every call on its own thread, released at once by a barrier; results in the order given."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], T]) -> T:
        barrier.wait(timeout)
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(run, call) for call in calls]
        return [future.result(timeout) for future in futures]


def eventually(probe: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll ``probe`` until it returns something other than None/False, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


# --- HTTP -------------------------------------------------------------------------------------------


def request(server: Server, method: str, path: str, **kwargs: Any) -> httpx2.Response:
    """One request on a fresh connection (safe from any thread)."""
    with httpx2.Client(base_url=server.base_url, timeout=HTTP_TIMEOUT_SECONDS) as http:
        return http.request(method, path, **kwargs)


def register(server: Server) -> tuple[dict[str, str], str]:
    """A new account: (Authorization header, account id)."""
    response = request(server, "POST", "/v1/keys/register", json={})
    assert response.status_code == 201, response.text
    body = response.json()
    return {"Authorization": f"Bearer {body['apiKey']}"}, body["accountId"]


def upload(server: Server, auth: Mapping[str, str], key: str, content: bytes, **fields: Any) -> httpx2.Response:
    """A JSON upload (``mimeType`` text/plain unless given)."""
    body = {"mimeType": "text/plain", "content": base64.b64encode(content).decode(), **fields}
    return request(server, "POST", "/v1/outputs", json=body, headers={**auth, "Idempotency-Key": key})


def balance(server: Server, auth: Mapping[str, str]) -> dict[str, Any]:
    response = request(server, "GET", "/v1/credits/balance", headers=dict(auth))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def iso_in(seconds: float) -> tuple[str, float]:
    """An ``expiresAt`` ``seconds`` from now on the wall clock, and that instant as epoch seconds."""
    at = time.time() + seconds
    moment = datetime.fromtimestamp(at, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z", at

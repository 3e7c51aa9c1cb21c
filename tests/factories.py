"""Small plain helpers shared by the tests: accounts, uploads, the state behind them, request bodies
and the actions an answer recommends."""

from __future__ import annotations

import base64
import itertools
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import httpx2
import pytest
from anyio.abc import TaskStatus

from store import Account, ArtifactService, Content, StoreError, UploadResult
from store.blobs import BlobStore
from store.blobs.files import SPILL_BYTES, FileBlobStore
from store.blobs.s3 import S3BlobStore
from store.blobs.s3_writer import PART_BYTES
from store.clock import iso_ms

T = TypeVar("T")
RACE_TIMEOUT_SECONDS = 60
# The MCP tools, in the order the server lists them.
TOOL_NAMES = ("save_artifact", "get_artifact", "share", "create_upload_link", "list_artifacts", "delete_artifact")

_ips = itertools.count(1)


def overrides(**values: Any) -> pytest.MarkDecorator:
    """Run a test with these settings: a parameter that replaces the ``settings_overrides`` fixture."""
    label = ",".join(f"{name}={value}" for name, value in values.items())
    return pytest.mark.parametrize("settings_overrides", [pytest.param(values, id=label)])


def next_ip() -> str:
    """A client IP no other registration in this process used (registration is limited per IP)."""
    n = next(_ips)
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


async def register(service: ArtifactService, ip: str | None = None) -> Account:
    """A fresh account, as ``POST /v1/keys/register`` would create it."""
    body, _ = await service.register(client=ip or next_ip())
    return await service.account(body["accountId"])


async def upload(
    service: ArtifactService,
    account: Account,
    key: str,
    content: bytes = b"hello, artifact",
    *,
    size: int | None = None,
    **fields: Any,
) -> UploadResult:
    """One direct upload (as MCP does it): ``mimeType`` defaults to text/plain; a field given as None is left out."""
    fields.setdefault("mimeType", "text/plain")
    session = await service.begin_upload(account, key, size=size)
    async with session:
        session.set_fields({name: value for name, value in fields.items() if value is not None})
        await session.write(content)
        return await session.finish()


async def upload_error(
    service: ArtifactService, account: Account, key: str, content: bytes = b"hello, artifact", **fields: Any
) -> StoreError:
    """The StoreError an upload ends with (fails the test when it succeeds)."""
    try:
        await upload(service, account, key, content, **fields)
    except StoreError as exc:
        return exc
    raise AssertionError(f"upload with key {key!r} succeeded; an error was expected")


def future_iso(service: ArtifactService, seconds: float) -> str:
    """An ``expiresAt`` value ``seconds`` from the service clock's now."""
    return iso_ms(service.clock.now_ms() + int(seconds * 1000))


def rows(service: ArtifactService, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    return service.db.read_sync(lambda tx: tx.all(sql, params))


def count(service: ArtifactService, table: str, where: str = "1 = 1", params: tuple[Any, ...] = ()) -> int:
    found = service.db.read_sync(lambda tx: tx.one(f"SELECT COUNT(*) AS n FROM {table} WHERE {where}", params))
    assert found is not None
    return int(found["n"])


def blob_key(account_id: str, output_id: str) -> str:
    """The key the store files an output's bytes under."""
    return f"{account_id}/{output_id}"


def _blob_store(source: ArtifactService | BlobStore) -> BlobStore:
    return source.blobs if isinstance(source, ArtifactService) else source


def blob_keys(source: ArtifactService | BlobStore) -> list[str]:
    """Every committed blob, as ``<account>/<output>`` keys, sorted (whatever the backend)."""
    return sorted(_blob_store(source).keys())


async def read_blob(service: ArtifactService, key: str) -> bytes:
    """All the bytes committed under ``key``."""
    return b"".join([chunk async for chunk in service.blobs.read(key)])


async def plant_blob(service: ArtifactService, key: str, data: bytes) -> None:
    """Commit a blob straight into the blob store, behind the service's back (an orphan, a stray)."""
    writer = await service.blobs.writer(key, "application/octet-stream")
    await writer.write(data)
    await writer.commit()


def partial_keys(source: ArtifactService | BlobStore) -> list[str]:
    """Keys with upload state left behind but not committed, sorted.

    Files: the partial files under ``.partial``. S3: multipart uploads started and neither completed nor
    aborted (invisible to readers, but they hold storage until someone aborts them). A small upload has
    no such state on S3 (it is buffered and sent in one PUT), so there the answer is often trivially empty.
    """
    blobs = _blob_store(source)
    if isinstance(blobs, FileBlobStore):
        return sorted(blobs.partial_keys())
    if isinstance(blobs, S3BlobStore):
        listing = blobs.client._list_multipart_uploads(blobs.bucket)
        assert not listing.is_truncated, "a test never leaves 1000 uploads open"
        return sorted(str(upload.object_name) for upload in listing.uploads)
    raise TypeError(f"unknown blob store {type(blobs).__name__}")


def partial_write_bytes(service: ArtifactService) -> int:
    """Content bytes after which an unfinished upload has left state in the blob store itself.

    Files spill to the partial file from ``SPILL_BYTES``; S3 starts a multipart upload once the
    buffer exceeds one part. Below this the bytes are only in the writer's memory.
    """
    if isinstance(service.blobs, S3BlobStore):
        return PART_BYTES + 1
    return SPILL_BYTES


async def wait_for_partials(service: ArtifactService, expected: int) -> list[str]:
    """``partial_keys`` once it has ``expected`` entries."""
    for _ in range(RACE_TIMEOUT_SECONDS * 50):
        found = partial_keys(service)
        if len(found) == expected:
            return found
        await anyio.sleep(0.02)
    raise AssertionError(f"expected {expected} partial writes, found {partial_keys(service)}")


def break_blob_commits(monkeypatch: Any) -> None:
    """Make every blob commit fail like a storage outage, after the bytes reached the blob store's writer.

    Files: the commit fails like a full disk once the bytes are in the partial file. S3: the one PUT of a
    small blob fails like a dropped connection; a streamed (multipart) one fails at completion, so ``commit``
    fails and the writer's abort ends the multipart upload.
    """
    from minio import Minio

    from store.blobs.files import FileBlobWriter
    from store.blobs.s3_writer import S3BlobWriter

    def failing_file_commit(self: FileBlobWriter, data: bytes) -> None:
        self._append(data)
        raise OSError(28, "No space left on device")

    def failing_put(self: S3BlobWriter, data: bytes) -> None:
        raise ConnectionResetError(104, "Connection reset by peer")

    def failing_completion(self: Minio, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionResetError(104, "Connection reset by peer")

    monkeypatch.setattr(FileBlobWriter, "_commit_sync", failing_file_commit)
    monkeypatch.setattr(S3BlobWriter, "_put_small", failing_put)
    monkeypatch.setattr(Minio, "_complete_multipart_upload", failing_completion)


async def failed_output_id(service: ArtifactService, account: Account, key: str, monkeypatch: Any) -> str:
    """Upload with blob commits broken (then mended); returns the id of the ``failed`` output left behind."""
    with monkeypatch.context() as patch:
        break_blob_commits(patch)
        error = await upload_error(service, account, key)
    assert error.code == "upload_failed", error.message
    page = await service.list_outputs(account, status="failed")
    assert len(page["outputs"]) >= 1
    return str(page["outputs"][0]["outputId"])


async def race(contenders: list[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run the contenders together: each is started and parked on one gate, then all are let go at once.

    Results come back in completion order; the whole race is bounded by ``RACE_TIMEOUT_SECONDS``.
    """
    results: list[T] = []
    gate = anyio.Event()

    async def run(contender: Callable[[], Awaitable[T]], *, task_status: TaskStatus[None]) -> None:
        task_status.started()
        await gate.wait()
        results.append(await contender())

    with anyio.fail_after(RACE_TIMEOUT_SECONDS):
        async with anyio.create_task_group() as tasks:
            for contender in contenders:
                await tasks.start(run, contender)
            gate.set()
    assert len(results) == len(contenders)
    return results


async def read_content(service: ArtifactService, content: Content) -> bytes:
    """All the bytes of an opened output."""
    body = await service.read_content(content)
    if isinstance(body, bytes):
        return body
    return b"".join([chunk async for chunk in body])


# --- injected faults -------------------------------------------------------------------------


class Fault:
    """Which point fails next (None: none); each fault fires once."""

    def __init__(self) -> None:
        self.point: str | None = None

    def fire(self, point: str) -> None:
        if self.point == point:
            self.point = None
            raise OSError(5, f"injected {point} failure")


class FaultyWriter:
    def __init__(self, inner: Any, fault: Fault) -> None:
        self._inner = inner
        self._fault = fault

    async def write(self, chunk: bytes) -> None:
        await self._inner.write(chunk)
        self._fault.fire("write")

    async def commit(self) -> None:
        self._fault.fire("finalize")
        await self._inner.commit()

    async def abort(self) -> None:
        await self._inner.abort()


class FaultyBlobs:
    """The real blob store, whose writes fail at the point ``fault`` names (``open``, ``write``, ``finalize``)."""

    def __init__(self, inner: BlobStore, fault: Fault) -> None:
        self._inner = inner
        self._fault = fault

    async def writer(self, key: str, content_type: str) -> FaultyWriter:
        self._fault.fire("open")
        return FaultyWriter(await self._inner.writer(key, content_type), self._fault)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


# --- request bodies and answers (REST and MCP tests) -----------------------------------------


def upload_document(data: bytes = b"hello", *, mime: str = "text/plain", **fields: Any) -> dict[str, Any]:
    """A JSON upload body: ``data`` as base64 ``content`` with ``mimeType`` and any other fields."""
    return {"mimeType": mime, "content": base64.b64encode(data).decode(), **fields}


async def post_upload(
    client: httpx2.AsyncClient,
    auth: dict[str, str],
    data: bytes = b"hello",
    *,
    key: str | None = None,
    mime: str = "text/plain",
    **fields: Any,
) -> httpx2.Response:
    """``POST /v1/outputs`` of a JSON upload, with a fresh Idempotency-Key unless ``key`` is given."""
    headers = {**auth, "Idempotency-Key": key or uuid.uuid4().hex}
    return await client.post("/v1/outputs", json=upload_document(data, mime=mime, **fields), headers=headers)


async def uploaded(
    client: httpx2.AsyncClient, auth: dict[str, str], data: bytes = b"hello", **options: Any
) -> dict[str, Any]:
    """The output a REST upload created (fails the test unless it answered 201)."""
    response = await post_upload(client, auth, data, **options)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def registered_auth(client: httpx2.AsyncClient) -> dict[str, str]:
    """The Authorization header of a fresh account registered over REST."""
    response = await client.post("/v1/keys/register", json={})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['apiKey']}"}


async def balance(client: httpx2.AsyncClient, auth: dict[str, str]) -> dict[str, Any]:
    """``GET /v1/credits/balance`` (fails the test unless it answered 200)."""
    response = await client.get("/v1/credits/balance", headers=auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def multipart(
    parts: list[tuple[str, bytes, str | None]],
    boundary: str = "olb0undary",
    *,
    file_type: str | None = "application/octet-stream",
) -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body with the parts in exactly the given order (name, value, filename);
    a part with a filename carries ``file_type`` as its Content-Type (none when ``None``)."""
    out = bytearray()
    for name, value, filename in parts:
        out += f"--{boundary}\r\n".encode()
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"Content-Disposition: {disposition}\r\n".encode()
        if filename and file_type:
            out += f"Content-Type: {file_type}\r\n".encode()
        out += b"\r\n" + value + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def action_codes(body: dict[str, Any]) -> list[str]:
    """The codes of an answer's next actions, recommended first."""
    return [a["action"] for a in body["agent_contract"]["next_actions"]]


def first_action(body: dict[str, Any]) -> str:
    """The code of an answer's recommended action."""
    return action_codes(body)[0]

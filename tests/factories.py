"""Small plain helpers for store-level tests: accounts, uploads and looking at the state behind them."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest
from anyio.abc import TaskStatus

from store import Account, ArtifactService, Content, Settings, StoreError, UploadResult
from store.clock import iso_ms

T = TypeVar("T")
RACE_TIMEOUT_SECONDS = 30

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
    body, _ = await service.register({}, ip or next_ip())
    return await service.account(body["accountId"])


async def upload(
    service: ArtifactService,
    account: Account,
    key: str,
    content: bytes = b"hello, artifact",
    *,
    content_length: int | None = None,
    **fields: Any,
) -> UploadResult:
    """One direct upload (as MCP does it): ``mimeType`` defaults to text/plain; a field given as None is left out."""
    fields.setdefault("mimeType", "text/plain")
    session = await service.begin_upload(account, key, content_length=content_length, wire="direct")
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


def blob_root(settings: Settings) -> Path:
    return settings.data_dir / "blobs"


def blob_files(settings: Settings) -> list[Path]:
    """Committed blob files (everything under the blob root except the ``.partial`` directory)."""
    root = blob_root(settings)
    if not root.exists():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and ".partial" not in p.relative_to(root).parts)


def partial_files(settings: Settings) -> list[Path]:
    partial = blob_root(settings) / ".partial"
    if not partial.exists():
        return []
    return sorted(p for p in partial.rglob("*") if p.is_file())


def blob_path(settings: Settings, account_id: str, output_id: str) -> Path:
    return blob_root(settings) / account_id / output_id


def break_blob_commits(monkeypatch: Any) -> None:
    """Make every file-blob commit fail like a full disk, after the bytes reached the partial file."""
    from store.blobs.files import FileBlobWriter

    def failing_commit(self: FileBlobWriter, data: bytes) -> None:
        self._append(data)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(FileBlobWriter, "_commit_sync", failing_commit)


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

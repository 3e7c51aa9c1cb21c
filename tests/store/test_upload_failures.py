"""Every failure point of an upload (SPEC section 6): blob open, blob write, blob finalize and the row
commit each release the idempotency slot, charge nothing and leave no blob behind, on both backends.

The faults are real exceptions raised by thin wrappers around the real blob store and database (what
a full disk, a dropped S3 connection or a lost database answer raise in production), not patched internals.
After the fault is mended, a retry with the same key is a fresh attempt that succeeds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from store import ArtifactService, Database, ManualClock, Settings, StoreError
from store.db import Tx
from tests.factories import (
    Fault,
    FaultyBlobs,
    blob_key,
    blob_keys,
    count,
    partial_keys,
    register,
    rows,
    upload,
    upload_error,
)

pytestmark = pytest.mark.anyio

T = TypeVar("T")
POINTS = ("open", "write", "finalize", "commit")
CONTENT = b"bytes that will not land the first time"


class FaultyDatabase:
    """The real database, whose transaction creating an output row fails at commit (rolled back)."""

    def __init__(self, inner: Database, fault: Fault) -> None:
        self._inner = inner
        self._fault = fault

    async def write(self, work: Callable[[Tx], T]) -> T:
        def fail_at_commit(tx: Tx) -> T:
            before = _ready_rows(tx)

            def commit_fails() -> None:
                if _ready_rows(tx) > before:
                    try:
                        self._fault.fire("commit")
                    except OSError as exc:
                        raise StoreError("service_unavailable", "The database is temporarily unavailable.") from exc

            # A unit ending with its last statement commits with it: the fault strikes before that one leaves.
            watched = _EndWatcher(tx, commit_fails)
            result = work(watched)  # type: ignore[arg-type]
            if not watched.ended:
                commit_fails()
            return result

        return await self._inner.write(fail_at_commit)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _EndWatcher:
    """A transaction that notes whether the unit ended it with its last statement (``last=True``), and
    runs ``before_commit`` before that statement leaves."""

    def __init__(self, tx: Tx, before_commit: Callable[[], None]) -> None:
        self._tx = tx
        self._before_commit = before_commit
        self.ended = False

    def one(self, sql: str, params: Any = (), *, last: bool = False, required: bool = False) -> Any:
        self._ending(last)
        return self._tx.one(sql, params, last=last, required=required)

    def execute(self, sql: str, params: Any = (), *, last: bool = False) -> int:
        self._ending(last)
        return self._tx.execute(sql, params, last=last)

    def _ending(self, last: bool) -> None:
        if last:
            self._before_commit()
            self.ended = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)


def _ready_rows(tx: Tx) -> int:
    row = tx.one("SELECT COUNT(*) AS n FROM outputs WHERE status = 'ready'", ())
    return int(row["n"]) if row else 0


@pytest.fixture
def fault() -> Fault:
    return Fault()


@pytest.fixture
def faulty(settings: Settings, service: ArtifactService, clock: ManualClock, fault: Fault) -> Iterator[ArtifactService]:
    yield ArtifactService(settings, FaultyDatabase(service.db, fault), FaultyBlobs(service.blobs, fault), clock=clock)  # type: ignore[arg-type]


@pytest.mark.parametrize("point", POINTS)
async def test_each_failure_point_releases_the_key_and_leaves_no_blob(
    faulty: ArtifactService, service: ArtifactService, fault: Fault, point: str
) -> None:
    account = await register(service)
    fault.point = point
    error = await upload_error(faulty, account, "same-key", CONTENT)
    assert fault.point is None, "the fault fired"
    assert error.code == ("service_unavailable" if point == "commit" else "upload_failed")
    assert error.retryable is True
    assert blob_keys(service) == []
    assert list(partial_keys(service)) == []
    assert count(service, "idempotency_keys", "account_id = ?", (account.id,)) == 0
    assert count(service, "outputs", "account_id = ? AND status = 'ready'", (account.id,)) == 0
    failed = rows(service, "SELECT id FROM outputs WHERE account_id = ? AND status = 'failed'", (account.id,))
    # Only a finalize failure (all bytes received, the store refused to keep them) is a failed output.
    assert len(failed) == (1 if point == "finalize" else 0)
    # The answer names the failed output when there is one, so it can be read by id.
    assert error.fields.get("outputId") == (failed[0]["id"] if failed else None)
    untouched = await service.account(account.id)
    assert (untouched.free_remaining, untouched.storage_used_bytes) == (account.free_remaining, 0)

    retried = await upload(faulty, account, "same-key", CONTENT)
    assert retried.replayed is False, "a fresh attempt, not a replay"
    output_id = retried.body["outputId"]
    assert blob_keys(service) == [blob_key(account.id, output_id)]
    charged = await service.account(account.id)
    assert (charged.free_remaining, charged.storage_used_bytes) == (account.free_remaining - 1, len(CONTENT))
    assert service.check().problems == []

"""The listing page (store/listing.py): every item is the output as a read shows it, also when the
item was rendered by an earlier page and the output changed since."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from store import Account, ArtifactService, ManualClock, Settings, open_service
from store.listing import RenderedItems
from tests.factories import future_iso, register, upload


@pytest.fixture
def second_service(settings: Settings, clock: ManualClock) -> Iterator[ArtifactService]:
    """Another service on the same database and blobs (as a second server process would be)."""
    other = open_service(settings, clock=clock, run_migrations=False)
    yield other
    other.close()


async def as_read(service: ArtifactService, account: Account, output_id: str) -> dict[str, Any]:
    """The output as ``GET /v1/outputs/{id}`` shows it, without its contract (items carry none)."""
    body = dict((await service.get_output(account, output_id)).body)
    del body["agent_contract"]
    return body


async def listed(service: ArtifactService, account: Account, **query: Any) -> list[dict[str, Any]]:
    page = await service.list_outputs(account, limit=100, **query)
    items: list[dict[str, Any]] = page["outputs"]
    return items


async def three_outputs(service: ArtifactService, account: Account) -> list[str]:
    """A public one with metadata, a private one with a label and a short-lived one; newest first."""
    public = await upload(
        service, account, "public", public=True, metadata={"agentId": "a-1", "tags": ["x"], "custom": {"n": 1.5}}
    )
    labelled = await upload(service, account, "labelled", b"<p>", mimeType="text/html", label='Q4 "report".html')
    short = await upload(service, account, "short", expiresAt=future_iso(service, 60))
    return [short.body["outputId"], labelled.body["outputId"], public.body["outputId"]]


@pytest.mark.anyio
async def test_listed_items_are_the_outputs_as_read(service: ArtifactService) -> None:
    """Each item has exactly the fields and values of a read, on the first page and on a repeat."""
    account = await register(service)
    ids = await three_outputs(service, account)
    expected = [await as_read(service, account, output_id) for output_id in ids]
    first = await service.list_page(account, limit=100)
    again = await service.list_page(account, limit=100)
    assert orjson.loads(first.body)["outputs"] == expected
    assert again.body == first.body


@pytest.mark.anyio
async def test_a_listing_shows_changes_made_after_its_items_were_rendered(
    service: ArtifactService, second_service: ArtifactService, clock: ManualClock
) -> None:
    """Deleted by another process, expired by the clock, expiry moved in the database: the next page
    shows each output as a read does now."""
    account = await register(service)
    short, labelled, public = await three_outputs(service, account)
    await listed(service, account)
    await second_service.delete_output(account, public)
    clock.advance(60)
    moved = service.clock.now_ms() + 3_600_000
    await service.db.write(lambda tx: tx.execute("UPDATE outputs SET expires_at = ? WHERE id = ?", (moved, labelled)))
    items = await listed(service, account)
    assert [item["status"] for item in items] == ["expired", "ready", "deleted"]
    assert items == [await as_read(service, account, output_id) for output_id in (short, labelled, public)]
    assert [item["outputId"] for item in await listed(service, account, status="ready")] == [labelled]


@pytest.mark.anyio
async def test_pages_are_whole_when_few_rendered_items_are_kept(service: ArtifactService) -> None:
    """With room for two rendered items, pages of three are still complete and in order."""
    service.rendered_items = RenderedItems(limit=2)
    account = await register(service)
    ids = await three_outputs(service, account)
    for _ in range(3):
        assert [item["outputId"] for item in await listed(service, account)] == ids
    cursor = (await service.list_outputs(account, limit=2))["pageInfo"]["nextCursor"]
    last = await service.list_outputs(account, limit=2, cursor=cursor)
    assert [item["outputId"] for item in last["outputs"]] == ids[2:]
    assert last["pageInfo"] == {"nextCursor": None, "hasMore": False}


LISTING_HEAD = "SELECT id, status, expires_at FROM outputs WHERE account_id = %"


@pytest.mark.anyio
@pytest.mark.parametrize("settings_overrides", [pytest.param({"db_pool_size": 1}, id="one-connection")])
async def test_the_listing_is_planned_for_its_account(service: ArtifactService, backend: str) -> None:
    """PostgreSQL runs a prepared statement on one generic plan after its fifth run, and the generic plan
    of the page query assumes an account's average share of the table: with one account holding most of
    it, a small account's page walked the primary key past all of that account's rows. So the page
    query is never prepared (one connection: the prepared statements seen are the listing's own)."""
    if not backend.startswith("postgres"):
        pytest.skip("SQLite plans each statement without table statistics")
    account = await register(service)
    ids = await three_outputs(service, account)
    for _ in range(8):
        assert [item["outputId"] for item in await listed(service, account)] == ids
    prepared = await service.db.read(
        lambda tx: tx.all("SELECT name FROM pg_prepared_statements WHERE statement LIKE ?", (LISTING_HEAD,))
    )
    assert prepared == []

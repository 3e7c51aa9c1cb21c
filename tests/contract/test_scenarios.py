"""The user scenarios of SPEC sections 2-8, each written once and run through both doors (REST and MCP)
on both backends: the same steps must give the same codes and the same contract facts."""

from __future__ import annotations

from typing import Any

import pytest

from store import ArtifactService, ManualClock
from store.settings import RateLimits
from tests.contract.conftest import Door

pytestmark = pytest.mark.anyio


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"free_uploads": 3}


async def test_upload_then_the_same_key_replays_and_another_payload_conflicts(door: Door) -> None:
    first = await door.save_text("hello", key="scenario-replay")
    assert first.ok and not first.replayed
    again = await door.save_text("hello", key="scenario-replay")
    assert again.ok and again.replayed
    assert again.body["outputId"] == first.body["outputId"]
    conflict = await door.save_text("other bytes", key="scenario-replay")
    assert conflict.code == "idempotency_conflict"
    assert conflict.body["agent_contract"]["retryable"] is False


async def test_an_account_without_units_is_refused_and_a_replay_still_answers(door: Door) -> None:
    saved = [await door.save_text(f"unit {n}", key=f"scenario-unit-{n}") for n in range(3)]
    assert [answer.code for answer in saved] == ["ok"] * 3
    refused = await door.save_text("one more", key="scenario-unit-3")
    assert refused.code == "quota_exhausted"
    assert refused.body["agent_contract"]["next_actions"][0]["action"] == "buy_credits"
    replay = await door.save_text("unit 0", key="scenario-unit-0")
    assert replay.ok and replay.replayed


@pytest.mark.parametrize(("seconds", "code"), [(None, "ok"), (59, "invalid_request"), (60, "ok"), (3600, "ok")])
async def test_share_link_lifetimes_follow_one_rule(door: Door, seconds: int | None, code: str) -> None:
    saved = await door.save_text("to share", key=f"scenario-share-{seconds}")
    answer = await door.share(saved.body["outputId"], expires_in_seconds=seconds)
    assert answer.code == code
    if answer.ok:
        assert answer.body["shareUrl"]


async def test_a_public_output_shares_its_public_url_and_still_checks_the_lifetime(door: Door) -> None:
    saved = await door.save_text("public", key="scenario-public", public=True)
    assert (await door.share(saved.body["outputId"], expires_in_seconds=10)).code == "invalid_request"
    shared = await door.share(saved.body["outputId"])
    assert shared.ok and shared.body["shareUrl"] == saved.body["publicUrl"]


async def test_list_pages_newest_first(door: Door) -> None:
    ids = [(await door.save_text(f"item {n}", key=f"scenario-list-{n}")).body["outputId"] for n in range(3)]
    first = await door.list(limit=2)
    assert first.ok and [item["outputId"] for item in first.body["outputs"]] == ids[::-1][:2]
    assert first.body["pageInfo"]["hasMore"] is True
    rest = await door.list(limit=2, cursor=first.body["pageInfo"]["nextCursor"])
    assert [item["outputId"] for item in rest.body["outputs"]] == ids[:1]
    assert rest.body["pageInfo"] == {"nextCursor": None, "hasMore": False}


async def test_delete_is_repeatable_and_the_output_answers_410_deleted(door: Door) -> None:
    output_id = (await door.save_text("to delete", key="scenario-delete")).body["outputId"]
    deleted = await door.delete(output_id)
    assert deleted.ok and deleted.body["status"] == "deleted"
    assert (await door.delete(output_id)).body["status"] == "deleted"
    gone = await door.get(output_id)
    assert gone.code == "output_deleted" and gone.body["status"] == "deleted"
    assert gone.body["agent_contract"]["content_accessible"] is False


async def test_expiry_on_read_then_delete_refused(door: Door, clock: ManualClock, service: ArtifactService) -> None:
    output_id = (await door.save_text("short-lived", key="scenario-expiry")).body["outputId"]
    clock.advance(service.settings.default_ttl_seconds + 1)
    gone = await door.get(output_id)
    assert gone.code == "output_expired" and gone.body["status"] == "expired"
    assert gone.body["agent_contract"]["expires_in_seconds"] is None
    assert (await door.delete(output_id)).code == "output_expired"


async def test_unknown_ids_are_not_found(door: Door) -> None:
    missing = "out_01J0000000000000000000000Z"
    assert (await door.get(missing)).code == "output_not_found"
    assert (await door.delete(missing)).code == "output_not_found"


@pytest.mark.parametrize(
    "settings_overrides",
    [pytest.param({"rate_limits": RateLimits(reads_per_hour=4, deletes_per_hour=1)}, id="reads-4-deletes-1")],
)
async def test_reads_shares_lists_and_links_spend_one_budget_and_deletes_another(door: Door) -> None:
    """Each use case counts against the family the store names for it, whichever door it comes through."""
    output_id = (await door.save_text("budget", key="scenario-budget")).body["outputId"]
    spent = [
        await door.get(output_id),
        await door.share(output_id),
        await door.list(limit=1),
        await door.create_upload_link({"mimeType": "text/plain"}),
    ]
    assert [answer.code for answer in spent] == ["ok"] * 4
    assert (await door.get(output_id)).code == "rate_limited"
    assert (await door.delete(output_id)).code == "ok"
    refused = await door.delete(output_id)
    assert refused.code == "rate_limited"
    assert refused.body["agent_contract"]["retryable"] is True

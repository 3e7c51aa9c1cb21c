"""Upload and download links through both doors and on both backends (SPEC sections 13 and 14):
ask for a link, let the "shell" PUT the bytes without a key, and the usual rules hold."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import httpx2
import pytest

from store import ArtifactService, ManualClock, iso_ms
from tests.conftest import assert_error
from tests.contract.conftest import Door, shell_get, shell_put
from tests.factories import blob_keys, count, overrides

pytestmark = pytest.mark.anyio

UPLOAD_URL = re.compile(r"^http://testserver/u/upl_[0-9A-HJKMNP-TV-Z]{26}\.\d+\.[A-Za-z0-9_-]+$")
HOUR_MS = 3_600_000
DATA = b"a report the model never had to read\n" * 100


def link_fields(**extra: Any) -> dict[str, Any]:
    return {"mimeType": "text/plain", "label": "report.txt", **extra}


async def new_link(door: Door, **extra: Any) -> dict[str, Any]:
    answer = await door.create_upload_link(link_fields(**extra))
    assert answer.ok, answer.body
    return answer.body


async def test_a_link_takes_the_bytes_without_a_key_and_charges_once(
    door: Door, client: httpx2.AsyncClient, service: ArtifactService, clock: ManualClock
) -> None:
    link = await new_link(door, sizeBytes=len(DATA), sha256=hashlib.sha256(DATA).hexdigest())
    assert UPLOAD_URL.match(link["uploadUrl"])
    assert (link["method"], link["status"], link["maxSizeBytes"]) == ("PUT", "pending", len(DATA))
    assert link["uploadExpiresAt"] == iso_ms(clock.now_ms() + HOUR_MS)
    assert link["curl"].startswith("curl ") and link["uploadUrl"] in link["curl"]
    first = link["agent_contract"]["next_actions"][0]
    assert (first["action"], first["method"], first["endpoint"]) == ("upload_content", "PUT", link["uploadUrl"])
    assert count(service, "outputs") == 0
    before = await service.account(door.account.id)
    assert before.free_remaining == 5

    # Any Content-Type: the MIME type was fixed when the link was made.
    stored = await shell_put(client, link["uploadUrl"], DATA, **{"Content-Type": "application/x-whatever"})
    assert stored.status_code == 201, stored.text
    output = stored.json()
    assert (output["status"], output["mimeType"], output["label"]) == ("ready", "text/plain", "report.txt")
    assert (output["sizeBytes"], output["sha256"]) == (len(DATA), hashlib.sha256(DATA).hexdigest())
    assert "x-outputlayer-free-remaining" not in stored.headers  # the link reveals nothing of the account
    after = await service.account(door.account.id)
    assert (after.free_remaining, after.storage_used_bytes) == (4, len(DATA))

    # Single use: the same bytes again are a replay (no charge); other bytes a conflict.
    again = await shell_put(client, link["uploadUrl"], DATA)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["outputId"] == output["outputId"]
    assert_error(
        await shell_put(client, link["uploadUrl"], DATA[::-1]),
        409,
        "idempotency_conflict",
        retryable=False,
        action="create_new_output",
    )
    assert (await service.account(door.account.id)).free_remaining == 4
    assert count(service, "outputs") == 1 and len(blob_keys(service)) == 1

    fetched = await door.get(output["outputId"])
    assert fetched.ok and fetched.body["sizeBytes"] == len(DATA)


async def test_declared_size_and_digest_must_match_and_nothing_is_kept(
    door: Door, client: httpx2.AsyncClient, service: ArtifactService
) -> None:
    link = await new_link(door, sizeBytes=len(DATA), sha256=hashlib.sha256(DATA).hexdigest())
    for wrong in (DATA[:-1], DATA + b"!", DATA[::-1]):
        refused = await shell_put(client, link["uploadUrl"], wrong)
        assert_error(refused, 400, "invalid_request", retryable=False, action="check_capabilities")
    assert count(service, "outputs") == 0 and blob_keys(service) == []
    assert (await service.account(door.account.id)).free_remaining == 5
    # The link is still open for the right bytes.
    assert (await shell_put(client, link["uploadUrl"], DATA)).status_code == 201


async def test_expired_tampered_and_unknown_links_are_the_same_not_found(
    door: Door, client: httpx2.AsyncClient, service: ArtifactService, clock: ManualClock
) -> None:
    link = await new_link(door)
    url = link["uploadUrl"]
    base, until, mac = url.rsplit(".", 2)
    tampered = [
        f"{base}.{until}.{'A' if mac[0] != 'A' else 'B'}{mac[1:]}",
        f"{base}.{int(until) + 1000}.{mac}",
        url.replace("/u/upl_", "/u/upl_0"),
        "http://testserver/u/not-a-link",
    ]
    for bad in tampered:
        assert_error(await shell_put(client, bad, DATA), 404, "not_found", retryable=False, action="check_capabilities")
    clock.advance(3601)
    assert_error(await shell_put(client, url, DATA), 404, "not_found", retryable=False, action="check_capabilities")
    assert count(service, "outputs") == 0


async def test_a_share_link_is_never_usable_as_an_upload_link(
    door: Door, client: httpx2.AsyncClient, service: ArtifactService
) -> None:
    saved = await door.save_text("shared", key="s1")
    shared = await door.share(saved.body["outputId"])
    token = shared.body["shareUrl"].rsplit("/", 1)[1]
    response = await shell_put(client, f"http://testserver/u/{token}", DATA)
    assert_error(response, 404, "not_found", retryable=False, action="check_capabilities")


@overrides(max_upload_bytes=1000)
async def test_the_upload_limit_holds_at_creation_and_while_the_bytes_stream(
    door: Door, client: httpx2.AsyncClient, service: ArtifactService
) -> None:
    too_big = await door.create_upload_link(link_fields(sizeBytes=1001))
    assert too_big.code == "payload_too_large"
    link = await new_link(door)
    assert link["maxSizeBytes"] == 1000
    refused = await shell_put(client, link["uploadUrl"], b"x" * 1001)
    assert_error(refused, 400, "payload_too_large", retryable=False, action="check_capabilities")

    async def chunked() -> Any:
        for _ in range(11):
            yield b"y" * 100

    streamed = await client.put(link["uploadUrl"], content=chunked())
    assert_error(streamed, 400, "payload_too_large", retryable=False, action="check_capabilities")
    assert count(service, "outputs") == 0 and blob_keys(service) == []


@overrides(free_uploads=0)
async def test_quota_is_checked_before_any_byte_moves(door: Door) -> None:
    refused = await door.create_upload_link(link_fields())
    assert refused.code == "quota_exhausted"
    assert refused.body["agent_contract"]["next_actions"][0]["action"] == "buy_credits"


@overrides(storage_limit_bytes=1000)
async def test_storage_is_checked_with_the_declared_size(door: Door) -> None:
    assert (await door.create_upload_link(link_fields(sizeBytes=1001))).code == "storage_limit_reached"
    assert (await door.create_upload_link(link_fields(sizeBytes=1000))).ok


async def test_bad_fields_get_the_upload_codes(door: Door) -> None:
    assert (await door.create_upload_link({"mimeType": "video/mp4"})).code == "invalid_mime_type"
    assert (await door.create_upload_link(link_fields(expiresAt="2000-01-01T00:00:00Z"))).code == "invalid_expiry"
    assert (await door.create_upload_link(link_fields(metadata={"color": "red"}))).code == "invalid_metadata"
    assert (await door.create_upload_link(link_fields(sha256="not-hex"))).code == "invalid_request"
    assert (await door.create_upload_link(link_fields(sizeBytes=0))).code == "invalid_request"


async def test_the_link_never_outlives_the_output(door: Door, clock: ManualClock) -> None:
    soon = iso_ms(clock.now_ms() + 600_000)
    link = await new_link(door, expiresAt=soon)
    assert link["uploadExpiresAt"] == soon


async def test_the_key_names_the_eventual_output(
    door: Door, client: httpx2.AsyncClient, service: ArtifactService
) -> None:
    first = await door.create_upload_link(link_fields(), key="weekly")
    again = await door.create_upload_link(link_fields(), key="weekly")
    assert again.ok and again.body["uploadUrl"] == first.body["uploadUrl"]
    assert (await door.create_upload_link(link_fields(label="other.txt"), key="weekly")).code == "idempotency_conflict"
    stored = (await shell_put(client, first.body["uploadUrl"], DATA)).json()
    replay = await door.create_upload_link(link_fields(), key="weekly")
    assert replay.ok and replay.replayed
    assert (replay.body["outputId"], replay.body["status"]) == (stored["outputId"], "ready")
    assert count(service, "upload_links") == 1


async def test_upload_and_output_keys_share_one_namespace(door: Door) -> None:
    assert (await door.save_text("direct", key="shared-key")).ok
    assert (await door.create_upload_link(link_fields(), key="shared-key")).code == "idempotency_conflict"
    assert (await door.create_upload_link(link_fields(), key="link-first")).ok
    assert (await door.save_text("direct", key="link-first")).code == "idempotency_conflict"


async def test_one_share_lifetime_rule_at_both_doors(door: Door) -> None:
    public = await door.save_text("public", key="p", public=True)
    private = await door.save_text("private", key="q")
    for saved in (public, private):
        refused = await door.share(saved.body["outputId"], expires_in_seconds=10)
        assert refused.code == "invalid_request", refused.body
        assert (await door.share(saved.body["outputId"], expires_in_seconds=60)).ok
    assert (await door.share(public.body["outputId"])).body["shareUrl"] == public.body["publicUrl"]


async def test_a_share_link_downloads_without_a_key(door: Door, client: httpx2.AsyncClient) -> None:
    saved = await door.save_text("for a person", key="k")
    shared = await door.share(saved.body["outputId"])
    response = await shell_get(client, shared.body["shareUrl"])
    assert response.status_code == 200 and response.content == b"for a person"

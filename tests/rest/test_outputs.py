"""REST outputs: upload, read, list, delete, share, idempotency and lifecycle (SPEC sections 2, 4-7, 13)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest

from store import ArtifactService, ManualClock, StoreError, iso_ms
from tests.conftest import REQUEST_ID, assert_contract, assert_error
from tests.factories import action_codes, balance, multipart, post_upload, registered_auth

WEEK = 604_800
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
OUTPUT_ID = re.compile(r"^out_[0-9A-HJKMNP-TV-Z]{26}$")
OUTPUT_KEYS = {
    "outputId",
    "status",
    "label",
    "mimeType",
    "sizeBytes",
    "sha256",
    "createdAt",
    "expiresAt",
    "publicUrl",
    "contentUrl",
    "metadata",
}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"free_uploads": 100}


# --- helpers ---------------------------------------------------------------------------------


def find_action(body: dict[str, Any], code: str) -> dict[str, Any]:
    return next(a for a in body["agent_contract"]["next_actions"] if a["action"] == code)


async def listing(client: httpx2.AsyncClient, auth: dict[str, str], query: str = "") -> dict[str, Any]:
    response = await client.get(f"/v1/outputs{query}", headers=auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert_contract(body)
    return body


# --- create ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_json_upload_returns_201_with_a_private_ready_output(
    client: httpx2.AsyncClient, auth: dict[str, str], clock: ManualClock
) -> None:
    """A JSON upload answers 201 with the full output resource and the private-ready contract."""
    data = b"hello world"
    response = await post_upload(client, auth, data, label="greeting.txt", metadata={"agentId": "a1", "tags": ["x"]})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {*OUTPUT_KEYS, "agent_contract"}
    output_id = body["outputId"]
    assert OUTPUT_ID.match(output_id)
    assert body["status"] == "ready"
    assert body["label"] == "greeting.txt"
    assert body["mimeType"] == "text/plain"
    assert body["sizeBytes"] == len(data)
    assert body["sha256"] == "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
    assert body["createdAt"] == iso_ms(clock.now_ms())
    assert body["expiresAt"] == iso_ms(clock.now_ms() + WEEK * 1000)
    assert TIMESTAMP.match(body["createdAt"]) and TIMESTAMP.match(body["expiresAt"])
    assert body["contentUrl"] == f"http://testserver/v1/outputs/{output_id}/content"
    assert body["publicUrl"] is None
    assert body["metadata"] == {"agentId": "a1", "tags": ["x"]}
    contract = assert_contract(body)
    assert contract["content_accessible"] is True
    assert contract["safe_to_share"] is False
    assert contract["retryable"] is False
    assert contract["expires_in_seconds"] == WEEK
    assert action_codes(body) == ["download_content", "create_public_output", "create_share_link", "delete_output"]
    download = find_action(body, "download_content")
    assert (download["method"], download["endpoint"]) == ("GET", f"/v1/outputs/{output_id}/content")
    public = find_action(body, "create_public_output")
    assert public["available"] is False
    assert public["required_body_changes"] == {"public": True}
    assert "method" not in public and "endpoint" not in public
    share = find_action(body, "create_share_link")
    assert (share["method"], share["endpoint"]) == ("POST", f"/v1/outputs/{output_id}/share")
    delete = find_action(body, "delete_output")
    assert (delete["method"], delete["endpoint"]) == ("DELETE", f"/v1/outputs/{output_id}")
    assert response.headers["x-outputlayer-free-remaining"] == "99"
    assert response.headers["x-outputlayer-storage-used-bytes"] == str(len(data))
    assert "idempotent-replayed" not in response.headers


@pytest.mark.anyio
async def test_public_upload_recommends_sharing_its_absolute_public_url(
    client: httpx2.AsyncClient, auth: dict[str, str]
) -> None:
    """A public output has an absolute publicUrl, safe_to_share, and share_public_url first."""
    response = await post_upload(client, auth, b"<p>hi</p>", mime="text/html", public=True)
    assert response.status_code == 201
    body = response.json()
    output_id = body["outputId"]
    assert body["publicUrl"] == f"http://testserver/public/{output_id}"
    contract = assert_contract(body)
    assert contract["content_accessible"] is True
    assert contract["safe_to_share"] is True
    assert action_codes(body) == ["share_public_url", "download_content", "delete_output"]
    share = find_action(body, "share_public_url")
    assert (share["method"], share["endpoint"]) == ("GET", body["publicUrl"])


@pytest.mark.anyio
async def test_multipart_upload_returns_201_with_its_fields(
    client: httpx2.AsyncClient, auth: dict[str, str], clock: ManualClock
) -> None:
    """A multipart upload (fields first, as httpx sends them) stores every field."""
    expires = iso_ms(clock.now_ms() + 3_600_000)
    response = await client.post(
        "/v1/outputs",
        headers={**auth, "Idempotency-Key": "mp-1"},
        data={
            "mimeType": "text/csv",
            "label": "table.csv",
            "public": "true",
            "expiresAt": expires,
            "metadata": json.dumps({"jobId": "j-7", "custom": {"rows": 2}}),
        },
        files={"content": ("table.csv", b"a,b\n1,2\n", "text/csv")},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["mimeType"] == "text/csv"
    assert body["label"] == "table.csv"
    assert body["sizeBytes"] == 8
    assert body["expiresAt"] == expires
    assert body["publicUrl"] is not None
    assert body["metadata"] == {"jobId": "j-7", "custom": {"rows": 2}}
    assert assert_contract(body)["expires_in_seconds"] == 3600


@pytest.mark.anyio
async def test_multipart_fields_after_the_file_part_are_applied(
    client: httpx2.AsyncClient, auth: dict[str, str]
) -> None:
    """The server accepts text fields that arrive after the file part."""
    body, headers = multipart(
        [
            ("content", b'{"ok": true}', "data.json"),
            ("mimeType", b"application/json", None),
            ("label", b"data.json", None),
            ("metadata", b'{"sourceSystem": "ci"}', None),
        ]
    )
    response = await client.post("/v1/outputs", content=body, headers={**auth, **headers, "Idempotency-Key": "late"})
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["mimeType"] == "application/json"
    assert created["label"] == "data.json"
    assert created["sizeBytes"] == 12
    assert created["metadata"] == {"sourceSystem": "ci"}
    content = await client.get(f"/v1/outputs/{created['outputId']}/content", headers=auth)
    assert content.content == b'{"ok": true}'


@pytest.mark.anyio
async def test_multipart_content_streamed_in_small_chunks_is_stored_intact(
    client: httpx2.AsyncClient, auth: dict[str, str], service: ArtifactService
) -> None:
    """A chunked multipart body of 1.5 MB round-trips byte for byte."""
    data = bytes(range(256)) * 6144
    body, headers = multipart([("mimeType", b"application/octet-stream", None), ("content", data, "blob.bin")])

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 7000):
            yield body[start : start + 7000]

    response = await client.post("/v1/outputs", content=chunks(), headers={**auth, **headers, "Idempotency-Key": "big"})
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["sizeBytes"] == len(data)
    content = await client.get(f"/v1/outputs/{created['outputId']}/content", headers=auth)
    assert content.status_code == 200
    assert content.content == data
    assert service.check().problems == []


@pytest.mark.any_backend
@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        pytest.param("text/plain; charset=utf-8", "text/plain", id="charset-parameter"),
        pytest.param("TEXT/Plain", "text/plain", id="upper-case"),
        pytest.param("application/json;charset=UTF-8", "application/json", id="no-space-parameter"),
        pytest.param("image/png", "image/png", id="plain"),
    ],
)
@pytest.mark.anyio
async def test_mime_type_parameters_are_accepted_and_normalised(
    client: httpx2.AsyncClient, auth: dict[str, str], sent: str, stored: str
) -> None:
    """MIME parameters are stripped and the type lower-cased, on the resource and on the content."""
    response = await post_upload(client, auth, b"payload", mime=sent)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["mimeType"] == stored
    content = await client.get(f"/v1/outputs/{body['outputId']}/content", headers=auth)
    assert content.headers["content-type"] == stored


# --- read ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_get_returns_the_same_representation_as_the_upload(
    client: httpx2.AsyncClient, auth: dict[str, str]
) -> None:
    """GET /v1/outputs/{id} answers 200 with the output as created (same clock instant)."""
    created = await post_upload(client, auth, label="x.txt")
    response = await client.get(f"/v1/outputs/{created.json()['outputId']}", headers=auth)
    assert response.status_code == 200
    assert response.json() == created.json()
    assert REQUEST_ID.match(response.headers["x-request-id"])
    assert response.headers["ratelimit-limit"] == "2000"


@pytest.mark.anyio
async def test_get_counts_down_expires_in_seconds(
    client: httpx2.AsyncClient, auth: dict[str, str], clock: ManualClock
) -> None:
    """expires_in_seconds is floor(seconds until expiresAt) at the time of the read."""
    created = await post_upload(client, auth)
    clock.advance(100.5)
    response = await client.get(f"/v1/outputs/{created.json()['outputId']}", headers=auth)
    assert assert_contract(response.json())["expires_in_seconds"] == WEEK - 101


@pytest.mark.any_backend
@pytest.mark.anyio
async def test_get_of_an_unknown_output_is_404_output_not_found(
    client: httpx2.AsyncClient, auth: dict[str, str]
) -> None:
    """An id that never existed answers 404 output_not_found."""
    response = await client.get("/v1/outputs/out_01HZZZZZZZZZZZZZZZZZZZZZZZ", headers=auth)
    assert_error(response, 404, "output_not_found", retryable=False, action="create_new_output")


@pytest.mark.any_backend
@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        pytest.param("GET", "", None, id="get"),
        pytest.param("GET", "/content", None, id="content"),
        pytest.param("DELETE", "", None, id="delete"),
        pytest.param("POST", "/share", {}, id="share"),
    ],
)
@pytest.mark.anyio
async def test_another_accounts_output_is_404_output_not_found(
    client: httpx2.AsyncClient, auth: dict[str, str], method: str, suffix: str, body: dict[str, Any] | None
) -> None:
    """Another account's output is indistinguishable from one that never existed."""
    created = await post_upload(client, auth)
    output_id = created.json()["outputId"]
    stranger = await registered_auth(client)
    response = await client.request(method, f"/v1/outputs/{output_id}{suffix}", headers=stranger, json=body)
    assert_error(response, 404, "output_not_found", retryable=False, action="create_new_output")
    still_there = await client.get(f"/v1/outputs/{output_id}", headers=auth)
    assert still_there.json()["status"] == "ready"


@pytest.mark.parametrize("swept", [pytest.param(False, id="before-sweep"), pytest.param(True, id="after-sweep")])
@pytest.mark.anyio
async def test_get_of_an_expired_output_is_410_with_the_full_object(
    client: httpx2.AsyncClient, auth: dict[str, str], clock: ManualClock, service: ArtifactService, swept: bool
) -> None:
    """Past its expiry, GET answers 410 with status expired, null URLs, error and request_id."""
    created = (await post_upload(client, auth, public=True)).json()
    clock.advance(WEEK + 1)
    if swept:
        assert (await service.sweep()).expired == 1
    response = await client.get(f"/v1/outputs/{created['outputId']}", headers=auth)
    assert response.status_code == 410
    body = response.json()
    assert set(body) == {*OUTPUT_KEYS, "agent_contract", "error", "request_id"}
    assert body["status"] == "expired"
    assert body["error"] == "output_expired"
    assert body["request_id"] == response.headers["x-request-id"]
    assert body["contentUrl"] is None and body["publicUrl"] is None
    assert body["outputId"] == created["outputId"]
    assert body["sha256"] == created["sha256"]
    contract = assert_contract(body)
    assert contract["content_accessible"] is False
    assert contract["safe_to_share"] is False
    assert contract["expires_in_seconds"] is None
    assert action_codes(body) == ["create_new_output"]


@pytest.mark.anyio
async def test_get_of_a_deleted_output_is_410_with_deleted_at(
    client: httpx2.AsyncClient, auth: dict[str, str], clock: ManualClock
) -> None:
    """A deleted output answers 410 with status deleted, deletedAt and error output_deleted."""
    created = (await post_upload(client, auth)).json()
    clock.advance(5)
    await client.delete(f"/v1/outputs/{created['outputId']}", headers=auth)
    response = await client.get(f"/v1/outputs/{created['outputId']}", headers=auth)
    assert response.status_code == 410
    body = response.json()
    assert body["status"] == "deleted"
    assert body["error"] == "output_deleted"
    assert body["request_id"] == response.headers["x-request-id"]
    assert body["deletedAt"] == iso_ms(clock.now_ms())
    assert body["contentUrl"] is None and body["publicUrl"] is None
    assert action_codes(body) == ["create_new_output"]
    assert assert_contract(body)["expires_in_seconds"] is None


# --- delete ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_delete_returns_the_deleted_output_and_gives_storage_back(
    client: httpx2.AsyncClient, auth: dict[str, str], clock: ManualClock, service: ArtifactService
) -> None:
    """DELETE answers 200 with status deleted and deletedAt; storage comes back, the upload unit does not."""
    created = (await post_upload(client, auth, b"twelve bytes")).json()
    response = await client.delete(f"/v1/outputs/{created['outputId']}", headers=auth)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "deleted"
    assert body["deletedAt"] == iso_ms(clock.now_ms())
    assert body["contentUrl"] is None and body["publicUrl"] is None
    contract = assert_contract(body)
    assert contract["content_accessible"] is False
    assert action_codes(body) == ["create_new_output"]
    assert response.headers["x-outputlayer-storage-used-bytes"] == "0"
    assert response.headers["x-outputlayer-free-remaining"] == "99"
    assert response.headers["ratelimit-limit"] == "200"
    account = await balance(client, auth)
    assert (account["storageUsedBytes"], account["freeRemaining"]) == (0, 99)
    assert list(service.blobs.keys()) == []
    assert service.check().problems == []


@pytest.mark.anyio
async def test_deleting_twice_returns_the_same_200(
    client: httpx2.AsyncClient, auth: dict[str, str], clock: ManualClock
) -> None:
    """Repeating a DELETE answers the same 200 body and gives no storage back twice."""
    created = (await post_upload(client, auth, b"abc")).json()
    await post_upload(client, auth, b"defg")
    first = await client.delete(f"/v1/outputs/{created['outputId']}", headers=auth)
    clock.advance(30)
    second = await client.delete(f"/v1/outputs/{created['outputId']}", headers=auth)
    assert first.status_code == second.status_code == 200
    assert second.json()["deletedAt"] == first.json()["deletedAt"]
    assert {k: v for k, v in second.json().items() if k != "agent_contract"} == {
        k: v for k, v in first.json().items() if k != "agent_contract"
    }
    assert second.headers["x-outputlayer-storage-used-bytes"] == "4"


@pytest.mark.anyio
async def test_deleting_an_expired_output_is_410_output_expired(
    client: httpx2.AsyncClient, auth: dict[str, str], clock: ManualClock
) -> None:
    """DELETE of an output past its expiry answers 410 output_expired."""
    created = (await post_upload(client, auth)).json()
    clock.advance(WEEK)
    response = await client.delete(f"/v1/outputs/{created['outputId']}", headers=auth)
    assert_error(response, 410, "output_expired", retryable=False, action="create_new_output")


@pytest.mark.any_backend
@pytest.mark.anyio
async def test_deleting_an_unknown_output_is_404(client: httpx2.AsyncClient, auth: dict[str, str]) -> None:
    """DELETE of an id that never existed answers 404 output_not_found."""
    response = await client.delete("/v1/outputs/out_nope", headers=auth)
    assert_error(response, 404, "output_not_found", retryable=False, action="create_new_output")


# --- list ------------------------------------------------------------------------------------


@pytest.mark.any_backend
@pytest.mark.anyio
async def test_list_of_a_new_account_is_empty(client: httpx2.AsyncClient, auth: dict[str, str]) -> None:
    """No outputs: an empty page, no next page, create_new_output recommended."""
    body = await listing(client, auth)
    assert body["outputs"] == []
    assert body["pageInfo"] == {"nextCursor": None, "hasMore": False}
    assert action_codes(body) == ["create_new_output"]


@pytest.mark.anyio
async def test_list_defaults_to_20_newest_first_without_item_contracts(
    client: httpx2.AsyncClient, auth: dict[str, str]
) -> None:
    """The default page holds the 20 newest outputs, newest first, items without agent_contract."""
    ids = [(await post_upload(client, auth, f"n{i}".encode())).json()["outputId"] for i in range(25)]
    body = await listing(client, auth)
    assert [item["outputId"] for item in body["outputs"]] == ids[::-1][:20]
    assert body["pageInfo"]["hasMore"] is True
    assert isinstance(body["pageInfo"]["nextCursor"], str)
    for item in body["outputs"]:
        assert "agent_contract" not in item
        assert set(item) == OUTPUT_KEYS
    assert action_codes(body)[0] == "list_outputs"


@pytest.mark.anyio
async def test_cursor_pagination_walks_every_output_once_newest_first(
    client: httpx2.AsyncClient, auth: dict[str, str]
) -> None:
    """Pages of 10 over 25 outputs: 10, 10, 5, no duplicates; list_outputs points at the next page."""
    ids = [(await post_upload(client, auth, f"n{i}".encode())).json()["outputId"] for i in range(25)]
    seen: list[str] = []
    sizes: list[int] = []
    path = "/v1/outputs?limit=10"
    while True:
        response = await client.get(path, headers=auth)
        assert response.status_code == 200
        body = response.json()
        assert_contract(body)
        sizes.append(len(body["outputs"]))
        seen.extend(item["outputId"] for item in body["outputs"])
        info = body["pageInfo"]
        if not info["hasMore"]:
            assert info["nextCursor"] is None
            assert action_codes(body) == ["create_new_output"]
            break
        next_page = body["agent_contract"]["next_actions"][0]
        assert next_page["action"] == "list_outputs"
        assert next_page["method"] == "GET"
        assert info["nextCursor"] in next_page["endpoint"]
        assert action_codes(body)[1] == "create_new_output"
        cursor_path = f"/v1/outputs?limit=10&cursor={info['nextCursor']}"
        via_cursor = (await client.get(cursor_path, headers=auth)).json()
        via_action = (await client.get(next_page["endpoint"], headers=auth)).json()
        assert via_action["outputs"] == via_cursor["outputs"]
        path = cursor_path
    assert sizes == [10, 10, 5]
    assert seen == ids[::-1]
    assert len(set(seen)) == 25


@pytest.mark.any_backend
@pytest.mark.anyio
async def test_list_limit_bounds_are_accepted(client: httpx2.AsyncClient, auth: dict[str, str]) -> None:
    """limit=1 and limit=100 are both valid."""
    for i in range(3):
        await post_upload(client, auth, f"n{i}".encode())
    assert len((await listing(client, auth, "?limit=1"))["outputs"]) == 1
    page = await listing(client, auth, "?limit=100")
    assert len(page["outputs"]) == 3
    assert page["pageInfo"]["hasMore"] is False


@pytest.mark.anyio
async def test_list_status_filter_evaluates_expiry_before_the_sweeper(
    client: httpx2.AsyncClient, auth: dict[str, str], clock: ManualClock, service: ArtifactService
) -> None:
    """status=expired finds an output past its expiry that no sweep has marked yet."""
    short = (await post_upload(client, auth, b"short", expiresAt=iso_ms(clock.now_ms() + 60_000))).json()["outputId"]
    kept = (await post_upload(client, auth, b"kept")).json()["outputId"]
    gone = (await post_upload(client, auth, b"gone")).json()["outputId"]
    await client.delete(f"/v1/outputs/{gone}", headers=auth)
    clock.advance(61)
    for status, expected in [("expired", [short]), ("ready", [kept]), ("deleted", [gone]), ("failed", [])]:
        body = await listing(client, auth, f"?status={status}")
        assert [item["outputId"] for item in body["outputs"]] == expected, status
        assert all(item["status"] == status for item in body["outputs"])
    everything = await listing(client, auth)
    statuses = {item["outputId"]: item["status"] for item in everything["outputs"]}
    assert statuses == {short: "expired", kept: "ready", gone: "deleted"}
    expired_item = next(item for item in everything["outputs"] if item["outputId"] == short)
    assert expired_item["contentUrl"] is None
    assert (await service.sweep()).expired == 1
    body = await listing(client, auth, "?status=expired")
    assert [item["outputId"] for item in body["outputs"]] == [short]


@pytest.mark.anyio
async def test_list_mime_type_filter_is_exact(client: httpx2.AsyncClient, auth: dict[str, str]) -> None:
    """mimeType=text/csv lists only CSV outputs."""
    csv = (await post_upload(client, auth, b"a,b", mime="text/csv")).json()["outputId"]
    await post_upload(client, auth, b"text")
    body = await listing(client, auth, "?mimeType=text/csv")
    assert [item["outputId"] for item in body["outputs"]] == [csv]
    assert (await listing(client, auth, "?mimeType=image/png"))["outputs"] == []


@pytest.mark.anyio
async def test_list_outputs_action_keeps_the_filters_of_the_listing(
    client: httpx2.AsyncClient, auth: dict[str, str]
) -> None:
    """Following list_outputs from a filtered page gives the next page of the same filtered listing."""
    older_csv = (await post_upload(client, auth, b"1,2", mime="text/csv")).json()["outputId"]
    await post_upload(client, auth, b"plain 1")
    newer_csv = (await post_upload(client, auth, b"3,4", mime="text/csv")).json()["outputId"]
    await post_upload(client, auth, b"plain 2")
    first = await listing(client, auth, "?mimeType=text/csv&limit=1")
    assert [item["outputId"] for item in first["outputs"]] == [newer_csv]
    next_page = first["agent_contract"]["next_actions"][0]
    assert next_page["action"] == "list_outputs"
    second = await listing(client, auth, next_page["endpoint"].removeprefix("/v1/outputs"))
    assert [item["outputId"] for item in second["outputs"]] == [older_csv]


@pytest.mark.anyio
async def test_list_shows_only_the_callers_outputs(client: httpx2.AsyncClient, auth: dict[str, str]) -> None:
    """Listing never shows another account's outputs."""
    mine = (await post_upload(client, auth)).json()["outputId"]
    stranger = await registered_auth(client)
    await post_upload(client, stranger, b"theirs")
    body = await listing(client, auth)
    assert [item["outputId"] for item in body["outputs"]] == [mine]


# --- idempotency -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_same_key_same_payload_replays_without_a_second_charge(
    client: httpx2.AsyncClient, auth: dict[str, str], service: ArtifactService
) -> None:
    """A repeated request answers 201 with Idempotent-Replayed, the same output, no charge, no row, no blob."""
    first = await post_upload(client, auth, b"same", key="k-1", label="a")
    second = await post_upload(client, auth, b"same", key="k-1", label="a")
    assert first.status_code == second.status_code == 201
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json() == first.json()
    assert second.headers["x-outputlayer-free-remaining"] == first.headers["x-outputlayer-free-remaining"] == "99"
    assert (await balance(client, auth))["freeRemaining"] == 99
    assert len((await listing(client, auth))["outputs"]) == 1
    assert len(list(service.blobs.keys())) == 1


@pytest.mark.parametrize(
    "json_first", [pytest.param(True, id="json-then-multipart"), pytest.param(False, id="multipart-then-json")]
)
@pytest.mark.anyio
async def test_json_and_multipart_of_the_same_artifact_share_one_key(
    client: httpx2.AsyncClient, auth: dict[str, str], clock: ManualClock, service: ArtifactService, json_first: bool
) -> None:
    """The same artifact sent as JSON and as multipart has one fingerprint: the second is a replay."""
    data = b"\x89PNG fake image bytes"
    expires = iso_ms(clock.now_ms() + 7_200_000)
    metadata = {"agentId": "agent-9", "tags": ["a", "b"], "custom": {"k": [1, 2]}}
    body, headers = multipart(
        [
            ("mimeType", b"image/png", None),
            ("label", b"chart.png", None),
            ("public", b"false", None),
            ("expiresAt", expires.encode(), None),
            ("metadata", json.dumps(metadata).encode(), None),
            ("content", data, "chart.png"),
        ]
    )

    async def send_json() -> httpx2.Response:
        return await post_upload(
            client,
            auth,
            data,
            key="both",
            mime="image/png",
            label="chart.png",
            public=False,
            expiresAt=expires,
            metadata=metadata,
        )

    async def send_multipart() -> httpx2.Response:
        return await client.post("/v1/outputs", content=body, headers={**auth, **headers, "Idempotency-Key": "both"})

    first = await (send_json() if json_first else send_multipart())
    second = await (send_multipart() if json_first else send_json())
    assert first.status_code == 201, first.text
    assert second.status_code == 201, second.text
    assert "idempotent-replayed" not in first.headers
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json()["outputId"] == first.json()["outputId"]
    assert (await balance(client, auth))["freeRemaining"] == 99
    assert len(list(service.blobs.keys())) == 1


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"data": b"other bytes"}, id="content"),
        pytest.param({"label": "b"}, id="label"),
        pytest.param({"mime": "text/csv"}, id="mime-type"),
        pytest.param({"public": True}, id="public"),
        pytest.param({"metadata": {"jobId": "2"}}, id="metadata"),
        pytest.param({"expiresAt": "default"}, id="expires-at-sent-vs-absent"),
    ],
)
@pytest.mark.anyio
async def test_same_key_different_payload_is_409_idempotency_conflict(
    client: httpx2.AsyncClient, auth: dict[str, str], clock: ManualClock, change: dict[str, Any]
) -> None:
    """Any change of the fingerprinted request under a completed key answers 409, with no charge."""
    await post_upload(client, auth, b"original", key="k-2", label="a")
    request: dict[str, Any] = {"data": b"original", "label": "a", **change}
    if request.get("expiresAt") == "default":
        request["expiresAt"] = iso_ms(clock.now_ms() + WEEK * 1000)  # the default value, but sent explicitly
    response = await post_upload(client, auth, key="k-2", **request)
    body = assert_error(response, 409, "idempotency_conflict", retryable=False, action="create_new_output")
    assert action_codes(body) == ["create_new_output"]
    assert (await balance(client, auth))["freeRemaining"] == 99


@pytest.mark.anyio
async def test_replay_after_delete_shows_the_output_deleted(client: httpx2.AsyncClient, auth: dict[str, str]) -> None:
    """A replay answers with the output's current representation: status deleted, no new output."""
    created = (await post_upload(client, auth, b"bye", key="k-3")).json()
    await client.delete(f"/v1/outputs/{created['outputId']}", headers=auth)
    replay = await post_upload(client, auth, b"bye", key="k-3")
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    body = replay.json()
    assert body["outputId"] == created["outputId"]
    assert body["status"] == "deleted"
    assert "deletedAt" in body
    assert body["contentUrl"] is None
    assert action_codes(body) == ["create_new_output"]
    assert (await balance(client, auth))["freeRemaining"] == 99


@pytest.mark.anyio
async def test_validation_errors_are_not_remembered_by_the_key(
    client: httpx2.AsyncClient, auth: dict[str, str]
) -> None:
    """After a 400 the same key serves a corrected request as a fresh upload."""
    refused = await post_upload(client, auth, key="k-4", mime="text/markdown")
    assert refused.status_code == 400
    accepted = await post_upload(client, auth, key="k-4")
    assert accepted.status_code == 201
    assert "idempotent-replayed" not in accepted.headers


@pytest.mark.anyio
async def test_idempotency_keys_are_scoped_per_account(client: httpx2.AsyncClient, auth: dict[str, str]) -> None:
    """Two accounts may use the same key for different payloads."""
    mine = await post_upload(client, auth, b"mine", key="shared-key")
    other = await post_upload(client, await registered_auth(client), b"theirs", key="shared-key")
    assert mine.status_code == other.status_code == 201
    assert "idempotent-replayed" not in other.headers
    assert other.json()["outputId"] != mine.json()["outputId"]


@pytest.mark.anyio
async def test_key_in_flight_is_503_then_reclaimed_after_60_seconds(
    client: httpx2.AsyncClient, auth: dict[str, str], clock: ManualClock, service: ArtifactService
) -> None:
    """A claimed key answers 503 idempotency_in_flight with Retry-After 5; a dead slot is reclaimed after 60 s."""
    account = await service.authenticate(auth["Authorization"].removeprefix("Bearer "))
    session = await service.begin_upload(account, "busy")
    response = await post_upload(client, auth, key="busy")
    body = assert_error(response, 503, "idempotency_in_flight", retryable=True, action="retry_after_wait")
    assert response.headers["retry-after"] == "5"
    wait = body["agent_contract"]["next_actions"][0]
    assert (wait["method"], wait["endpoint"], wait["retry_after_seconds"]) == ("POST", "/v1/outputs", 5)
    assert response.headers["x-outputlayer-free-remaining"] == "100"
    clock.advance(30)
    assert (await post_upload(client, auth, key="busy")).status_code == 503
    clock.advance(31)
    reclaimed = await post_upload(client, auth, key="busy")
    assert reclaimed.status_code == 201, reclaimed.text
    assert "idempotent-replayed" not in reclaimed.headers
    await session.abort()
    replay = await post_upload(client, auth, key="busy")
    assert replay.headers["idempotent-replayed"] == "true"
    assert service.check().problems == []


# --- failed uploads --------------------------------------------------------------------------


class _FailingWriter:
    """A blob writer whose commit fails the way a broken backend does."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def write(self, chunk: bytes) -> None:
        await self.inner.write(chunk)

    async def commit(self) -> None:
        raise StoreError("upload_failed", "simulated backend failure")

    async def abort(self) -> None:
        await self.inner.abort()


@pytest.mark.anyio
async def test_failed_upload_is_422_shows_failed_and_a_retry_with_the_same_key_succeeds(
    client: httpx2.AsyncClient, auth: dict[str, str], service: ArtifactService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backend failure answers 422 upload_failed, leaves a failed output, charges nothing; a retry stores it."""
    real_writer = service.blobs.writer

    async def failing_writer(key: str, content_type: str) -> _FailingWriter:
        return _FailingWriter(await real_writer(key, content_type))

    monkeypatch.setattr(service.blobs, "writer", failing_writer)
    response = await post_upload(client, auth, b"precious", key="k-fail", label="p.txt")
    body = assert_error(response, 422, "upload_failed", retryable=True, action="retry_same_request")
    retry = body["agent_contract"]["next_actions"][0]
    assert (retry["method"], retry["endpoint"]) == ("POST", "/v1/outputs")
    assert (await balance(client, auth))["freeRemaining"] == 100

    failed_page = await listing(client, auth, "?status=failed")
    assert len(failed_page["outputs"]) == 1
    failed_id = failed_page["outputs"][0]["outputId"]
    shown = await client.get(f"/v1/outputs/{failed_id}", headers=auth)
    assert shown.status_code == 200
    failed = shown.json()
    assert failed["status"] == "failed"
    assert failed["contentUrl"] is None and failed["publicUrl"] is None
    contract = assert_contract(failed)
    assert contract["retryable"] is True
    assert contract["content_accessible"] is False
    assert action_codes(failed) == ["retry_same_request"]
    assert (
        failed["agent_contract"]["next_actions"][0]["method"],
        failed["agent_contract"]["next_actions"][0]["endpoint"],
    ) == ("POST", "/v1/outputs")
    content = await client.get(f"/v1/outputs/{failed_id}/content", headers=auth)
    assert_error(content, 422, "upload_failed", retryable=True, action="retry_same_request")

    monkeypatch.undo()
    retried = await post_upload(client, auth, b"precious", key="k-fail", label="p.txt")
    assert retried.status_code == 201, retried.text
    assert "idempotent-replayed" not in retried.headers
    assert retried.json()["outputId"] != failed_id
    assert retried.json()["status"] == "ready"
    assert (await balance(client, auth))["freeRemaining"] == 99
    assert service.check().problems == []


# --- share links -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_share_link_serves_a_private_output_without_a_key(
    client: httpx2.AsyncClient, auth: dict[str, str], clock: ManualClock
) -> None:
    """POST /share returns an absolute signed URL that serves the bytes without a key."""
    created = (await post_upload(client, auth, b"secret report", label="r.txt")).json()
    response = await client.post(
        f"/v1/outputs/{created['outputId']}/share", headers=auth, json={"expiresInSeconds": 3600}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"shareUrl", "shareExpiresAt", "agent_contract"}
    assert body["shareUrl"].startswith("http://testserver/")
    assert body["shareExpiresAt"] == iso_ms(clock.now_ms() + 3_600_000)
    contract = assert_contract(body)
    assert contract["safe_to_share"] is True
    assert contract["expires_in_seconds"] == 3600
    assert action_codes(body) == ["share_public_url", "get_output"]
    share = find_action(body, "share_public_url")
    assert (share["method"], share["endpoint"]) == ("GET", body["shareUrl"])
    get = find_action(body, "get_output")
    assert (get["method"], get["endpoint"]) == ("GET", f"/v1/outputs/{created['outputId']}")

    shared = await client.get(body["shareUrl"])
    assert shared.status_code == 200
    assert shared.content == b"secret report"
    assert shared.headers["content-type"] == "text/plain"
    assert shared.headers["content-security-policy"] == "sandbox"
    assert shared.headers["x-content-type-options"] == "nosniff"
    assert shared.headers["etag"] == f'"{created["sha256"]}"'
    assert REQUEST_ID.match(shared.headers["x-request-id"])
    assert "x-outputlayer-free-remaining" not in shared.headers


@pytest.mark.anyio
async def test_share_link_without_a_body_lasts_a_day(
    client: httpx2.AsyncClient, auth: dict[str, str], clock: ManualClock
) -> None:
    """An empty share request gets the default lifetime of 24 hours."""
    created = (await post_upload(client, auth)).json()
    response = await client.post(f"/v1/outputs/{created['outputId']}/share", headers=auth)
    assert response.status_code == 200
    assert response.json()["shareExpiresAt"] == iso_ms(clock.now_ms() + 86_400_000)


@pytest.mark.anyio
async def test_share_link_stops_working_when_it_expires(
    client: httpx2.AsyncClient, auth: dict[str, str], clock: ManualClock
) -> None:
    """After expiresInSeconds the link answers 410."""
    created = (await post_upload(client, auth)).json()
    url = (
        await client.post(f"/v1/outputs/{created['outputId']}/share", headers=auth, json={"expiresInSeconds": 60})
    ).json()["shareUrl"]
    clock.advance(59)
    assert (await client.get(url)).status_code == 200
    clock.advance(1)
    assert_error(await client.get(url), 410, "output_expired", retryable=False, action="create_new_output")
    assert (await client.get(f"/v1/outputs/{created['outputId']}", headers=auth)).status_code == 200


@pytest.mark.anyio
async def test_share_link_never_outlives_the_output(
    client: httpx2.AsyncClient, auth: dict[str, str], clock: ManualClock
) -> None:
    """A link asked to outlive its output is capped at the output's expiresAt."""
    expires = iso_ms(clock.now_ms() + 120_000)
    created = (await post_upload(client, auth, expiresAt=expires)).json()
    body = (
        await client.post(f"/v1/outputs/{created['outputId']}/share", headers=auth, json={"expiresInSeconds": 86_400})
    ).json()
    assert body["shareExpiresAt"] == expires
    assert assert_contract(body)["expires_in_seconds"] == 120
    clock.advance(121)
    response = await client.get(body["shareUrl"])
    assert response.status_code == 410


@pytest.mark.anyio
async def test_share_link_dies_when_the_output_is_deleted(client: httpx2.AsyncClient, auth: dict[str, str]) -> None:
    """Deleting the output kills its share links: 410 output_deleted."""
    created = (await post_upload(client, auth)).json()
    url = (await client.post(f"/v1/outputs/{created['outputId']}/share", headers=auth, json={})).json()["shareUrl"]
    await client.delete(f"/v1/outputs/{created['outputId']}", headers=auth)
    assert_error(await client.get(url), 410, "output_deleted", retryable=False, action="create_new_output")


@pytest.mark.any_backend
@pytest.mark.anyio
async def test_tampered_share_link_is_404(client: httpx2.AsyncClient, auth: dict[str, str]) -> None:
    """A share link whose expiry or signature was altered answers 404 output_not_found."""
    created = (await post_upload(client, auth)).json()
    url = (await client.post(f"/v1/outputs/{created['outputId']}/share", headers=auth, json={})).json()["shareUrl"]
    base, token = url.rsplit("/", 1)

    def altered(at: int) -> str:  # always a different character, so never by chance the same token
        return f"{token[:at]}{'A' if token[at] != 'A' else 'B'}{token[at + 1 :]}"

    # The output id, the expiry, the signature; and no token at all.
    for bad in (altered(3), altered(24), altered(len(token) - 2), "garbage"):
        response = await client.get(f"{base}/{bad}")
        assert_error(response, 404, "output_not_found", retryable=False, action="create_new_output")


@pytest.mark.anyio
async def test_share_of_a_public_output_returns_its_public_url(
    client: httpx2.AsyncClient, auth: dict[str, str]
) -> None:
    """Sharing a public output hands back its publicUrl."""
    created = (await post_upload(client, auth, public=True)).json()
    body = (await client.post(f"/v1/outputs/{created['outputId']}/share", headers=auth, json={})).json()
    assert body["shareUrl"] == created["publicUrl"]
    assert body["shareExpiresAt"] == created["expiresAt"]
    assert_contract(body)


@pytest.mark.any_backend
@pytest.mark.parametrize(
    ("document", "code"),
    [
        pytest.param({"expiresInSeconds": 59}, "invalid_request", id="under-60-seconds"),
        pytest.param({"expiresInSeconds": "600"}, "invalid_request", id="not-an-integer"),
        pytest.param({"ttl": 600}, "invalid_request", id="unknown-field"),
    ],
)
@pytest.mark.anyio
async def test_share_request_validation(
    client: httpx2.AsyncClient, auth: dict[str, str], document: dict[str, Any], code: str
) -> None:
    """Bad share requests answer 400 with check_capabilities."""
    created = (await post_upload(client, auth)).json()
    response = await client.post(f"/v1/outputs/{created['outputId']}/share", headers=auth, json=document)
    assert_error(response, 400, code, retryable=False, action="check_capabilities")


@pytest.mark.any_backend
@pytest.mark.anyio
async def test_a_bad_share_request_is_400_even_for_a_deleted_output(
    client: httpx2.AsyncClient, auth: dict[str, str]
) -> None:
    """The request is judged before the output: a too-short lifetime is 400 whatever the output's state."""
    created = (await post_upload(client, auth)).json()
    assert (await client.delete(f"/v1/outputs/{created['outputId']}", headers=auth)).status_code == 200
    response = await client.post(
        f"/v1/outputs/{created['outputId']}/share", headers=auth, json={"expiresInSeconds": 59}
    )
    assert_error(response, 400, "invalid_request", retryable=False, action="check_capabilities")


@pytest.mark.anyio
async def test_share_of_an_expired_output_is_410(
    client: httpx2.AsyncClient, auth: dict[str, str], clock: ManualClock
) -> None:
    """An expired output cannot be shared: 410 output_expired."""
    created = (await post_upload(client, auth)).json()
    clock.advance(WEEK)
    response = await client.post(f"/v1/outputs/{created['outputId']}/share", headers=auth, json={})
    assert_error(response, 410, "output_expired", retryable=False, action="create_new_output")

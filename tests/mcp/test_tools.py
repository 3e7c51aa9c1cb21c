"""The MCP tools through the SDK's in-memory client: every tool, every error, on both backends (SPEC section 11)."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client, MCPError
from mcp.types import BlobResourceContents, TextResourceContents

from outputlayer_mcp import OutputLayerMCP, build_mcp_server
from outputlayer_mcp.schemas import ArtifactResult
from store import Account, ArtifactService, ManualClock
from store.clock import iso_ms
from store.content_sources import INLINE_CONTENT_MAX_BYTES
from store.settings import RateLimits
from tests.factories import break_blob_commits, first_action, overrides
from tests.mcp.conftest import call, count_outputs, new_account, ok, refused

pytestmark = pytest.mark.anyio

TOOLS = {"save_artifact", "get_artifact", "share", "create_upload_link", "list_artifacts", "delete_artifact"}
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000") + b"\x00" * 20


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"free_uploads": 100}


def blobs_of(service: ArtifactService, account: Account) -> int:
    stored = list(service.blobs.keys())
    return sum(1 for key in stored if key.startswith(f"{account.id}/"))


async def save_text(mcp: Client, text: str = "hello, artifact", **fields: Any) -> dict[str, Any]:
    """Save some text; the full output (from get_artifact) and whether the save was a replay."""
    return await full(mcp, ok(await call(mcp, "save_artifact", mime_type="text/plain", content_text=text, **fields)))


async def full(mcp: Client, saved: dict[str, Any]) -> dict[str, Any]:
    """A compact save result completed with the output's full representation."""
    body = ok(await call(mcp, "get_artifact", output_id=saved["outputId"]))
    return {**body, "replayed": saved.get("replayed", False)}


# --- the tool list ---------------------------------------------------------------------------


@pytest.mark.any_backend
async def test_tool_list_is_truthful(mcp: Client) -> None:
    tools = {tool.name: tool for tool in (await mcp.list_tools()).tools}
    assert set(tools) == TOOLS
    hints = {
        name: (t.annotations.read_only_hint, t.annotations.destructive_hint, t.annotations.idempotent_hint)
        for name, t in tools.items()
        if t.annotations is not None
    }
    assert hints == {
        "save_artifact": (False, False, True),
        "get_artifact": (True, None, None),
        "share": (False, False, False),
        "create_upload_link": (False, False, False),
        "list_artifacts": (True, None, None),
        "delete_artifact": (False, True, True),
    }
    for tool in tools.values():
        assert tool.description and tool.title
        assert tool.output_schema is not None
        assert "agent_contract" in tool.output_schema["required"]
    save = tools["save_artifact"].input_schema
    assert "required" not in save  # mime_type is guessed from a path's extension
    assert {"mime_type", "content_base64", "content_text", "path", "label", "public", "expires_at", "metadata"} <= set(
        save["properties"]
    )
    assert tools["create_upload_link"].input_schema["required"] == ["mime_type"]
    assert all("title" not in prop for tool in tools.values() for prop in tool.input_schema["properties"].values())


@pytest.mark.any_backend
async def test_tools_list_fits_the_budget(mcp: Client) -> None:
    """SPEC section 11: the whole tools/list answer is at most 8,000 characters."""
    listed = await mcp.list_tools()
    assert len(listed.model_dump_json(by_alias=True, exclude_none=True)) <= 8000


@pytest.mark.any_backend
async def test_error_results_conform_to_the_output_schema(mcp: Client) -> None:
    """Clients that validate structuredContent even on errors must accept the error envelope."""
    body = refused(await call(mcp, "get_artifact", output_id="out_nope"), "output_not_found")
    ArtifactResult.model_validate(body)


# --- save_artifact ---------------------------------------------------------------------------


async def test_save_answers_compactly_and_get_has_the_rest_output_with_a_link(mcp: Client) -> None:
    result = await call(mcp, "save_artifact", mime_type="text/plain", content_text="hello", label="a.txt")
    saved = ok(result)
    assert set(saved) == {"outputId", "agent_contract"} and result.content == []
    action = saved["agent_contract"]["next_actions"]
    assert action == [
        {
            "action": "download_content",
            "available": True,
            "recommended": True,
            "method": "GET",
            "endpoint": f"/v1/outputs/{saved['outputId']}/content",
        }
    ]
    result = await call(mcp, "get_artifact", output_id=saved["outputId"])
    body = ok(result)
    assert body["status"] == "ready" and body["sizeBytes"] == 5 and body["label"] == "a.txt"
    assert body["sha256"] == hashlib.sha256(b"hello").hexdigest()
    assert body["contentUrl"] == f"http://testserver/v1/outputs/{body['outputId']}/content"
    assert body["resourceUri"] == f"outputlayer://outputs/{body['outputId']}"
    assert first_action(body) == "download_content"
    assert [block.type for block in result.content] == ["text", "resource_link"]
    link = result.content[1]
    assert link.type == "resource_link" and str(link.uri) == body["resourceUri"]
    assert link.mime_type == "text/plain" and link.size == 5


async def test_save_base64_public(mcp: Client) -> None:
    saved = ok(
        await call(
            mcp, "save_artifact", mime_type="image/png", content_base64=base64.b64encode(PNG).decode(), public=True
        )
    )
    assert saved["publicUrl"] == f"http://testserver/public/{saved['outputId']}"
    body = await full(mcp, saved)
    assert body["sizeBytes"] == len(PNG) and body["sha256"] == hashlib.sha256(PNG).hexdigest()
    assert body["publicUrl"] == f"http://testserver/public/{body['outputId']}"
    assert first_action(body) == "share_public_url"


@pytest.mark.parametrize(
    "encode",
    [
        lambda text: "\n".join(text[i : i + 76] for i in range(0, len(text), 76)) + "\n",
        lambda text: "data:image/png;base64," + text,
    ],
    ids=["wrapped-lines", "data-uri"],
)
async def test_save_accepts_the_base64_forms_clients_send(mcp: Client, encode: Any) -> None:
    """SPEC section 15: line-wrapped base64 and data: URIs are the same bytes as plain base64."""
    saved = ok(
        await call(mcp, "save_artifact", mime_type="image/png", content_base64=encode(base64.b64encode(PNG).decode()))
    )
    # save_artifact answers compactly (SPEC section 11's budget); the stored facts come from get_artifact.
    body = ok(await call(mcp, "get_artifact", output_id=saved["outputId"]))
    assert body["sizeBytes"] == len(PNG) and body["sha256"] == hashlib.sha256(PNG).hexdigest()


async def test_identical_save_without_key_is_a_replay(mcp: Client, service: ArtifactService, account: Account) -> None:
    first = await save_text(mcp, label="r.txt", metadata={"jobId": "j1"})
    second = await save_text(mcp, label="r.txt", metadata={"jobId": "j1"})
    assert second["outputId"] == first["outputId"] and second["replayed"] is True
    # Same artifact with a MIME parameter: the same fingerprint, so the same derived key.
    third = ok(
        await call(
            mcp,
            "save_artifact",
            mime_type="Text/Plain; charset=utf-8",
            content_base64=base64.b64encode(b"hello, artifact").decode(),
            label="r.txt",
            metadata={"jobId": "j1"},
        )
    )
    assert third["outputId"] == first["outputId"] and third["replayed"] is True
    assert count_outputs(service, account) == 1 and blobs_of(service, account) == 1
    assert (await service.account(account.id)).free_remaining == 99


async def test_a_different_artifact_without_key_is_a_new_output(mcp: Client, service: ArtifactService) -> None:
    first = await save_text(mcp, label="a")
    assert (await save_text(mcp, label="b"))["outputId"] != first["outputId"]
    assert (await save_text(mcp, "other text", label="a"))["outputId"] != first["outputId"]


async def test_explicit_key_replays_and_conflicts(mcp: Client) -> None:
    first = await save_text(mcp, idempotency_key="job-1")
    assert (await save_text(mcp, idempotency_key="job-1"))["replayed"] is True
    # A new key stores the same content again.
    assert (await save_text(mcp, idempotency_key="job-2"))["outputId"] != first["outputId"]
    body = refused(
        await call(mcp, "save_artifact", mime_type="text/plain", content_text="changed", idempotency_key="job-1"),
        "idempotency_conflict",
    )
    assert first_action(body) == "create_new_output"


@pytest.mark.any_backend
@pytest.mark.parametrize(
    ("arguments", "code"),
    [
        pytest.param({"mime_type": "text/nope", "content_text": "x"}, "invalid_mime_type", id="mime"),
        pytest.param({"mime_type": 7, "content_text": "x"}, "invalid_mime_type", id="mime-not-a-string"),
        pytest.param(
            {"mime_type": "text/plain", "content_text": "x", "metadata": [1]}, "invalid_metadata", id="meta-list"
        ),
        pytest.param(
            {"mime_type": "text/plain", "content_text": "x", "metadata": {"owner": "me"}},
            "invalid_metadata",
            id="meta-key",
        ),
        pytest.param(
            {"mime_type": "text/plain", "content_text": "x", "expires_at": "2001-01-01T00:00:00Z"},
            "invalid_expiry",
            id="expiry-past",
        ),
        pytest.param(
            {"mime_type": "text/plain", "content_text": "x", "expires_at": "soon"}, "invalid_expiry", id="expiry"
        ),
        pytest.param({"mime_type": "text/plain"}, "invalid_request", id="no-content"),
        pytest.param(
            {"mime_type": "text/plain", "content_text": "x", "content_base64": "eA=="}, "invalid_request", id="two"
        ),
        pytest.param({"mime_type": "text/plain", "content_base64": "not base64!"}, "invalid_request", id="bad-base64"),
        pytest.param({"mime_type": "text/plain", "content_base64": "eA"}, "invalid_request", id="base64-unpadded"),
        pytest.param({"mime_type": "text/plain", "content_text": "x", "label": "a\nb"}, "invalid_request", id="label"),
        pytest.param(
            {"mime_type": "text/plain", "content_text": "x", "public": "maybe"}, "invalid_request", id="public"
        ),
        pytest.param(
            {"mime_type": "text/plain", "content_text": "x", "idempotency_key": "ключ"}, "invalid_request", id="key"
        ),
        pytest.param({"content_text": "x"}, "invalid_request", id="mime-missing"),
    ],
)
async def test_save_refusals_have_the_rest_codes(
    mcp: Client, service: ArtifactService, account: Account, arguments: dict[str, Any], code: str
) -> None:
    body = refused(await mcp.call_tool("save_artifact", arguments), code)
    assert first_action(body) == "check_capabilities"
    assert body["agent_contract"]["retryable"] is False
    assert count_outputs(service, account) == 0 and blobs_of(service, account) == 0
    assert (await service.account(account.id)).free_remaining == 100


@pytest.mark.any_backend
@overrides(free_uploads=100, max_upload_bytes=1000)
@pytest.mark.parametrize("form", ["content_base64", "content_text", "path"])
async def test_too_large_is_refused_before_decoding(
    mcp: Client, service: ArtifactService, account: Account, files: Path, form: str
) -> None:
    data = b"x" * 1001
    (files / "big.bin").write_bytes(data)
    value = {"content_base64": base64.b64encode(data).decode(), "content_text": data.decode(), "path": "big.bin"}[form]
    refused(await call(mcp, "save_artifact", mime_type="text/plain", **{form: value}), "payload_too_large")
    assert count_outputs(service, account) == 0 and blobs_of(service, account) == 0
    # Exactly the limit is fine.
    ok(await call(mcp, "save_artifact", mime_type="text/plain", content_text="y" * 1000))


@overrides(free_uploads=1)
async def test_quota_exhausted(mcp: Client, service: ArtifactService, account: Account) -> None:
    await save_text(mcp, "one")
    body = refused(await call(mcp, "save_artifact", mime_type="text/plain", content_text="two"), "quota_exhausted")
    assert [a["action"] for a in body["agent_contract"]["next_actions"]] == ["buy_credits", "check_capabilities"]
    assert count_outputs(service, account) == 1 and blobs_of(service, account) == 1
    # A replay of what was stored costs nothing and still works.
    assert (await save_text(mcp, "one"))["replayed"] is True


@overrides(free_uploads=100, storage_limit_bytes=10)
async def test_storage_limit_reached(mcp: Client, service: ArtifactService, account: Account) -> None:
    body = refused(
        await call(mcp, "save_artifact", mime_type="text/plain", content_text="x" * 11), "storage_limit_reached"
    )
    assert first_action(body) == "delete_output"
    assert (await service.account(account.id)).free_remaining == 100


@pytest.mark.any_backend
@overrides(free_uploads=100, rate_limits=RateLimits(uploads_per_hour=1, reads_per_hour=2, deletes_per_hour=1))
async def test_rate_limited(mcp: Client) -> None:
    saved = ok(await call(mcp, "save_artifact", mime_type="text/plain", content_text="a"))
    result = await call(mcp, "save_artifact", mime_type="text/plain", content_text="b")
    body = refused(result, "rate_limited")
    retry = body["agent_contract"]["next_actions"][0]
    assert retry["action"] == "retry_after_wait" and (retry["method"], retry["endpoint"]) == ("POST", "/v1/outputs")
    assert retry["retry_after_seconds"] > 0 and body["agent_contract"]["retryable"] is True
    # Hosts that show the model only an error's text still learn how long to wait.
    assert f"after {retry['retry_after_seconds']} s" in result.content[0].text
    # An identical retry is a replay, which does not use the upload budget.
    assert ok(await call(mcp, "save_artifact", mime_type="text/plain", content_text="a"))["replayed"] is True
    output_id = saved["outputId"]
    ok(await call(mcp, "get_artifact", output_id=output_id))
    ok(await call(mcp, "list_artifacts"))
    body = refused(await call(mcp, "get_artifact", output_id=output_id), "rate_limited")
    retry = body["agent_contract"]["next_actions"][0]
    assert (retry["method"], retry["endpoint"]) == ("GET", f"/v1/outputs/{output_id}")
    ok(await call(mcp, "delete_artifact", output_id=output_id))
    body = refused(await call(mcp, "delete_artifact", output_id=output_id), "rate_limited")
    assert body["agent_contract"]["next_actions"][0]["method"] == "DELETE"


async def test_a_key_in_flight_is_retryable(mcp: Client, service: ArtifactService, account: Account) -> None:
    session = await service.begin_upload(account, "busy")
    async with session:
        body = refused(
            await call(mcp, "save_artifact", mime_type="text/plain", content_text="x", idempotency_key="busy"),
            "idempotency_in_flight",
        )
    retry = body["agent_contract"]["next_actions"][0]
    assert body["agent_contract"]["retryable"] is True
    assert (retry["action"], retry["method"], retry["endpoint"], retry["retry_after_seconds"]) == (
        "retry_after_wait",
        "POST",
        "/v1/outputs",
        5,
    )


async def test_a_storage_failure_is_upload_failed_and_leaves_a_failed_output(
    mcp: Client, service: ArtifactService, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A blob store that cannot store answers upload_failed, keeps a failed output and frees the key."""
    with monkeypatch.context() as patch:
        break_blob_commits(patch)
        body = refused(await call(mcp, "save_artifact", mime_type="text/plain", content_text="x"), "upload_failed")
    assert body["agent_contract"]["retryable"] is True and first_action(body) == "retry_same_request"
    failed = ok(await call(mcp, "list_artifacts", status="failed"))["outputs"]
    assert len(failed) == 1 and (await service.account(account.id)).free_remaining == 100
    got = ok(await call(mcp, "get_artifact", output_id=failed[0]["outputId"], include_content=True))
    assert got["status"] == "failed" and first_action(got) == "retry_same_request"
    # The slot was released: the identical call now stores it.
    again = ok(await call(mcp, "save_artifact", mime_type="text/plain", content_text="x"))
    assert (await full(mcp, again))["status"] == "ready"


# --- save_artifact from a local file (stdio) ---------------------------------------------------


async def test_save_from_a_file_inside_the_roots(mcp: Client, files: Path) -> None:
    (files / "sub").mkdir()
    (files / "sub" / "report.csv").write_bytes(b"a,b\n1,2\n")
    body = await full(
        mcp, ok(await call(mcp, "save_artifact", mime_type="text/csv", path="sub/report.csv", label="report.csv"))
    )
    assert body["sizeBytes"] == 8 and body["sha256"] == hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    again = ok(
        await call(
            mcp, "save_artifact", mime_type="text/csv", path=str(files / "sub" / "report.csv"), label="report.csv"
        )
    )
    assert again["outputId"] == body["outputId"] and again["replayed"] is True


@pytest.mark.any_backend
async def test_paths_cannot_leave_the_roots(
    mcp: Client, service: ArtifactService, account: Account, files: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("private")
    (files / "link.txt").symlink_to(secret)
    (files / "dir").mkdir()
    for path in ("../secret.txt", str(secret), "link.txt", "dir/../../secret.txt", "missing.txt", "dir", "/etc/passwd"):
        refused(await call(mcp, "save_artifact", mime_type="text/plain", path=path), "invalid_request")
    assert count_outputs(service, account) == 0


@pytest.mark.any_backend
async def test_a_server_without_roots_refuses_paths(service: ArtifactService, account: Account, files: Path) -> None:
    (files / "a.txt").write_text("a")
    async with Client(build_mcp_server(service, account_id=account.id)) as client:
        body = refused(
            await call(client, "save_artifact", mime_type="text/plain", path=str(files / "a.txt")), "invalid_request"
        )
        assert "stdio" in body["message"]


# --- get_artifact and the resource --------------------------------------------------------------


async def test_get_returns_metadata_contract_and_link(mcp: Client) -> None:
    saved = await save_text(mcp, "abc", label="a.txt")
    result = await call(mcp, "get_artifact", output_id=saved["outputId"])
    body = ok(result)
    assert {k: v for k, v in body.items() if k not in ("agent_contract", "replayed")} == {
        k: v for k, v in saved.items() if k not in ("agent_contract", "replayed")
    }
    assert [block.type for block in result.content] == ["text", "resource_link"]


@pytest.mark.parametrize(
    ("mime", "data", "kind"),
    [
        pytest.param("text/plain", "héllo".encode(), "text", id="text"),
        pytest.param("application/json", b'{"a": 1}', "text", id="json"),
        pytest.param("image/png", PNG, "image", id="image"),
        pytest.param("application/pdf", b"%PDF-1.4 tiny", "resource", id="pdf"),
    ],
)
async def test_get_with_content_inlines_small_artifacts(mcp: Client, mime: str, data: bytes, kind: str) -> None:
    saved = ok(await call(mcp, "save_artifact", mime_type=mime, content_base64=base64.b64encode(data).decode()))
    result = await call(mcp, "get_artifact", output_id=saved["outputId"], include_content=True)
    ok(result)
    assert [block.type for block in result.content] == ["text", "resource_link", kind]
    block = result.content[2]
    if block.type == "text":
        assert block.text == data.decode()
    elif block.type == "image":
        assert block.mime_type == mime and base64.b64decode(block.data) == data
    else:
        assert block.type == "resource" and isinstance(block.resource, BlobResourceContents)
        assert block.resource.mime_type == mime and base64.b64decode(block.resource.blob) == data


async def test_get_with_content_leaves_large_artifacts_to_the_resource(mcp: Client) -> None:
    saved = await save_text(mcp, "x" * (INLINE_CONTENT_MAX_BYTES + 1))
    result = await call(mcp, "get_artifact", output_id=saved["outputId"], include_content=True)
    ok(result)
    assert [block.type for block in result.content] == ["text", "resource_link"]
    assert str(INLINE_CONTENT_MAX_BYTES) in result.content[0].text


async def test_resource_serves_the_bytes_with_their_mime_type(mcp: Client) -> None:
    text = await save_text(mcp, "plain words")
    image = await full(
        mcp, ok(await call(mcp, "save_artifact", mime_type="image/png", content_base64=base64.b64encode(PNG).decode()))
    )
    (contents,) = (await mcp.read_resource(text["resourceUri"])).contents
    assert isinstance(contents, TextResourceContents)
    assert contents.mime_type == "text/plain" and contents.text == "plain words"
    (contents,) = (await mcp.read_resource(image["resourceUri"])).contents
    assert isinstance(contents, BlobResourceContents)
    assert contents.mime_type == "image/png" and base64.b64decode(contents.blob) == PNG
    templates = (await mcp.list_resource_templates()).resource_templates
    assert [t.uri_template for t in templates] == ["outputlayer://outputs/{output_id}"]


async def test_resource_errors_carry_the_code_and_contract(mcp: Client, service: ArtifactService) -> None:
    saved = await save_text(mcp)
    ok(await call(mcp, "delete_artifact", output_id=saved["outputId"]))
    for uri, code in (
        (saved["resourceUri"], "output_deleted"),
        ("outputlayer://outputs/out_nope", "output_not_found"),
        ("outputlayer://outputs/../etc", "output_not_found"),
    ):
        with pytest.raises(MCPError) as raised:
            await mcp.read_resource(uri)
        assert raised.value.error.data["error"] == code
        assert raised.value.error.data["agent_contract"]["next_actions"][0]["action"] == "create_new_output"


@pytest.mark.any_backend
async def test_get_unknown_and_foreign_outputs_are_not_found(
    mcp: Client, service: ArtifactService, files: Path
) -> None:
    other = await new_account(service)
    async with Client(build_mcp_server(service, account_id=other.id, file_roots=(files,))) as theirs:
        foreign = await save_text(theirs, "theirs")
    for output_id in ("out_nope", foreign["outputId"]):
        body = refused(await call(mcp, "get_artifact", output_id=output_id), "output_not_found")
        assert first_action(body) == "create_new_output"
    assert (await call(mcp, "list_artifacts")).structured_content["outputs"] == []


async def test_get_expired_and_deleted_show_the_output_as_an_error(
    mcp: Client, service: ArtifactService, clock: ManualClock
) -> None:
    short = await save_text(mcp, "short", expires_at=iso_ms(clock.now_ms() + 60_000))
    gone = await save_text(mcp, "gone")
    ok(await call(mcp, "delete_artifact", output_id=gone["outputId"]))
    clock.advance(61)
    for saved, status in ((short, "expired"), (gone, "deleted")):
        result = await call(mcp, "get_artifact", output_id=saved["outputId"], include_content=True)
        body = refused(result, f"output_{status}")
        assert body["status"] == status and body["outputId"] == saved["outputId"]
        assert body["contentUrl"] is None and body["agent_contract"]["content_accessible"] is False
        assert first_action(body) == "create_new_output"
        assert len(result.content) == 1


# --- share -------------------------------------------------------------------------------------


async def test_share_private_link_serves_bytes_without_a_key(
    mcp: Client, client: httpx2.AsyncClient, clock: ManualClock
) -> None:
    saved = await save_text(mcp, "shared words", expires_at=iso_ms(clock.now_ms() + 7_200_000))
    body = ok(await call(mcp, "share", output_id=saved["outputId"], expires_in_seconds=3600))
    assert body["shareUrl"].startswith("http://testserver/s/")
    assert body["shareExpiresAt"] == iso_ms(clock.now_ms() + 3_600_000)
    assert first_action(body) == "share_public_url" and body["agent_contract"]["safe_to_share"] is True
    response = await client.get(body["shareUrl"].removeprefix("http://testserver"))
    assert response.status_code == 200 and response.content == b"shared words"
    # Never past the output's own expiry.
    capped = ok(await call(mcp, "share", output_id=saved["outputId"], expires_in_seconds=86_400))
    assert capped["shareExpiresAt"] == saved["expiresAt"]
    # Dead once the link expires, and once the output is deleted.
    clock.advance(3601)
    assert (await client.get(body["shareUrl"].removeprefix("http://testserver"))).status_code == 410
    ok(await call(mcp, "delete_artifact", output_id=saved["outputId"]))
    assert (await client.get(capped["shareUrl"].removeprefix("http://testserver"))).status_code == 410


async def test_share_public_output_gives_its_public_url(mcp: Client) -> None:
    saved = await save_text(mcp, public=True)
    body = ok(await call(mcp, "share", output_id=saved["outputId"]))
    assert body["shareUrl"] == saved["publicUrl"] and body["shareExpiresAt"] == saved["expiresAt"]


@pytest.mark.any_backend
async def test_share_refusals(mcp: Client, clock: ManualClock) -> None:
    saved = await save_text(mcp, expires_at=iso_ms(clock.now_ms() + 60_000))
    refused(await call(mcp, "share", output_id=saved["outputId"], expires_in_seconds=30), "invalid_request")
    refused(await call(mcp, "share", output_id="out_nope"), "output_not_found")
    clock.advance(61)
    refused(await call(mcp, "share", output_id=saved["outputId"]), "output_expired")


# --- list_artifacts ----------------------------------------------------------------------------


async def test_list_pages_and_filters(mcp: Client) -> None:
    ids = [(await save_text(mcp, f"n{i}", label=f"{i}.txt"))["outputId"] for i in range(3)]
    png = ok(await call(mcp, "save_artifact", mime_type="image/png", content_base64=base64.b64encode(PNG).decode()))
    first = ok(await call(mcp, "list_artifacts", limit=2))
    assert [o["outputId"] for o in first["outputs"]] == [png["outputId"], ids[2]]
    assert first["pageInfo"]["hasMore"] is True and first_action(first) == "list_outputs"
    second = ok(await call(mcp, "list_artifacts", limit=2, cursor=first["pageInfo"]["nextCursor"]))
    assert [o["outputId"] for o in second["outputs"]] == [ids[1], ids[0]]
    assert second["pageInfo"] == {"nextCursor": None, "hasMore": False}
    images = ok(await call(mcp, "list_artifacts", mime_type="image/png"))
    assert [o["outputId"] for o in images["outputs"]] == [png["outputId"]]
    ok(await call(mcp, "delete_artifact", output_id=ids[0]))
    deleted = ok(await call(mcp, "list_artifacts", status="deleted"))
    assert [o["outputId"] for o in deleted["outputs"]] == [ids[0]]


@pytest.mark.any_backend
@pytest.mark.parametrize(
    "arguments",
    [{"limit": 0}, {"limit": 101}, {"limit": "many"}, {"status": "lost"}],
    ids=["zero", "too-many", "not-a-number", "status"],
)
async def test_list_refusals(mcp: Client, arguments: dict[str, Any]) -> None:
    body = refused(await mcp.call_tool("list_artifacts", arguments), "invalid_request")
    assert first_action(body) == "check_capabilities"


# --- delete_artifact ---------------------------------------------------------------------------


async def test_delete_frees_storage_and_repeats(mcp: Client, service: ArtifactService, account: Account) -> None:
    saved = await save_text(mcp, "12345")
    assert (await service.account(account.id)).storage_used_bytes == 5
    result = await call(mcp, "delete_artifact", output_id=saved["outputId"])
    body = ok(result)
    assert body["status"] == "deleted" and body["deletedAt"] and body["contentUrl"] is None
    assert first_action(body) == "create_new_output"
    assert [block.type for block in result.content] == ["text"]
    again = ok(await call(mcp, "delete_artifact", output_id=saved["outputId"]))
    assert again["deletedAt"] == body["deletedAt"]
    account_now = await service.account(account.id)
    assert account_now.storage_used_bytes == 0 and account_now.free_remaining == 99
    assert blobs_of(service, account) == 0


@pytest.mark.any_backend
async def test_delete_refusals(mcp: Client, clock: ManualClock) -> None:
    saved = await save_text(mcp, expires_at=iso_ms(clock.now_ms() + 60_000))
    refused(await call(mcp, "delete_artifact", output_id="out_nope"), "output_not_found")
    clock.advance(61)
    refused(await call(mcp, "delete_artifact", output_id=saved["outputId"]), "output_expired")


# --- who a call acts for, and the boundary -----------------------------------------------------


@pytest.mark.any_backend
async def test_a_server_without_an_account_refuses_every_tool(service: ArtifactService) -> None:
    async with Client(build_mcp_server(service)) as client:
        for tool, arguments in (
            ("save_artifact", {"mime_type": "text/plain", "content_text": "x"}),
            ("get_artifact", {"output_id": "out_x"}),
            ("share", {"output_id": "out_x"}),
            ("list_artifacts", {}),
            ("delete_artifact", {"output_id": "out_x"}),
        ):
            body = refused(await client.call_tool(tool, arguments), "missing_api_key")
            assert first_action(body) == "register_key"


@pytest.mark.any_backend
async def test_unexpected_failures_are_server_errors(
    mcp: Client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret detail")

    monkeypatch.setattr("store.content_sources.fetch", broken)
    body = refused(await call(mcp, "get_artifact", output_id="out_x"), "server_error")
    assert "secret" not in body["message"] and body["agent_contract"]["retryable"] is True
    retry = body["agent_contract"]["next_actions"][0]
    assert retry["action"] == "retry_after_wait" and retry["endpoint"] == "/v1/outputs/out_x"
    assert any(r.name == "outputlayer.mcp" and r.exc_info for r in caplog.records)


@pytest.mark.any_backend
async def test_legacy_handshake_clients_work(server: OutputLayerMCP) -> None:
    async with Client(server, mode="legacy") as client:
        saved = await save_text(client, "legacy")
        assert ok(await call(client, "get_artifact", output_id=saved["outputId"]))["status"] == "ready"


@pytest.mark.any_backend
def test_paths_outside_roots_are_not_probed(tmp_path: Path) -> None:
    """Whether a file exists outside the roots is not revealed: both answers are the same refusal."""
    from store.content_sources import file_source
    from store.errors import StoreError

    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "exists.txt").write_text("x")
    messages = []
    for name in ("exists.txt", "absent.txt"):
        with pytest.raises(StoreError) as raised:
            file_source(f"../{name}", (root.resolve(),), 100)
        messages.append(raised.value.message.replace(name, "NAME"))
    assert messages[0] == messages[1]


@pytest.mark.any_backend
def test_building_a_server_leaves_logging_to_the_entry_point(service: ArtifactService) -> None:
    import logging

    root = logging.getLogger()
    saved = list(root.handlers), root.level
    root.handlers[:] = []
    try:
        build_mcp_server(service)
        assert root.handlers == []
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])

"""Links over MCP (SPEC sections 11 and 14): large artifacts come out as signed download links, local
files keep their names, and upload links hand the agent's shell a curl command."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client

from store.content_sources import INLINE_CONTENT_MAX_BYTES
from tests.mcp.conftest import call, ok

pytestmark = pytest.mark.anyio


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"free_uploads": 100}


async def test_a_large_artifact_comes_with_a_keyless_download_link(
    mcp: Client, client: httpx2.AsyncClient, files: Path
) -> None:
    data = b"0123456789abcdef" * (INLINE_CONTENT_MAX_BYTES // 16 + 1)
    (files / "data.bin").write_bytes(data)
    saved = ok(await call(mcp, "save_artifact", path="data.bin"))
    result = await call(mcp, "get_artifact", output_id=saved["outputId"], include_content=True)
    body = ok(result)
    assert body["downloadUrl"].startswith("http://testserver/s/") and body["downloadExpiresAt"]
    assert result.content[0].type == "text"
    assert f"curl -sS -o data.bin {shlex.quote(body['downloadUrl'])}" in result.content[0].text
    assert [block.type for block in result.content] == ["text", "resource_link"]  # nothing inline
    downloaded = await client.get(body["downloadUrl"])
    assert downloaded.status_code == 200 and downloaded.content == data
    assert downloaded.headers["content-disposition"] == 'attachment; filename="data.bin"'


async def test_a_small_artifact_has_no_download_link(mcp: Client) -> None:
    saved = ok(await call(mcp, "save_artifact", mime_type="text/plain", content_text="small"))
    body = ok(await call(mcp, "get_artifact", output_id=saved["outputId"]))
    assert "downloadUrl" not in body


@pytest.mark.parametrize(
    ("name", "mime_type"),
    [
        ("report.csv", "text/csv"),
        ("page.html", "text/html"),
        ("data.json", "application/json"),
        ("photo.png", "image/png"),
        ("notes.md", "application/octet-stream"),  # text/markdown is not a supported type
        ("blob", "application/octet-stream"),
    ],
)
async def test_a_local_file_keeps_its_name_and_its_type_is_guessed(
    mcp: Client, files: Path, name: str, mime_type: str
) -> None:
    (files / name).write_bytes(b"some bytes")
    saved = ok(await call(mcp, "save_artifact", path=name))
    body = ok(await call(mcp, "get_artifact", output_id=saved["outputId"]))
    assert (body["label"], body["mimeType"]) == (name, mime_type)


async def test_an_explicit_label_and_type_win(mcp: Client, files: Path) -> None:
    (files / "out.txt").write_bytes(b"x,y\n")
    saved = ok(await call(mcp, "save_artifact", path="out.txt", label="table.csv", mime_type="text/csv"))
    body = ok(await call(mcp, "get_artifact", output_id=saved["outputId"]))
    assert (body["label"], body["mimeType"]) == ("table.csv", "text/csv")


async def test_an_upload_link_comes_with_a_curl_command_for_the_shell(mcp: Client, client: httpx2.AsyncClient) -> None:
    result = await call(mcp, "create_upload_link", mime_type="application/pdf", label="q3 report.pdf")
    link = ok(result)
    assert link["curl"] == f"curl -sS -T 'q3 report.pdf' {shlex.quote(link['uploadUrl'])}"
    assert link["curl"] in result.content[0].text
    stored = (await client.put(link["uploadUrl"], content=b"%PDF-1.7")).json()
    body = ok(await call(mcp, "get_artifact", output_id=stored["outputId"]))
    assert (body["label"], body["mimeType"], body["sizeBytes"]) == ("q3 report.pdf", "application/pdf", 8)
    # Without an idempotency key, each call is a new link.
    again = ok(await call(mcp, "create_upload_link", mime_type="application/pdf", label="q3 report.pdf"))
    assert again["uploadId"] != link["uploadId"]

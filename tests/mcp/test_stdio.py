"""``outputlayer mcp`` over stdio, started exactly as ``mcp.json`` registers it (SPEC section 11)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from outputlayer_mcp.card import STDIO_ARGS, STDIO_COMMAND
from store import Settings, open_service
from store.local import LOCAL_KEY_FILE
from tests.mcp.conftest import call, ok, refused

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = str(Path(sys.executable).parent)
START_TIMEOUT_SECONDS = 60


def registration() -> dict[str, Any]:
    entry: dict[str, Any] = json.loads((REPO / "mcp.json").read_text("utf-8"))["mcpServers"]["outputlayer"]
    return entry


def from_mcp_json(cwd: Path, **env: str) -> StdioServerParameters:
    """The server as an MCP client starts it from ``mcp.json``: its command found on PATH (the one this
    virtual environment installed), its args and env, run from the project directory."""
    entry = registration()
    path = os.pathsep.join([VENV_BIN, os.environ.get("PATH", "")])
    return StdioServerParameters(
        command=entry["command"], args=entry["args"], env={**entry["env"], "PATH": path, **env}, cwd=cwd
    )


def test_mcp_json_registers_the_stdio_server_and_shows_the_http_form() -> None:
    servers = json.loads((REPO / "mcp.json").read_text("utf-8"))["mcpServers"]
    assert (servers["outputlayer"]["command"], servers["outputlayer"]["args"]) == (STDIO_COMMAND, list(STDIO_ARGS))
    http = servers["outputlayer-http"]
    assert http["type"] == "http" and http["url"].endswith("/mcp")
    assert http["headers"]["Authorization"].startswith("Bearer ")


async def test_stdio_server_from_mcp_json_acts_for_a_remembered_local_account(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("from a local file")
    with anyio.fail_after(START_TIMEOUT_SECONDS):
        async with Client(from_mcp_json(tmp_path)) as first:
            tools = {tool.name for tool in (await first.list_tools()).tools}
            assert tools == {
                "save_artifact",
                "get_artifact",
                "share",
                "create_upload_link",
                "list_artifacts",
                "delete_artifact",
            }
            saved = ok(await call(first, "save_artifact", mime_type="text/plain", path="notes.txt", label="notes"))
            refused(
                await call(first, "save_artifact", mime_type="text/plain", path="../outside.txt"), "invalid_request"
            )
            result = await call(first, "get_artifact", output_id=saved["outputId"], include_content=True)
            assert ok(result)["sizeBytes"] == 17
            assert result.content[-1].type == "text" and result.content[-1].text == "from a local file"
    key_file = tmp_path / "outputlayer-data" / LOCAL_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().strip().startswith("ol_live_")
    # A second start acts for the same account: it sees the first start's output.
    with anyio.fail_after(START_TIMEOUT_SECONDS):
        async with Client(from_mcp_json(tmp_path)) as second:
            listed = ok(await call(second, "list_artifacts"))
            assert [o["outputId"] for o in listed["outputs"]] == [saved["outputId"]]


async def test_stdio_server_acts_for_the_api_key(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "outputlayer-data")
    service = open_service(settings)
    try:
        registered, _ = await service.register({}, "127.0.0.1")
        with anyio.fail_after(START_TIMEOUT_SECONDS):
            async with Client(from_mcp_json(tmp_path, OUTPUTLAYER_API_KEY=registered["apiKey"])) as client:
                saved = ok(await call(client, "save_artifact", mime_type="text/plain", content_text="keyed"))
        page = await service.list_outputs(await service.account(registered["accountId"]))
        assert [o["outputId"] for o in page["outputs"]] == [saved["outputId"]]
        assert not (tmp_path / "outputlayer-data" / LOCAL_KEY_FILE).exists()
    finally:
        service.close()


def test_a_bad_api_key_stops_the_server_with_one_clear_line(tmp_path: Path) -> None:
    params = from_mcp_json(tmp_path, OUTPUTLAYER_API_KEY="ol_live_" + "0" * 64)
    finished = subprocess.run(
        [str(Path(VENV_BIN) / params.command), *params.args],
        env={**(params.env or {})},
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=START_TIMEOUT_SECONDS,
        check=False,
    )
    assert finished.returncode == 1
    assert finished.stdout == b""
    assert b"invalid_api_key: OUTPUTLAYER_API_KEY" in finished.stderr

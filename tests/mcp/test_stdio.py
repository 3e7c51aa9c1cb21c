"""``outputlayer mcp`` over stdio, started exactly as ``mcp.json`` registers it (SPEC section 11)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
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
            assert tools == {"save_artifact", "get_artifact", "share", "list_artifacts", "delete_artifact"}
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


def test_a_stdio_message_nested_too_deep_is_answered_with_its_id(tmp_path: Path) -> None:
    """The SDK drops a line it cannot parse; the server answers it with a JSON-RPC error instead."""
    deep = "[" * 1_500 + "]" * 1_500
    lines = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "raw", "version": "1"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
    ]
    wire = "".join(json.dumps(line) + "\n" for line in lines)
    wire += (
        '{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "save_artifact", "arguments": '
        '{"mime_type": "text/plain", "content_text": "x", "metadata": {"custom": ' + deep + "}}}}\n"
    )
    wire += '{"jsonrpc": "2.0", "id": 3, "method": "tools/list"}\n'
    wire += "not json at all\n"
    params = from_mcp_json(tmp_path)
    process = subprocess.Popen(
        [params.command, *params.args],
        cwd=tmp_path,
        env={**os.environ, **(params.env or {}), "OUTPUTLAYER_DATA_DIR": str(tmp_path / "data")},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    # A hung server is killed, which ends readline with EOF and fails the test instead of hanging it.
    watchdog = threading.Timer(START_TIMEOUT_SECONDS, process.kill)
    watchdog.start()
    try:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(wire)
        process.stdin.flush()
        answers: dict[Any, dict[str, Any]] = {}
        while len(answers) < 4:
            line = process.stdout.readline()
            assert line, f"the server closed stdout after answering {sorted(map(str, answers))}"
            message = json.loads(line)
            answers[message.get("id")] = message
        assert answers[2]["error"]["data"]["error"] == "invalid_request"
        assert "tools" in answers[3]["result"]
        assert answers[None]["error"]["data"]["error"] == "invalid_request"
    finally:
        watchdog.cancel()
        process.kill()
        process.wait(timeout=START_TIMEOUT_SECONDS)

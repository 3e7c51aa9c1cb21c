"""``outputlayer mcp`` over stdio, started exactly as ``.mcp.json`` registers it (SPEC section 11)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import threading
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters

from outputlayer_mcp.card import STDIO_ARGS, STDIO_COMMAND
from store import Settings, open_service
from store.local import LOCAL_KEY_FILE
from tests.factories import TOOL_NAMES
from tests.mcp.conftest import call, ok, refused

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 60


def registration(name: str = ".mcp.json") -> dict[str, Any]:
    entry: dict[str, Any] = json.loads((REPO / name).read_text("utf-8"))["mcpServers"]["outputlayer"]
    return entry


def from_mcp_json(data: Path, **env: str) -> StdioServerParameters:
    """The server exactly as Claude Code starts it from the project's ``.mcp.json``: its command and
    args, run from the project directory, with the file's env. Only where the data and the readable
    files live is moved (to ``data``, a test directory), so tests leave the project as they found it."""
    entry = registration()
    where = {"OUTPUTLAYER_DATA_DIR": str(data / "outputlayer-data"), "OUTPUTLAYER_MCP_ROOTS": str(data)}
    return StdioServerParameters(
        command=entry["command"], args=entry["args"], env={**entry["env"], **where, **env}, cwd=REPO
    )


def test_mcp_json_registers_the_stdio_server_and_shows_the_http_form() -> None:
    servers = json.loads((REPO / ".mcp.json").read_text("utf-8"))["mcpServers"]
    # What the README's install creates, named relative to the project, as Claude Code runs it.
    assert (servers["outputlayer"]["command"], servers["outputlayer"]["args"]) == (".venv/bin/outputlayer", ["mcp"])
    assert (REPO / servers["outputlayer"]["command"]).is_file()
    assert (Path(servers["outputlayer"]["command"]).name, servers["outputlayer"]["args"]) == (
        STDIO_COMMAND,
        list(STDIO_ARGS),
    )
    # Only servers that start by themselves: an HTTP entry would show as failed until a server runs.
    assert list(servers) == ["outputlayer"]
    # mcp.json (read by other clients) registers the same stdio server and shows the HTTP form.
    shown = json.loads((REPO / "mcp.json").read_text("utf-8"))["mcpServers"]
    assert shown["outputlayer"] == servers["outputlayer"]
    http = shown["outputlayer-http"]
    assert http["type"] == "http" and http["url"].endswith("/mcp")
    assert http["headers"]["Authorization"].startswith("Bearer ")


async def test_stdio_server_from_mcp_json_acts_for_a_remembered_local_account(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("from a local file")
    with anyio.fail_after(START_TIMEOUT_SECONDS):
        async with Client(from_mcp_json(tmp_path)) as first:
            tools = {tool.name for tool in (await first.list_tools()).tools}
            assert tools == set(TOOL_NAMES)
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
        registered, _ = await service.register(client="127.0.0.1")
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
        [str(REPO / params.command), *params.args],
        env={**(params.env or {})},
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=START_TIMEOUT_SECONDS,
        check=False,
    )
    assert finished.returncode == 1
    assert finished.stdout == b""
    assert b"invalid_api_key: OUTPUTLAYER_API_KEY" in finished.stderr


TEN_MB = 10_000_000


def ten_mb_file(where: Path) -> tuple[Path, str]:
    path = where / "big.bin"
    block = bytes(range(256)) * 4096
    with path.open("wb") as handle:
        for start in range(0, TEN_MB, len(block)):
            handle.write(block[: TEN_MB - start])
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


async def test_an_agent_uploads_10_mb_through_a_link_and_shares_it(tmp_path: Path) -> None:
    """The stdio server as .mcp.json starts it: a link, a PUT from the agent's shell (no key), a share link
    a person opens without a key; every URL absolute and served while the MCP server runs."""
    path, digest = ten_mb_file(tmp_path)
    with anyio.fail_after(START_TIMEOUT_SECONDS):
        async with Client(from_mcp_json(tmp_path)) as agent, httpx2.AsyncClient(timeout=60) as shell:
            link = ok(await call(agent, "create_upload_link", mime_type="application/octet-stream", label="big.bin"))
            assert link["uploadUrl"].startswith("http://127.0.0.1:")
            with path.open("rb") as body:
                stored = await shell.put(link["uploadUrl"], content=body.read())
            assert stored.status_code == 201, stored.text
            output = stored.json()
            assert (output["sizeBytes"], output["sha256"]) == (TEN_MB, digest)
            shared = ok(await call(agent, "share", output_id=output["outputId"]))
            digest_received = hashlib.sha256()
            async with shell.stream("GET", shared["shareUrl"]) as download:
                assert download.status_code == 200
                assert download.headers["content-disposition"] == 'attachment; filename="big.bin"'
                async for chunk in download.aiter_bytes():
                    digest_received.update(chunk)
            assert digest_received.hexdigest() == digest
            got = ok(await call(agent, "get_artifact", output_id=output["outputId"]))
            assert got["contentUrl"].startswith("http://127.0.0.1:") and got["downloadUrl"].startswith("http://")


class RawStdio:
    """The stdio server driven with raw JSON-RPC lines, to count exactly what crosses the wire."""

    def __init__(self, params: StdioServerParameters) -> None:
        self.process = subprocess.Popen(
            [str(REPO / params.command), *params.args],
            cwd=REPO,
            env={**os.environ, **(params.env or {})},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.traffic: list[str] = []

    def send(self, message: dict[str, Any]) -> None:
        line = json.dumps(message, separators=(",", ":"))
        self.traffic.append(line)
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline().rstrip("\n")
        self.traffic.append(line)
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=START_TIMEOUT_SECONDS)


def test_tools_list_and_save_by_path_and_share_fit_the_budget(tmp_path: Path) -> None:
    """SPEC section 11: tools/list at most 8,000 characters; saving a 10 MB file by path and sharing it at
    most 1,200 characters of JSON-RPC in all (the two compact requests and their two answers)."""
    ten_mb_file(tmp_path)
    server = RawStdio(from_mcp_json(tmp_path))
    try:
        hello = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
        server.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello})
        server.receive()
        server.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        server.send({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        server.receive()
        assert len(server.traffic[-1]) <= 8000
        start = len(server.traffic)
        arguments = {"path": "big.bin"}
        server.send(
            {
                "jsonrpc": "2.0",
                "id": 3,
                "method": "tools/call",
                "params": {"name": "save_artifact", "arguments": arguments},
            }
        )
        saved = server.receive()["result"]["structuredContent"]
        share = {"name": "share", "arguments": {"output_id": saved["outputId"]}}
        server.send({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": share})
        shared = server.receive()["result"]["structuredContent"]
        assert sum(len(line) for line in server.traffic[start:]) <= 1200, server.traffic[start:]
        # The link is absolute and opens without a key while the server runs.
        response = httpx2.get(shared["shareUrl"], timeout=60)
        assert response.status_code == 200 and len(response.content) == TEN_MB
    finally:
        server.close()


def printed_registration(cwd: Path) -> dict[str, Any]:
    """What ``outputlayer mcp-config`` prints when run in ``cwd``, its paths checked."""
    command = REPO / registration()["command"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTPUTLAYER_")}
    printed = subprocess.run(
        [str(command), "mcp-config"], cwd=cwd, env=env, capture_output=True, check=True, timeout=60
    )
    entry: dict[str, Any] = json.loads(printed.stdout)["mcpServers"]["outputlayer"]
    assert Path(entry["command"]).is_absolute() and Path(entry["command"]).is_file()
    assert entry["env"] == {
        "OUTPUTLAYER_DATA_DIR": str((cwd / "outputlayer-data").resolve()),
        "OUTPUTLAYER_MCP_ROOTS": str(cwd.resolve()),
    }
    (cwd / "a.txt").write_text("anywhere")
    (cwd / "elsewhere").mkdir()
    return entry


async def test_mcp_config_prints_a_registration_that_starts_from_anywhere(tmp_path: Path) -> None:
    """``outputlayer mcp-config``: absolute paths, for clients that start servers from their own directory."""
    entry = printed_registration(tmp_path)
    params = StdioServerParameters(
        command=entry["command"], args=entry["args"], env=entry["env"], cwd=tmp_path / "elsewhere"
    )
    with anyio.fail_after(START_TIMEOUT_SECONDS):
        async with Client(params) as client:
            saved = ok(await call(client, "save_artifact", path="a.txt"))
            assert ok(await call(client, "get_artifact", output_id=saved["outputId"]))["label"] == "a.txt"


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
        [str(REPO / params.command), *params.args],
        cwd=REPO,
        env={**os.environ, **(params.env or {})},
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

"""Real ``outputlayer serve`` processes for tests that need a socket, several processes or a kill."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx2

OUTPUTLAYER = str(Path(sys.executable).with_name("outputlayer"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_bytes(self) -> int:
        """Resident memory of the server process (Linux)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def wait_healthy(base_url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log_path.read_text()[-3000:]}")
        with contextlib.suppress(httpx2.HTTPError):
            if httpx2.get(f"{base_url}/health", timeout=1.0).status_code == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"server not healthy after {timeout}s:\n{log_path.read_text()[-3000:]}")


def child_env(settings: Mapping[str, str]) -> dict[str, str]:
    """The environment of a server process: ours without ``OUTPUTLAYER_*``, then ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTPUTLAYER_")}
    return env | dict(settings)


def spawn(log_dir: Path, env: Mapping[str, str]) -> Server:
    """Start one ``outputlayer serve`` on a free port with exactly ``env``; not yet waited for."""
    port = free_port()
    log_path = log_dir / f"serve-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [OUTPUTLAYER, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return Server(process, f"http://127.0.0.1:{port}", log_path)


@contextlib.contextmanager
def running_servers(log_dir: Path, settings: Mapping[str, str], count: int = 1) -> Iterator[list[Server]]:
    """``count`` ``outputlayer serve`` processes with ``OUTPUTLAYER_*`` from ``settings``, started together
    and each waited for until healthy; all stopped after."""
    env = child_env(settings)
    servers: list[Server] = []
    try:
        servers.extend(spawn(log_dir, env) for _ in range(count))
        for index in range(count):
            for attempt in range(3):
                server = servers[index]
                try:
                    wait_healthy(server.base_url, server.process, server.log_path, timeout=60.0)
                    break
                except RuntimeError:
                    # The free port was taken by another process before the server bound it: pick another.
                    if attempt == 2 or "address already in use" not in server.log_path.read_text():
                        raise
                    servers[index] = spawn(log_dir, env)
        yield servers
    finally:
        for server in servers:
            server.stop()


@contextlib.contextmanager
def running_server(data_dir: Path, env: Mapping[str, str] | None = None) -> Iterator[Server]:
    """Start ``outputlayer serve`` on a free port over ``data_dir`` with ``OUTPUTLAYER_*`` from ``env``;
    always stopped after."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with running_servers(data_dir, {"OUTPUTLAYER_DATA_DIR": str(data_dir), **(env or {})}) as (server,):
        yield server

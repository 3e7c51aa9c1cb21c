"""Settings: every knob of the server, read once from the environment into one frozen object.

Nothing else in the project reads ``os.environ``. The entry point calls :meth:`Settings.from_env`,
and everything else receives the object (or values from it) as an argument. A bad value raises
:class:`SettingsError` whose message is one line naming the variable, so start-up can print it
and stop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PREFIX = "OUTPUTLAYER_"
GLOBAL_CEILING_BYTES = 52_428_800
# Room in an MCP request body besides the base64 content: the JSON-RPC envelope, the other tool
# arguments (metadata is at most a few KiB) and JSON escaping of the label.
MCP_ENVELOPE_BYTES = 1_048_576
# Hosts and origins a local server is always reached under (any port).
LOCAL_HOSTS = ("127.0.0.1:*", "localhost:*", "[::1]:*")
LOCAL_ORIGINS = ("http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*")


class SettingsError(ValueError):
    """A setting has a value the server cannot run with; the message names the variable."""


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Requests allowed per rolling window, by route family (SPEC section 8)."""

    uploads_per_hour: int = 60
    reads_per_hour: int = 2000
    deletes_per_hour: int = 200
    credits_per_hour: int = 60
    registrations_per_hour: int = 10
    discovery_per_minute: int = 60


@dataclass(frozen=True, slots=True)
class Settings:
    """The validated configuration of one server process (SPEC section 9)."""

    data_dir: Path = Path("./outputlayer-data")
    database_url: str = ""
    blob_url: str = ""
    base_url: str = ""
    public_base_url: str = ""
    free_uploads: int = 5
    storage_limit_bytes: int = 262_144_000
    max_upload_bytes: int = 26_214_400
    default_ttl_seconds: int = 604_800
    max_ttl_seconds: int = 2_592_000
    plan_enforcement: bool = False
    rate_limits_enabled: bool = True
    rate_limits: RateLimits = field(default_factory=RateLimits)
    sweep_interval_seconds: int = 60
    stale_upload_seconds: int = 60
    db_pool_size: int = 10
    paypal_base_url: str = ""
    paypal_client_id: str = ""
    paypal_client_secret: str = field(default="", repr=False)  # never printed
    paypal_webhook_id: str = ""
    api_key: str = ""
    mcp_roots: tuple[Path, ...] = ()
    # Empty means "derived" (see the properties below); ("*",) for hosts turns the check off.
    mcp_allowed_hosts: tuple[str, ...] = ()
    mcp_allowed_origins: tuple[str, ...] = ()
    # 0 means "derived from the largest upload a plan allows".
    mcp_max_request_bytes: int = 0
    upload_link_ttl_seconds: int = 3600

    def __post_init__(self) -> None:
        data_dir = self.data_dir.resolve()
        object.__setattr__(self, "data_dir", data_dir)
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{data_dir / 'outputlayer.db'}")
        if not self.blob_url:
            object.__setattr__(self, "blob_url", f"file://{data_dir / 'blobs'}")
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        object.__setattr__(self, "public_base_url", self.public_base_url.rstrip("/"))
        _check_positive("MAX_UPLOAD_BYTES", self.max_upload_bytes)
        if self.max_upload_bytes > GLOBAL_CEILING_BYTES:
            raise SettingsError(
                f"{PREFIX}MAX_UPLOAD_BYTES: {self.max_upload_bytes} is above the {GLOBAL_CEILING_BYTES}-byte ceiling"
            )
        _check_positive("DEFAULT_TTL_SECONDS", self.default_ttl_seconds)
        _check_positive("MAX_TTL_SECONDS", self.max_ttl_seconds)
        if self.default_ttl_seconds > self.max_ttl_seconds:
            raise SettingsError(f"{PREFIX}DEFAULT_TTL_SECONDS: must not exceed OUTPUTLAYER_MAX_TTL_SECONDS")
        _check_positive("SWEEP_INTERVAL_SECONDS", self.sweep_interval_seconds)
        _check_positive("STALE_UPLOAD_SECONDS", self.stale_upload_seconds)
        _check_positive("DB_POOL_SIZE", self.db_pool_size)
        _check_positive("UPLOAD_LINK_TTL_SECONDS", self.upload_link_ttl_seconds)
        if self.free_uploads < 0:
            raise SettingsError(f"{PREFIX}FREE_UPLOADS: must be 0 or more")
        if self.storage_limit_bytes < 0:
            raise SettingsError(f"{PREFIX}STORAGE_LIMIT_BYTES: must be 0 or more")
        scheme = self.database_url.split(":", 1)[0]
        if scheme not in ("sqlite", "postgresql", "postgres", "postgresql+psycopg"):
            raise SettingsError(f"{PREFIX}DATABASE_URL: must start with sqlite:/// or postgresql://")
        if not self.blob_url.startswith(("file://", "s3://")):
            raise SettingsError(f"{PREFIX}BLOB_URL: must start with file:// or s3://")
        for name in ("base_url", "public_base_url", "paypal_base_url"):
            value = getattr(self, name)
            if value and not value.startswith(("http://", "https://")):
                raise SettingsError(f"{PREFIX}{name.upper()}: must be an absolute http(s) URL, got {value!r}")
        if self.mcp_max_request_bytes < 0:
            raise SettingsError(
                f"{PREFIX}MCP_MAX_REQUEST_BYTES: must be a positive integer, got {self.mcp_max_request_bytes}"
            )
        for host in self.mcp_allowed_hosts:
            if host != "*" and (not host or any(c in host for c in "/ ,") or "://" in host):
                raise SettingsError(
                    f"{PREFIX}MCP_ALLOWED_HOSTS: {host!r} is not a host or host:port (e.g. api.example.com)"
                )
        if "*" in self.mcp_allowed_hosts and len(self.mcp_allowed_hosts) > 1:
            raise SettingsError(f"{PREFIX}MCP_ALLOWED_HOSTS: '*' turns the check off and cannot be combined with hosts")
        for origin in self.mcp_allowed_origins:
            scheme, _, rest = origin.partition("://")
            if scheme not in ("http", "https") or not rest or "/" in rest:
                raise SettingsError(
                    f"{PREFIX}MCP_ALLOWED_ORIGINS: {origin!r} is not an origin (e.g. https://app.example.com)"
                )

    @property
    def billing_enabled(self) -> bool:
        """PayPal billing runs only with all four settings (SPEC section 7)."""
        return bool(
            self.paypal_base_url and self.paypal_client_id and self.paypal_client_secret and self.paypal_webhook_id
        )

    def with_base_url(self, base_url: str) -> Settings:
        """Fill in the base URL the server is reached at, when no explicit one was configured."""
        if self.base_url:
            return self
        return dataclasses.replace(self, base_url=base_url)

    @property
    def effective_public_base_url(self) -> str:
        return self.public_base_url or f"{self.base_url}/public"

    @property
    def mcp_dns_rebinding_protection(self) -> bool:
        """False only when the operator said ``OUTPUTLAYER_MCP_ALLOWED_HOSTS=*`` (a proxy owns ``Host``)."""
        return self.mcp_allowed_hosts != ("*",)

    @property
    def effective_mcp_allowed_hosts(self) -> tuple[str, ...]:
        """``Host`` values ``/mcp`` answers: the configured list, else the base URL's host and local names."""
        if self.mcp_allowed_hosts:
            return self.mcp_allowed_hosts
        hosts = list(LOCAL_HOSTS)
        hostname = _hostname(self.base_url)
        if hostname:
            # With and without a port: a proxy may forward either form of the public name.
            hosts[:0] = [hostname, f"{hostname}:*"]
        return tuple(dict.fromkeys(hosts))

    @property
    def effective_mcp_allowed_origins(self) -> tuple[str, ...]:
        """Browser origins ``/mcp`` accepts (requests without ``Origin`` always pass)."""
        if self.mcp_allowed_origins:
            return self.mcp_allowed_origins
        origins = list(LOCAL_ORIGINS)
        scheme, _, rest = self.base_url.partition("://")
        if rest:
            origins.insert(0, f"{scheme}://{rest.split('/', 1)[0]}")
        return tuple(dict.fromkeys(origins))

    @property
    def effective_mcp_max_request_bytes(self) -> int:
        """The largest ``/mcp`` request body: enough for the largest upload as base64 plus its envelope."""
        if self.mcp_max_request_bytes:
            return self.mcp_max_request_bytes
        largest = GLOBAL_CEILING_BYTES if self.plan_enforcement else min(self.max_upload_bytes, GLOBAL_CEILING_BYTES)
        return 4 * -(-largest // 3) + MCP_ENVELOPE_BYTES

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build settings from ``OUTPUTLAYER_*`` variables; unknown variables are ignored."""
        values: dict[str, Any] = {}
        rates: dict[str, int] = {}
        for name, value in environ.items():
            if not name.startswith(PREFIX):
                continue
            key = name[len(PREFIX) :].lower()
            if key.startswith("rate_") and key != "rate_limits":
                rate_name = key[len("rate_") :]
                if rate_name not in RateLimits.__dataclass_fields__:
                    raise SettingsError(f"{name}: unknown rate limit (known: {', '.join(_rate_names())})")
                rates[rate_name] = _parse_int(name, value, minimum=1)
            elif key in _PARSERS:
                field_name, parser = _PARSERS[key]
                values[field_name] = parser(name, value)
        if rates:
            values["rate_limits"] = RateLimits(**rates)
        return cls(**values)


def _hostname(url: str) -> str:
    """The host of an absolute URL without its port, lower-cased (``[::1]`` keeps its brackets)."""
    _, _, rest = url.partition("://")
    authority = rest.split("/", 1)[0].rsplit("@", 1)[-1].lower()
    if authority.startswith("["):
        return authority.split("]", 1)[0] + "]"
    return authority.split(":", 1)[0]


def _rate_names() -> list[str]:
    return ["OUTPUTLAYER_RATE_" + n.upper() for n in RateLimits.__dataclass_fields__]


def _check_positive(name: str, value: int) -> None:
    if value <= 0:
        raise SettingsError(f"{PREFIX}{name}: must be a positive integer, got {value}")


def _parse_int(name: str, value: str, minimum: int = 0) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise SettingsError(f"{name}: must be an integer, got {value!r}") from None
    if number < minimum:
        raise SettingsError(f"{name}: must be at least {minimum}, got {number}")
    return number


def _parse_switch(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("on", "true", "1", "yes"):
        return True
    if lowered in ("off", "false", "0", "no"):
        return False
    raise SettingsError(f"{name}: must be 'on' or 'off', got {value!r}")


def _parse_text(name: str, value: str) -> str:
    return value.strip()


def _parse_path(name: str, value: str) -> Path:
    if not value.strip():
        raise SettingsError(f"{name}: must not be empty")
    return Path(value.strip()).expanduser()


def _parse_roots(name: str, value: str) -> tuple[Path, ...]:
    parts = [p for p in value.split(":") if p.strip()]
    return tuple(Path(p.strip()).expanduser().resolve() for p in parts)


def _parse_list(name: str, value: str) -> tuple[str, ...]:
    """A comma-separated list; blanks are dropped, so an empty value means "derived"."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _int_field(field_name: str) -> tuple[str, Any]:
    return field_name, _parse_int


_PARSERS: dict[str, tuple[str, Any]] = {
    "data_dir": ("data_dir", _parse_path),
    "database_url": ("database_url", _parse_text),
    "blob_url": ("blob_url", _parse_text),
    "base_url": ("base_url", _parse_text),
    "public_base_url": ("public_base_url", _parse_text),
    "free_uploads": _int_field("free_uploads"),
    "storage_limit_bytes": _int_field("storage_limit_bytes"),
    "max_upload_bytes": _int_field("max_upload_bytes"),
    "default_ttl_seconds": _int_field("default_ttl_seconds"),
    "max_ttl_seconds": _int_field("max_ttl_seconds"),
    "sweep_interval_seconds": _int_field("sweep_interval_seconds"),
    "stale_upload_seconds": _int_field("stale_upload_seconds"),
    "db_pool_size": _int_field("db_pool_size"),
    "plan_enforcement": ("plan_enforcement", _parse_switch),
    "rate_limits": ("rate_limits_enabled", _parse_switch),
    "paypal_base_url": ("paypal_base_url", _parse_text),
    "paypal_client_id": ("paypal_client_id", _parse_text),
    "paypal_client_secret": ("paypal_client_secret", _parse_text),
    "paypal_webhook_id": ("paypal_webhook_id", _parse_text),
    "api_key": ("api_key", _parse_text),
    "mcp_roots": ("mcp_roots", _parse_roots),
    "mcp_allowed_hosts": ("mcp_allowed_hosts", _parse_list),
    "mcp_allowed_origins": ("mcp_allowed_origins", _parse_list),
    "mcp_max_request_bytes": _int_field("mcp_max_request_bytes"),
    "upload_link_ttl_seconds": _int_field("upload_link_ttl_seconds"),
}

"""Settings.from_env (SPEC section 9): every variable is read, every bad value is one clear line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from store import Settings, SettingsError
from store.settings import RateLimits


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def from_env(data_dir: Path, **variables: str) -> Settings:
    environ = {"OUTPUTLAYER_DATA_DIR": str(data_dir)}
    environ.update({f"OUTPUTLAYER_{name}": value for name, value in variables.items()})
    return Settings.from_env(environ)


def test_empty_environment_gives_the_spec_defaults(data_dir: Path) -> None:
    """With only a data dir set, every value is the SPEC section 9 default."""
    settings = from_env(data_dir)
    assert settings.data_dir == data_dir.resolve()
    assert settings.database_url == f"sqlite:///{data_dir.resolve() / 'outputlayer.db'}"
    assert settings.blob_url == f"file://{data_dir.resolve() / 'blobs'}"
    assert settings.free_uploads == 5
    assert settings.storage_limit_bytes == 262_144_000
    assert settings.max_upload_bytes == 26_214_400
    assert settings.default_ttl_seconds == 604_800
    assert settings.max_ttl_seconds == 2_592_000
    assert settings.plan_enforcement is False
    assert settings.rate_limits_enabled is True
    assert settings.rate_limits == RateLimits(
        uploads_per_hour=60,
        reads_per_hour=2000,
        deletes_per_hour=200,
        credits_per_hour=60,
        registrations_per_hour=10,
        discovery_per_minute=60,
    )
    assert settings.billing_enabled is False


def test_variables_without_the_prefix_are_ignored(data_dir: Path) -> None:
    """Only OUTPUTLAYER_* variables are read."""
    settings = Settings.from_env({"OUTPUTLAYER_DATA_DIR": str(data_dir), "FREE_UPLOADS": "x", "PATH": "/bin"})
    assert settings.free_uploads == 5


@pytest.mark.parametrize(
    ("variable", "value", "attribute", "expected"),
    [
        pytest.param(
            "DATABASE_URL",
            "postgresql://u:p@db:5432/ol",
            "database_url",
            "postgresql://u:p@db:5432/ol",
            id="database-url-postgres",
        ),
        pytest.param(
            "DATABASE_URL", "sqlite:////var/ol.db", "database_url", "sqlite:////var/ol.db", id="database-url-sqlite"
        ),
        pytest.param(
            "BLOB_URL",
            "s3://A:S@127.0.0.1:9000/b?secure=false",
            "blob_url",
            "s3://A:S@127.0.0.1:9000/b?secure=false",
            id="blob-url-s3",
        ),
        pytest.param("BLOB_URL", "file:///srv/blobs", "blob_url", "file:///srv/blobs", id="blob-url-file"),
        pytest.param(
            "BASE_URL", "https://api.example.com/", "base_url", "https://api.example.com", id="base-url-trailing-slash"
        ),
        pytest.param(
            "PUBLIC_BASE_URL",
            "https://cdn.example.com/p/",
            "public_base_url",
            "https://cdn.example.com/p",
            id="public-base-url",
        ),
        pytest.param("FREE_UPLOADS", "12", "free_uploads", 12, id="free-uploads"),
        pytest.param("FREE_UPLOADS", "0", "free_uploads", 0, id="free-uploads-zero"),
        pytest.param("STORAGE_LIMIT_BYTES", "1048576", "storage_limit_bytes", 1_048_576, id="storage-limit"),
        pytest.param("MAX_UPLOAD_BYTES", "52428800", "max_upload_bytes", 52_428_800, id="max-upload-at-ceiling"),
        pytest.param("DEFAULT_TTL_SECONDS", "3600", "default_ttl_seconds", 3600, id="default-ttl"),
        pytest.param("MAX_TTL_SECONDS", "5184000", "max_ttl_seconds", 5_184_000, id="max-ttl"),
        pytest.param("SWEEP_INTERVAL_SECONDS", "5", "sweep_interval_seconds", 5, id="sweep-interval"),
        pytest.param("DB_POOL_SIZE", "3", "db_pool_size", 3, id="db-pool-size"),
        pytest.param("PLAN_ENFORCEMENT", "on", "plan_enforcement", True, id="plan-enforcement-on"),
        pytest.param("PLAN_ENFORCEMENT", "OFF", "plan_enforcement", False, id="plan-enforcement-off"),
        pytest.param("RATE_LIMITS", "off", "rate_limits_enabled", False, id="rate-limits-off"),
        pytest.param("RATE_LIMITS", "on", "rate_limits_enabled", True, id="rate-limits-on"),
        pytest.param(
            "PAYPAL_BASE_URL",
            "https://api-m.sandbox.paypal.com",
            "paypal_base_url",
            "https://api-m.sandbox.paypal.com",
            id="paypal-base-url",
        ),
        pytest.param("PAYPAL_CLIENT_ID", "cid", "paypal_client_id", "cid", id="paypal-client-id"),
        pytest.param("PAYPAL_CLIENT_SECRET", "sec", "paypal_client_secret", "sec", id="paypal-client-secret"),
        pytest.param("PAYPAL_WEBHOOK_ID", "wh", "paypal_webhook_id", "wh", id="paypal-webhook-id"),
        pytest.param("API_KEY", "ol_live_" + "a" * 64, "api_key", "ol_live_" + "a" * 64, id="api-key"),
    ],
)
def test_each_variable_sets_its_setting(
    data_dir: Path, variable: str, value: str, attribute: str, expected: Any
) -> None:
    """OUTPUTLAYER_<NAME>=value lands, parsed, in the matching setting."""
    assert getattr(from_env(data_dir, **{variable: value}), attribute) == expected


@pytest.mark.parametrize(
    ("variable", "field"),
    [
        pytest.param("RATE_UPLOADS_PER_HOUR", "uploads_per_hour", id="uploads"),
        pytest.param("RATE_READS_PER_HOUR", "reads_per_hour", id="reads"),
        pytest.param("RATE_DELETES_PER_HOUR", "deletes_per_hour", id="deletes"),
        pytest.param("RATE_CREDITS_PER_HOUR", "credits_per_hour", id="credits"),
        pytest.param("RATE_REGISTRATIONS_PER_HOUR", "registrations_per_hour", id="registrations"),
        pytest.param("RATE_DISCOVERY_PER_MINUTE", "discovery_per_minute", id="discovery"),
    ],
)
def test_each_rate_variable_sets_only_its_limit(data_dir: Path, variable: str, field: str) -> None:
    """OUTPUTLAYER_RATE_<NAME> changes that limit and leaves the others at their defaults."""
    settings = from_env(data_dir, **{variable: "7"})
    assert getattr(settings.rate_limits, field) == 7
    defaults = RateLimits()
    for other in RateLimits.__dataclass_fields__:
        if other != field:
            assert getattr(settings.rate_limits, other) == getattr(defaults, other)
    assert settings.rate_limits_enabled is True


def test_data_dir_moves_the_embedded_defaults(tmp_path: Path) -> None:
    """OUTPUTLAYER_DATA_DIR decides where the default database and blob directory live."""
    settings = from_env(tmp_path / "elsewhere")
    assert settings.data_dir == (tmp_path / "elsewhere").resolve()
    assert settings.database_url.endswith(str((tmp_path / "elsewhere" / "outputlayer.db").resolve()))
    assert settings.blob_url == f"file://{(tmp_path / 'elsewhere' / 'blobs').resolve()}"


def test_mcp_roots_are_split_on_colons(data_dir: Path, tmp_path: Path) -> None:
    """OUTPUTLAYER_MCP_ROOTS is a colon-separated list of resolved paths."""
    settings = from_env(data_dir, MCP_ROOTS=f"{tmp_path / 'a'}:{tmp_path / 'b'}")
    assert settings.mcp_roots == ((tmp_path / "a").resolve(), (tmp_path / "b").resolve())


PAYPAL = {
    "PAYPAL_BASE_URL": "https://api-m.sandbox.paypal.com",
    "PAYPAL_CLIENT_ID": "cid",
    "PAYPAL_CLIENT_SECRET": "sec-do-not-print",
    "PAYPAL_WEBHOOK_ID": "WH1",
}


@pytest.mark.parametrize("missing", [None, *PAYPAL])
def test_billing_is_on_exactly_when_all_four_paypal_settings_are_given(data_dir: Path, missing: str | None) -> None:
    settings = from_env(data_dir, **{k: v for k, v in PAYPAL.items() if k != missing})
    assert settings.billing_enabled is (missing is None)


def test_the_paypal_client_secret_is_never_printed(data_dir: Path) -> None:
    assert "sec-do-not-print" not in repr(from_env(data_dir, **PAYPAL))


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        pytest.param({"FREE_UPLOADS": "five"}, "OUTPUTLAYER_FREE_UPLOADS", id="free-uploads-not-int"),
        pytest.param({"FREE_UPLOADS": "-1"}, "OUTPUTLAYER_FREE_UPLOADS", id="free-uploads-negative"),
        pytest.param({"FREE_UPLOADS": "5\nOUTPUTLAYER_X=1"}, "OUTPUTLAYER_FREE_UPLOADS", id="free-uploads-newline"),
        pytest.param({"STORAGE_LIMIT_BYTES": "1.5"}, "OUTPUTLAYER_STORAGE_LIMIT_BYTES", id="storage-limit-float"),
        pytest.param({"STORAGE_LIMIT_BYTES": "-10"}, "OUTPUTLAYER_STORAGE_LIMIT_BYTES", id="storage-limit-negative"),
        pytest.param({"MAX_UPLOAD_BYTES": "0"}, "OUTPUTLAYER_MAX_UPLOAD_BYTES", id="max-upload-zero"),
        pytest.param({"MAX_UPLOAD_BYTES": "52428801"}, "OUTPUTLAYER_MAX_UPLOAD_BYTES", id="max-upload-above-ceiling"),
        pytest.param({"MAX_UPLOAD_BYTES": "25MB"}, "OUTPUTLAYER_MAX_UPLOAD_BYTES", id="max-upload-with-unit"),
        pytest.param({"DEFAULT_TTL_SECONDS": "0"}, "OUTPUTLAYER_DEFAULT_TTL_SECONDS", id="default-ttl-zero"),
        pytest.param({"MAX_TTL_SECONDS": "0"}, "OUTPUTLAYER_MAX_TTL_SECONDS", id="max-ttl-zero"),
        pytest.param(
            {"DEFAULT_TTL_SECONDS": "7200", "MAX_TTL_SECONDS": "3600"},
            "OUTPUTLAYER_DEFAULT_TTL_SECONDS",
            id="default-ttl-above-max",
        ),
        pytest.param({"SWEEP_INTERVAL_SECONDS": "0"}, "OUTPUTLAYER_SWEEP_INTERVAL_SECONDS", id="sweep-interval-zero"),
        pytest.param({"DB_POOL_SIZE": "none"}, "OUTPUTLAYER_DB_POOL_SIZE", id="pool-size-not-int"),
        pytest.param({"DB_POOL_SIZE": "0"}, "OUTPUTLAYER_DB_POOL_SIZE", id="pool-size-zero"),
        pytest.param({"PLAN_ENFORCEMENT": "maybe"}, "OUTPUTLAYER_PLAN_ENFORCEMENT", id="plan-enforcement-bad"),
        pytest.param({"RATE_LIMITS": "sometimes"}, "OUTPUTLAYER_RATE_LIMITS", id="rate-limits-bad"),
        pytest.param({"RATE_LIMITS": "off\nyes"}, "OUTPUTLAYER_RATE_LIMITS", id="rate-limits-newline"),
        pytest.param({"DATABASE_URL": "mysql://db/ol"}, "OUTPUTLAYER_DATABASE_URL", id="database-url-scheme"),
        pytest.param({"BLOB_URL": "gs://bucket"}, "OUTPUTLAYER_BLOB_URL", id="blob-url-scheme"),
        pytest.param({"BASE_URL": "api.example.com"}, "OUTPUTLAYER_BASE_URL", id="base-url-relative"),
        pytest.param({"BASE_URL": "ftp://x\ny"}, "OUTPUTLAYER_BASE_URL", id="base-url-newline"),
        pytest.param({"PUBLIC_BASE_URL": "/public"}, "OUTPUTLAYER_PUBLIC_BASE_URL", id="public-base-url-relative"),
        pytest.param({"PAYPAL_BASE_URL": "paypal"}, "OUTPUTLAYER_PAYPAL_BASE_URL", id="paypal-base-url-relative"),
        pytest.param({"DATA_DIR": "  "}, "OUTPUTLAYER_DATA_DIR", id="data-dir-blank"),
        pytest.param({"RATE_UPLOADS_PER_HOUR": "0"}, "OUTPUTLAYER_RATE_UPLOADS_PER_HOUR", id="rate-uploads-zero"),
        pytest.param({"RATE_READS_PER_HOUR": "lots"}, "OUTPUTLAYER_RATE_READS_PER_HOUR", id="rate-reads-not-int"),
        pytest.param({"RATE_DELETES_PER_HOUR": "-5"}, "OUTPUTLAYER_RATE_DELETES_PER_HOUR", id="rate-deletes-negative"),
        pytest.param({"RATE_CREDITS_PER_HOUR": ""}, "OUTPUTLAYER_RATE_CREDITS_PER_HOUR", id="rate-credits-empty"),
        pytest.param(
            {"RATE_REGISTRATIONS_PER_HOUR": "1e3"},
            "OUTPUTLAYER_RATE_REGISTRATIONS_PER_HOUR",
            id="rate-registrations-float",
        ),
        pytest.param(
            {"RATE_DISCOVERY_PER_MINUTE": "0"}, "OUTPUTLAYER_RATE_DISCOVERY_PER_MINUTE", id="rate-discovery-zero"
        ),
        pytest.param({"RATE_UPLOADS_PER_DAY": "100"}, "OUTPUTLAYER_RATE_UPLOADS_PER_DAY", id="rate-unknown-name"),
    ],
)
def test_bad_value_raises_one_line_naming_the_variable(data_dir: Path, variables: dict[str, str], named: str) -> None:
    """A bad value raises SettingsError whose message is one line that starts with the variable's name."""
    with pytest.raises(SettingsError) as caught:
        from_env(data_dir, **variables)
    message = str(caught.value)
    assert message.startswith(f"{named}:"), message
    assert "\n" not in message and "\r" not in message, message
    assert len(message) > len(named) + 2, "the line says what is wrong, not only which variable"

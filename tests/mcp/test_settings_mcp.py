"""The MCP settings: allowed hosts and origins and the request body limit of ``/mcp`` (README configuration)."""

from __future__ import annotations

from pathlib import Path

import pytest

from store import Settings, SettingsError


def from_env(tmp_path: Path, **variables: str) -> Settings:
    environ = {"OUTPUTLAYER_DATA_DIR": str(tmp_path / "data")}
    environ.update({f"OUTPUTLAYER_{name}": value for name, value in variables.items()})
    return Settings.from_env(environ)


def test_defaults_follow_the_base_url_and_the_upload_limit(tmp_path: Path) -> None:
    settings = from_env(tmp_path, BASE_URL="https://api.example.com")
    assert settings.mcp_dns_rebinding_protection is True
    assert settings.effective_mcp_allowed_hosts == (
        "api.example.com",
        "api.example.com:*",
        "127.0.0.1:*",
        "localhost:*",
        "[::1]:*",
    )
    assert settings.effective_mcp_allowed_origins[0] == "https://api.example.com"
    assert "http://localhost:*" in settings.effective_mcp_allowed_origins
    # The largest upload (25 MiB) as base64 plus 1 MiB of envelope; with plan tiers, the 50 MiB ceiling.
    assert settings.effective_mcp_max_request_bytes == 4 * -(-26_214_400 // 3) + 1_048_576
    enforced = from_env(tmp_path, PLAN_ENFORCEMENT="on")
    assert enforced.effective_mcp_max_request_bytes == 4 * -(-52_428_800 // 3) + 1_048_576
    local = from_env(tmp_path, BASE_URL="http://127.0.0.1:8000")
    assert local.effective_mcp_allowed_hosts[:2] == ("127.0.0.1", "127.0.0.1:*")


def test_configured_values(tmp_path: Path) -> None:
    settings = from_env(
        tmp_path,
        MCP_ALLOWED_HOSTS="mcp.example.com, mcp.example.com:8443",
        MCP_ALLOWED_ORIGINS="https://app.example.com",
        MCP_MAX_REQUEST_BYTES="1000000",
    )
    assert settings.effective_mcp_allowed_hosts == ("mcp.example.com", "mcp.example.com:8443")
    assert settings.effective_mcp_allowed_origins == ("https://app.example.com",)
    assert settings.effective_mcp_max_request_bytes == 1_000_000
    assert from_env(tmp_path, MCP_ALLOWED_HOSTS="*").mcp_dns_rebinding_protection is False


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MCP_ALLOWED_HOSTS", "https://api.example.com"),
        ("MCP_ALLOWED_HOSTS", "*,api.example.com"),
        ("MCP_ALLOWED_ORIGINS", "app.example.com"),
        ("MCP_ALLOWED_ORIGINS", "https://app.example.com/path"),
        ("MCP_MAX_REQUEST_BYTES", "big"),
        ("MCP_MAX_REQUEST_BYTES", "-1"),
    ],
)
def test_bad_values_name_the_variable(tmp_path: Path, variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as raised:
        from_env(tmp_path, **{variable: value})
    message = str(raised.value)
    assert message.startswith(f"OUTPUTLAYER_{variable}:") and "\n" not in message

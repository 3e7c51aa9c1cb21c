"""The container files cannot run here (no Docker), so their wiring is checked by reading them: every
OUTPUTLAYER_* variable they set is one the server reads, and the URLs point at the services they define."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from store import Settings
from store.blobs.s3 import S3Location

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_REFERENCE = re.compile(r"\$\{(?P<name>[A-Z0-9_]+):-(?P<default>[^}]*)\}")


def compose() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml")
    document: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return document


def resolved(value: object) -> str:
    """A compose value with ``${NAME:-default}`` references replaced by their defaults."""
    return DEFAULT_REFERENCE.sub(lambda m: m.group("default"), str(value))


def assert_read_by_settings(env: dict[str, str]) -> None:
    """Each variable is a real setting: on its own it changes what Settings.from_env builds."""
    baseline = Settings.from_env({})
    for name, value in env.items():
        assert name.startswith("OUTPUTLAYER_"), name
        assert Settings.from_env({name: value}) != baseline, f"{name} is not read by Settings"
    Settings.from_env(env)  # and together they are valid


def test_compose_sets_only_real_settings_and_wires_them_to_its_own_services() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "minio", "outputlayer"}
    api = services["outputlayer"]
    env = {name: resolved(value) for name, value in api["environment"].items()}
    assert_read_by_settings(env)

    database = urlsplit(env["OUTPUTLAYER_DATABASE_URL"])
    postgres = services["postgres"]["environment"]
    assert services["postgres"]["image"] == "postgres:16"
    assert (database.scheme, database.hostname, database.port) == ("postgresql", "postgres", 5432)
    assert (database.username, database.password, database.path) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        "/" + postgres["POSTGRES_DB"],
    )

    blobs = S3Location.parse(env["OUTPUTLAYER_BLOB_URL"])
    minio = services["minio"]["environment"]
    assert (blobs.endpoint, blobs.secure) == ("minio:9000", False)
    assert (blobs.access_key, blobs.secret_key) == (minio["MINIO_ROOT_USER"], minio["MINIO_ROOT_PASSWORD"])

    settings = Settings.from_env(env)
    assert settings.base_url.startswith("http") and settings.public_base_url.startswith("http")


def test_compose_starts_the_api_after_healthy_backends_each_with_its_own_volume() -> None:
    document = compose()
    services = document["services"]
    for name in ("postgres", "minio", "outputlayer"):
        assert services[name]["healthcheck"]["test"], name
    assert services["outputlayer"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "minio": {"condition": "service_healthy"},
    }
    mounted = {name: [v.split(":", 1)[0] for v in services[name].get("volumes", [])] for name in services}
    assert len(mounted["postgres"]) == len(mounted["minio"]) == 1
    assert mounted["postgres"] != mounted["minio"]
    assert set(mounted["postgres"] + mounted["minio"]) <= set(document["volumes"])
    assert services["outputlayer"]["ports"] == ["8000:8000"]


def test_dockerfile_runs_the_server_as_a_non_root_user_with_a_health_check() -> None:
    lines = [
        line.strip()
        for line in (ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    instructions = [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]
    by_kind: dict[str, list[str]] = {}
    for kind, argument in instructions:
        by_kind.setdefault(kind, []).append(argument)

    assert by_kind["FROM"] == ["python:3.11-slim"]
    assert by_kind["USER"][-1] not in ("root", "0")
    assert [kind for kind, _ in instructions].index("USER") > [kind for kind, _ in instructions].index("RUN")
    assert any("pip install ." in run for run in by_kind["RUN"])
    assert by_kind["EXPOSE"] == ["8000"]
    (command,) = by_kind["CMD"]
    assert shlex.split(command.strip("[]").replace(",", " ")) == [
        "outputlayer",
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
    ]
    (health,) = by_kind["HEALTHCHECK"]
    assert "http://127.0.0.1:8000/health" in health
    env = dict(shlex.split(item)[0].split("=", 1) for item in by_kind.get("ENV", []) if item.startswith("OUTPUTLAYER_"))
    assert_read_by_settings(env)

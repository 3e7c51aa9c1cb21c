"""The README stays true: its quickstart runs as written, and its configuration table names every setting."""

from __future__ import annotations

import dataclasses
import re
import subprocess
from pathlib import Path

from store.settings import RateLimits, Settings
from tests.serving import running_server

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text("utf-8")


def _quickstart_script() -> str:
    section = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    return "\n".join(blocks[1:])  # the first block starts the server; the others talk to it


def test_readme_quickstart_runs_verbatim_against_a_server(tmp_path: Path) -> None:
    """Every curl of the quickstart succeeds (only the host:port is swapped for a free one)."""
    with running_server(tmp_path / "data", {"OUTPUTLAYER_RATE_LIMITS": "off"}) as server:
        script = _quickstart_script().replace("http://127.0.0.1:8000", server.base_url)
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script + '\necho; echo "OUT=$OUT"'],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 0, done.stderr
    assert "idempotent-replayed: true" in done.stdout.lower()
    assert re.search(r"^OUT=out_[0-9A-Z]{26}$", done.stdout, flags=re.M)
    assert "hello world" in done.stdout
    # The upload link took the file: its PUT answered the output (a second one, from the link).
    assert len(set(re.findall(r'"outputId":"(out_[0-9A-Z]{26})"', done.stdout))) == 2


def test_readme_configuration_table_names_every_setting() -> None:
    """Each Settings field (and each rate limit) has its OUTPUTLAYER_* row in the README."""
    documented = set(re.findall(r"`(OUTPUTLAYER_[A-Z_]+)`", README))
    documented |= {f"OUTPUTLAYER_PAYPAL_{n}" for n in re.findall(r"`_([A-Z_]+)`", README)}
    renamed = {"rate_limits_enabled": "RATE_LIMITS"}
    expected = {
        "OUTPUTLAYER_" + renamed.get(f.name, f.name.upper())
        for f in dataclasses.fields(Settings)
        if f.name != "rate_limits"
    }
    expected |= {"OUTPUTLAYER_RATE_" + f.name.upper() for f in dataclasses.fields(RateLimits)}
    assert expected - documented == set()

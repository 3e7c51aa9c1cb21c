"""Schemathesis against a live ``outputlayer serve``, driven by the server's own OpenAPI document
(SPEC section 15): every check, the coverage, fuzzing and stateful phases (the document's links take
a created output on to being read, downloaded, shared and deleted), and no 5xx or response that
contradicts the document. The run's configuration and its few documented exceptions are in
``tests/fuzz/schemathesis.toml``; the figures of a run are kept in ``docs/FUZZING.md``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.serving import Server, running_server

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("schemathesis.toml")
SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
# Bounds the run to about two minutes on an idle two-core machine (each operation gets this many
# cases per phase); a fixed seed makes a failure reproducible. Both can be changed from outside.
EXAMPLES = os.environ.get("OUTPUTLAYER_FUZZ_EXAMPLES", "300")
SEED = os.environ.get("OUTPUTLAYER_FUZZ_SEED", "20261128")
RUN_TIMEOUT_SECONDS = 1200
# The routes of SPEC section 4 and 14 at least; a document that lost some would fuzz fewer.
MIN_OPERATIONS = 25


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"OUTPUTLAYER_RATE_LIMITS": "off", "OUTPUTLAYER_FREE_UPLOADS": "1000000"}
    with running_server(tmp_path_factory.mktemp("fuzz"), env) as server:
        yield server


def test_fuzzing_the_live_server_from_its_own_document_finds_nothing(served: Server, tmp_path: Path) -> None:
    key = httpx2.post(f"{served.base_url}/v1/keys/register", json={}, timeout=30).json()["apiKey"]
    command = [
        SCHEMATHESIS,
        "--config-file",
        str(CONFIG),
        "run",
        f"{served.base_url}/v1/schema",
        "--header",
        f"Authorization: Bearer {key}",
        "--max-examples",
        EXAMPLES,
        "--seed",
        SEED,
        "--no-shrink",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
    ]
    # Run from a scratch directory (Schemathesis and Hypothesis keep caches in the working directory);
    # the hooks module is imported from the repository.
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}
    run = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS, check=False
    )
    summary = run.stdout[run.stdout.rfind("SUMMARY") :]
    print(summary)  # the figures docs/FUZZING.md records
    assert run.returncode == 0, run.stdout[-20_000:] + run.stderr[-5_000:]
    selected = re.search(r"Selected: (\d+)/(\d+)", summary)
    assert selected is not None and selected[1] == selected[2], "every operation of the document was fuzzed"
    assert int(selected[1]) >= MIN_OPERATIONS

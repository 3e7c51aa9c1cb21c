"""An unreachable PostgreSQL ends a command with a clear error in bounded time, never a hang.

The pool's first connect fails (nothing listens on the port): the work answers ``service_unavailable``
within the pool's bounded wait, and closing the service inside its own loop ends every task the pool
started, so the process can exit at once.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest

from store import Settings, StoreError, open_service
from tests.serving import OUTPUTLAYER, child_env, free_port

pytestmark = pytest.mark.slow

# The pool waits 10 s for a first connection; the rest is margin for a machine at load average 10.
DEADLINE_SECONDS = 60.0


def closed_port_url() -> str:
    return f"postgresql://outputlayer:secret@127.0.0.1:{free_port()}/outputlayer"


def test_sweep_against_a_closed_port_exits_non_zero_within_the_deadline(tmp_path: Path) -> None:
    env = child_env({"OUTPUTLAYER_DATA_DIR": str(tmp_path), "OUTPUTLAYER_DATABASE_URL": closed_port_url()})
    started = time.monotonic()
    finished = subprocess.run(
        [OUTPUTLAYER, "sweep"], env=env, capture_output=True, text=True, timeout=DEADLINE_SECONDS, check=False
    )
    assert finished.returncode == 1, finished.stderr[-3000:]
    assert "service_unavailable" in finished.stderr
    assert time.monotonic() - started < DEADLINE_SECONDS


@pytest.mark.anyio
async def test_a_failed_first_pool_connect_answers_503_and_closing_leaves_no_task_behind(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url=closed_port_url(), base_url="http://testserver")
    service = open_service(settings, run_migrations=False)
    tasks_before = asyncio.all_tasks()
    started = time.monotonic()
    with pytest.raises(StoreError) as refused:
        await asyncio.wait_for(service.sweep(), DEADLINE_SECONDS)
    assert refused.value.code == "service_unavailable"
    await asyncio.wait_for(service.aclose(), DEADLINE_SECONDS)
    assert time.monotonic() - started < DEADLINE_SECONDS
    assert asyncio.all_tasks() <= tasks_before

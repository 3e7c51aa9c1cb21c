"""The served process freezes its startup heap (rest/heap.py): once the lifespan has started, the
objects alive then are in the permanent generation and later collections walk only newer ones."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# A fresh interpreter: freezing the test process's own heap would keep every later test's garbage.
SERVED_PROCESS = """
import asyncio, gc
from rest.asgi import app_factory

async def main() -> None:
    app = app_factory()
    before = gc.get_freeze_count()
    async with app.router.lifespan_context(app):
        during = gc.get_freeze_count()
        young = len(gc.get_objects())
    print(before, during, young)

asyncio.run(main())
"""
# Generous: imports and the service's startup on a machine at load average 10.
DEADLINE_SECONDS = 120


def test_the_served_app_freezes_what_startup_left_alive(tmp_path: Path) -> None:
    env = {**os.environ, "OUTPUTLAYER_DATA_DIR": str(tmp_path / "data"), "OUTPUTLAYER_BASE_URL": "http://testserver"}
    env.pop("OUTPUTLAYER_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", SERVED_PROCESS],
        env=env,
        capture_output=True,
        text=True,
        timeout=DEADLINE_SECONDS,
        cwd=Path(__file__).resolve().parents[2],
        check=True,
    )
    before, during, young = (int(value) for value in done.stdout.split())
    assert before == 0
    # The application's modules alone are tens of thousands of objects; what stays collectable is few.
    assert during > 20_000
    assert young < during // 4

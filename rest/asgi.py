"""ASGI entry point for process managers: ``uvicorn rest.asgi:app_factory --factory``.

This is the one place (with the CLI) where settings are read from the environment.
"""

from __future__ import annotations

import os
import sys

from starlette.applications import Starlette

from rest.app import create_app
from rest.heap import freeze_after_startup
from store import Settings


def app_factory() -> Starlette:
    # Database and blob work runs in worker threads that hand results back to the event loop. With
    # the default 5 ms GIL switch interval a busy loop makes each hand-off wait up to 5 ms (a convoy
    # that capped uploads at ~300/s in the benchmark); 1 ms keeps hand-offs short.
    sys.setswitchinterval(0.001)
    app = create_app(Settings.from_env(os.environ))
    freeze_after_startup(app)
    return app

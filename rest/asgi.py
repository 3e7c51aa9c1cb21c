"""ASGI entry point for process managers: ``uvicorn rest.asgi:app_factory --factory``.

This is the one place (with the CLI) where settings are read from the environment.
"""

from __future__ import annotations

import os

from starlette.applications import Starlette

from rest.app import create_app
from store import Settings


def app_factory() -> Starlette:
    return create_app(Settings.from_env(os.environ))

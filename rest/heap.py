"""The served process's garbage collector: the objects alive once the server has started are kept out
of every later collection.

Why: CPython's full (generation-2) collection walks every container object the process holds. After
startup that is ~170k objects (modules, classes, functions, the service), all of them living as long
as the process; under load full collections ran up to about twice a second, each one stopping the event loop
for ~90 ms on the benchmark machine (found with a ``gc.callbacks`` probe), which was the p99 of reads on
PostgreSQL. ``gc.freeze()`` moves them to the permanent generation, which collections skip; what
requests create is collected as before.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from starlette.applications import Starlette

Lifespan = Callable[[Any], AbstractAsyncContextManager[Any]]


def freeze_startup_heap() -> None:
    """Collect what startup left behind, then freeze every object still alive."""
    gc.collect()
    gc.freeze()


def freeze_after_startup(app: Starlette) -> None:
    """Make ``app``'s lifespan freeze the heap once its startup is done (the service is open).

    Only for a served process (``rest.asgi``): a frozen object is never collected, so a process that
    builds and drops many applications (the tests) must not freeze each one's heap.
    """
    startup: Lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(served: Any) -> AsyncIterator[Any]:
        async with startup(served) as state:
            freeze_startup_heap()
            yield state

    app.router.lifespan_context = lifespan

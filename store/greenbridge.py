"""The bridge that lets a synchronous unit of database work run on an asynchronous driver.

Every rule in the store writes its transaction as a plain function of a ``Tx`` (``tx.one``,
``tx.execute``, …), and one rule is written once for both databases. SQLite answers those calls
synchronously; psycopg's async connection answers them with coroutines. :func:`run_bridged` runs
the function in a greenlet: each driver call inside it hands its coroutine to :func:`await_bridged`,
which switches back to the event-loop task, awaits the coroutine there, and switches in again with
the answer. The function reads as synchronous code, runs on the event loop, and no worker thread is
involved (the technique SQLAlchemy's asyncio extension uses).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import greenlet  # type: ignore[import-untyped]  # ships no type information

T = TypeVar("T")


class _BridgedGreenlet(greenlet.greenlet):  # type: ignore[misc]
    """A greenlet whose parent is the event-loop task awaiting on its behalf."""

    def __init__(self, work: Callable[..., Any], parent: greenlet.greenlet) -> None:
        super().__init__(work, parent)
        # Context variables set by the task stay visible inside the work.
        self.gr_context = parent.gr_context


async def run_bridged(work: Callable[..., T], *args: Any) -> T:
    """Run ``work(*args)`` to the end; every coroutine it hands over is awaited on this task."""
    bridged = _BridgedGreenlet(work, greenlet.getcurrent())
    handed = bridged.switch(*args)
    while not bridged.dead:
        try:
            answer = await handed
        except BaseException as exc:  # the driver's error belongs to the work: raise it there
            handed = bridged.throw(exc)
        else:
            handed = bridged.switch(answer)
    return cast(T, handed)


def await_bridged(awaitable: Awaitable[T]) -> T:
    """Inside work run by :func:`run_bridged`: the awaitable's result, awaited by the event loop."""
    current = greenlet.getcurrent()
    if not isinstance(current, _BridgedGreenlet):
        raise RuntimeError("await_bridged called outside run_bridged")
    return cast(T, current.parent.switch(awaitable))

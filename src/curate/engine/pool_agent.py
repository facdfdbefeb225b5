"""Sync calls into SQLAlchemy's pool from async code, on one reused greenlet per thread.

SQLAlchemy's pool is synchronous code that awaits through ``await_`` when it needs I/O
(opening a connection, closing one), so it must run inside a greenlet it recognises.
`sqlalchemy.util.greenlet_spawn` starts a new greenlet for every call: around each of
curate's single statements (`curate.engine.driver`), that cost a no-op item about a
tenth of its CPU time. `in_greenlet` runs the call on a greenlet that stays alive between
calls and, like ``greenlet_spawn``, awaits for it whatever it hands out through
``await_``. While that greenlet waits on such an await (a pool opening a connection),
other callers get ``greenlet_spawn``'s fresh greenlet.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from greenlet import getcurrent, greenlet  # type: ignore[import-untyped]
from sqlalchemy.util import greenlet_spawn

T = TypeVar("T")


class _Returned:
    """What the agent hands back when a call ends (rather than an awaitable to await)."""

    __slots__ = ("error", "value")

    def __init__(self, value: Any, error: BaseException | None) -> None:
        self.value = value
        self.error = error


class _AgentGreenlet(greenlet):  # type: ignore[misc]
    """SQLAlchemy's ``await_`` hands its awaitable to the parent of a greenlet that
    carries this marker (as ``greenlet_spawn``'s own greenlets do)."""

    __sqlalchemy_greenlet_provider__ = True


def _serve(call: tuple[Callable[..., Any], tuple[Any, ...]]) -> None:
    """The agent's life: run each call it is switched to, switch back what it returned."""
    while True:
        function, arguments = call
        try:
            returned = _Returned(function(*arguments), None)
        except BaseException as error:
            returned = _Returned(None, error)
        call = getcurrent().parent.switch(returned)


class _Agent:
    """One thread's reused greenlet, and whether a call is suspended on it."""

    def __init__(self) -> None:
        self.greenlet = _AgentGreenlet(_serve, getcurrent())
        self.busy = False


_local = threading.local()


async def in_greenlet(function: Callable[..., T], *arguments: Any) -> T:
    """``function(*arguments)`` where SQLAlchemy may await: ``greenlet_spawn``'s contract."""
    agent: _Agent | None = getattr(_local, "agent", None)
    caller = getcurrent()
    if agent is None or agent.greenlet.dead:
        agent = _local.agent = _Agent()
    if agent.busy or agent.greenlet.parent is not caller:
        return await greenlet_spawn(function, *arguments)
    agent.busy = True
    returned: Any = None
    try:
        agent.greenlet.gr_context = caller.gr_context  # the caller's contextvars, as SQLAlchemy
        returned = agent.greenlet.switch((function, arguments))
        while not isinstance(returned, _Returned):
            try:
                value = await returned
            except BaseException:
                returned = agent.greenlet.throw(*sys.exc_info())
            else:
                returned = agent.greenlet.switch(value)
    finally:
        agent.busy = False
        if not isinstance(returned, _Returned):  # left mid-call (the coroutine was closed)
            _local.agent = None
    if returned.error is not None:
        raise returned.error
    result: T = returned.value
    return result

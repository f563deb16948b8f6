"""Callback handlers see a guarded run only once its content is checked.

An application's callback handler is a way out: a UI handler that prints ``on_llm_new_token`` tokens, or reads
``on_llm_end``, shows the user a model's answer as it is generated, before ``guard_chain`` or the middleware
checked it (the ``"nostream"`` tag hides runs from LangGraph's streams, not from handlers). So while a guarded run
goes on, every handler it inherits that observes (anything but tracers, which record for the operator, LangGraph's
own stream handlers, which honour ``"nostream"``, and the guard's own checking handlers) is swapped for a stand-in
that holds its events (:meth:`ObserverHold.held`); once the check passed they are handed on in order
(:meth:`ObserverHold.release` / :meth:`ObserverHold.arelease`), and after a block they are dropped.
"""

from __future__ import annotations

import threading
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler, BaseCallbackManager
from langchain_core.callbacks.manager import ahandle_event, handle_event
from langchain_core.tracers.base import AsyncBaseTracer, BaseTracer

from ._steps import Request

_EVENTS = sorted(name for name in dir(BaseCallbackHandler) if name.startswith("on_"))
_IGNORES = sorted(name for name in dir(BaseCallbackHandler) if name.startswith("ignore_"))


def observes(handler: Any) -> bool:
    """True for a handler whose events are held: not a tracer, not LangGraph's, not a guard's check."""
    if isinstance(handler, (BaseTracer, AsyncBaseTracer, _StandIn)):
        return False
    if getattr(handler, "llamaguard_check", False):
        return False
    module = type(handler).__module__ or ""
    return not (module.startswith("langgraph.") or module.startswith("langchain_core.tracers"))


class ObserverHold:
    """The events held for observing handlers during one guarded run."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, str, tuple[Any, ...], dict[str, Any]]] = []
        self._lock = threading.Lock()

    def held(self, callbacks: Any) -> Any:
        """``callbacks`` (a manager or a list of handlers) with each observing handler swapped for a stand-in."""
        if isinstance(callbacks, BaseCallbackManager):
            manager = callbacks.copy()
            stand_ins: dict[int, Any] = {}
            manager.handlers = [self._stand_in(h, stand_ins) for h in manager.handlers]
            manager.inheritable_handlers = [self._stand_in(h, stand_ins) for h in manager.inheritable_handlers]
            return manager
        if isinstance(callbacks, list):
            return [self._stand_in(h, {}) for h in callbacks]
        return callbacks

    def _stand_in(self, handler: Any, stand_ins: dict[int, Any]) -> Any:
        if not observes(handler):
            return handler
        if id(handler) not in stand_ins:
            stand_ins[id(handler)] = _StandIn(handler, self)
        return stand_ins[id(handler)]

    def record(self, handler: Any, event: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        with self._lock:
            self.events.append((handler, event, args, kwargs))

    def release(self) -> None:
        """Hand the held events on, in order."""
        events, self.events = self.events, []
        for handler, event, args, kwargs in events:
            handle_event([handler], event, None, *args, **kwargs)

    async def arelease(self) -> None:
        events, self.events = self.events, []
        for handler, event, args, kwargs in events:
            await ahandle_event([handler], event, None, *args, **kwargs)

    def drop(self) -> None:
        self.events = []


class Release(Request):
    """Steps' request: hand a hold's events on (sync or async, as the driver runs)."""

    def __init__(self, hold: ObserverHold) -> None:
        self.hold = hold

    def run(self) -> None:
        self.hold.release()

    async def arun(self) -> None:
        await self.hold.arelease()


class _StandIn(BaseCallbackHandler):
    """Holds every event for ``handler`` (its ``ignore_*`` choices kept); never raises, runs inline."""

    run_inline = True
    raise_error = False

    def __init__(self, handler: Any, hold: ObserverHold) -> None:
        self.handler = handler
        self.hold = hold


def _recorder(event: str) -> Any:
    def record(self: _StandIn, *args: Any, **kwargs: Any) -> None:
        self.hold.record(self.handler, event, args, kwargs)

    record.__name__ = event
    return record


def _ignore(name: str) -> Any:
    return property(lambda self: bool(getattr(self.handler, name, False)))


for _event in _EVENTS:
    setattr(_StandIn, _event, _recorder(_event))
for _name in _IGNORES:
    setattr(_StandIn, _name, _ignore(_name))


__all__ = ["ObserverHold", "Release", "observes"]

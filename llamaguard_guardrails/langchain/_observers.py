"""Callback handlers see a guarded run only once its content is checked.

An application's callback handler is a way out: a UI handler that prints ``on_llm_new_token`` tokens, or reads
``on_llm_end``, shows the user a model's answer as it is generated, before ``guard_chain`` or the middleware
checked it (the ``"nostream"`` tag hides runs from LangGraph's streams, not from handlers). So while a guarded run
goes on, every handler it inherits that observes (anything but tracers, which record for the operator, LangGraph's
own stream handlers, which honour ``"nostream"``, and the guard's own checking handlers) is swapped for a stand-in
that holds its events (:meth:`ObserverHold.held`); once the check passed they are handed on in order
(:meth:`ObserverHold.release` / :meth:`ObserverHold.arelease`), and after a block they are dropped.

Handlers that a run inside brings itself are held too: a model's or tool's own ``callbacks=[...]``, a
``with_config(callbacks=...)`` on an inner runnable, a ``verbose`` printer. LangChain builds every run's callback
manager in one place (``langchain_core.callbacks.manager._configure``); :func:`install` wraps it so that a manager
built under a held run (its inherited handlers carry the hold's mark) has each observing handler it added
swapped too, by the innermost hold. A hold inside another (a guarded chain inside a guarded chain, an agent's
model call inside ``guard_chain``) stands in for the outer one's stand-ins: what the inner check blocked is
dropped there, never handed to the outer hold to be released by its check.
"""

from __future__ import annotations

import functools
import json
import threading
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler, BaseCallbackManager
from langchain_core.callbacks import manager as _manager
from langchain_core.callbacks.manager import ahandle_event, handle_event
from langchain_core.messages import BaseMessage
from langchain_core.runnables.config import var_child_runnable_config
from langchain_core.tracers.base import AsyncBaseTracer, BaseTracer
from pydantic import BaseModel

from ..core.errors import InvalidConversationError
from ..core.policy import Policy
from ..enforce import OnReview, enforce
from ._steps import Classify, Request, Steps
from .convert import OpenAIMessage, message_to_openai

_EVENTS = sorted(name for name in dir(BaseCallbackHandler) if name.startswith("on_"))
_NOT_CONTENT = frozenset({"run_id", "parent_run_id", "tags", "metadata", "serialized", "run_type", "name"})
_IGNORES = sorted(name for name in dir(BaseCallbackHandler) if name.startswith("ignore_"))


def observes(handler: Any) -> bool:
    """True for a handler whose events are held: not a tracer, not LangGraph's, not a guard's check."""
    if isinstance(handler, (BaseTracer, AsyncBaseTracer, _StandIn, _HoldMark)):
        return False
    if getattr(handler, "llamaguard_check", False):
        return False
    module = type(handler).__module__ or ""
    return not (module.startswith("langgraph.") or module.startswith("langchain_core.tracers"))


class ObserverHold:
    """The events held for observing handlers during one guarded run."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, str, tuple[Any, ...], dict[str, Any]]] = []
        self.depth = 0
        """How many holds this one is inside (the innermost one holds what a run brings itself)."""
        self.mark = _HoldMark(self)
        self._lock = threading.Lock()

    def held(self, callbacks: Any) -> Any:
        """``callbacks`` (a manager, a list of handlers or ``None``) with each observing handler swapped for a
        stand-in, and this hold's mark, by which runs started inside find it (see :func:`install`)."""
        outer = innermost_hold(callbacks)
        self.depth = max(self.depth, outer.depth + 1 if outer is not None else 0)
        stand_ins: dict[int, Any] = {}
        if isinstance(callbacks, BaseCallbackManager):
            manager = callbacks.copy()
            self.hold_all(manager)
            manager.add_handler(self.mark, inherit=True)
            return manager
        return [*(self._stand_in(h, stand_ins) for h in callbacks or []), self.mark]

    def _stand_in(self, handler: Any, stand_ins: dict[int, Any]) -> Any:
        if isinstance(handler, _StandIn):
            if handler.hold is self:
                return handler
        elif not observes(handler):
            return handler
        if id(handler) not in stand_ins:
            stand_ins[id(handler)] = _StandIn(handler, self)
        return stand_ins[id(handler)]

    def hold_all(self, manager: BaseCallbackManager) -> None:
        """Swap, in place, every observing handler of ``manager`` (a run's own) for a stand-in of this hold."""
        stand_ins: dict[int, Any] = {}
        manager.handlers = [self._stand_in(h, stand_ins) for h in manager.handlers]
        manager.inheritable_handlers = [self._stand_in(h, stand_ins) for h in manager.inheritable_handlers]

    def record(self, handler: Any, event: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        with self._lock:
            self.events.append((handler, event, args, kwargs))

    def text(self) -> str:
        """What the held events carry, as the guard is shown it: one line of JSON per event (once, however many
        handlers held it; a run's streamed tokens joined), without run ids, tags and metadata. Runs' inputs are left
        out: each is the guarded input or an output of an earlier run inside, which is shown.
        Raises :class:`InvalidConversationError` for a value with no readable text."""
        lines: dict[tuple[str, str], Any] = {}
        for _, event, args, kwargs in self.events:
            key = (event, str(kwargs.get("run_id")))
            if event == "on_llm_new_token":
                lines[key] = (lines.get(key) or "") + str(args[0] if args else kwargs.get("token", ""))
            elif event.endswith("_start"):
                continue  # a run's input: the guarded input, or what an earlier run inside output (shown here)
            elif key not in lines or kwargs.get("run_id") is None:
                shown = list(args)
                shown += [v for k, v in kwargs.items() if k not in _NOT_CONTENT]
                lines[key if kwargs.get("run_id") is not None else (event, str(len(lines)))] = shown
        return "\n".join(guard_json(value, "a callback event carries") for value in lines.values())

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


def checked_release(
    hold: ObserverHold,
    guard: Any,
    context: list[OpenAIMessage],
    policy: Policy | None,
    stage: str,
    on_review: OnReview | None = None,
) -> Steps[bool]:
    """Release ``hold``'s events once what they carry is checked, as the answer after ``context``: a run's
    intermediate steps (a draft another model rewrote, a custom event, a retriever's documents) were never part of
    the checked output. Dropped when blocked or unreadable; ``True`` when released."""
    try:
        text = hold.text()
    except InvalidConversationError:
        hold.drop()
        return False
    if text:
        (verdict,) = yield Classify(guard, [[*context, {"role": "assistant", "content": text}]], policy, stage=stage)
        if enforce(verdict, stage, on_block="refuse", on_review=on_review) is not None:
            hold.drop()
            return False
    yield Release(hold)
    return True


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


def guard_json(value: Any, what: str) -> str:
    """``value`` as one line of JSON for the guard: messages as the guard reads them, models by their fields, other
    objects by their text; an object with no text of its own (``what`` says where it came from) is a typed error."""
    return json.dumps(_shown(value), ensure_ascii=False, default=functools.partial(_default, what=what))


def _shown(value: Any) -> Any:
    if isinstance(value, BaseMessage):
        return message_to_openai(value)
    if isinstance(value, BaseModel):
        return {name: _shown(getattr(value, name, None)) for name in type(value).model_fields}
    if isinstance(value, dict):
        return {str(k): _shown(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_shown(v) for v in value]
    return value


def _default(value: Any, what: str) -> str:
    kind = type(value)
    if kind.__str__ is object.__str__ and kind.__repr__ is object.__repr__:
        raise InvalidConversationError(f"cannot check a value of type {kind.__name__} {what}: it has no readable text")
    return str(value)


class _HoldMark(BaseCallbackHandler):
    """Marks the runs of a held run (handles no event): runs started inside find their hold by it."""

    run_inline = True
    raise_error = False

    def __init__(self, hold: ObserverHold) -> None:
        self.hold = hold


def _recorder(event: str) -> Any:
    def record(self: _StandIn, *args: Any, **kwargs: Any) -> None:
        self.hold.record(self.handler, event, args, kwargs)

    record.__name__ = event
    return record


def _ignore(name: str) -> Any:
    return property(lambda self: bool(getattr(self.handler, name, False)))


def innermost_hold(callbacks: Any) -> ObserverHold | None:
    """The hold of the innermost held run that ``callbacks`` (a run's inherited handlers) belong to, if any."""
    if isinstance(callbacks, BaseCallbackManager):
        handlers = [*callbacks.handlers, *callbacks.inheritable_handlers]
    elif isinstance(callbacks, list):
        handlers = callbacks
    else:
        return None
    holds = [h.hold for h in handlers if isinstance(h, (_StandIn, _HoldMark))]
    return max(holds, key=lambda hold: hold.depth) if holds else None


def _guard_handlers(callbacks: Any) -> list[Any]:
    """The guard's own handlers among the inherited ``callbacks``: hold marks and live checks."""
    if isinstance(callbacks, BaseCallbackManager):
        handlers = callbacks.inheritable_handlers
    elif isinstance(callbacks, list):
        handlers = callbacks
    else:
        return []
    return [h for h in handlers if isinstance(h, _HoldMark) or getattr(h, "llamaguard_check", False)]


def install() -> None:
    """Wrap LangChain's callback-manager factory so that a run started inside a held run holds the observing
    handlers it brings itself (see the module). Idempotent."""
    original = getattr(_manager, "_configure", None)
    if not callable(original):  # never run without the hold: handlers would see unchecked content
        raise ImportError(
            "langchain_core.callbacks.manager._configure is missing: this langchain-core is not supported by "
            "llamaguard_guardrails.langchain (install the versions in constraints.txt)"
        )
    if getattr(original, "llamaguard_holds", False):
        return

    @functools.wraps(original)
    def configure(callback_manager_cls: Any, inheritable_callbacks: Any = None, *args: Any, **kwargs: Any) -> Any:
        manager = original(callback_manager_cls, inheritable_callbacks, *args, **kwargs)
        hold = innermost_hold(inheritable_callbacks)
        if hold is None and not _guard_handlers(inheritable_callbacks):
            # A run given its own config's callbacks (``model.invoke(x, config={"callbacks": [...]})`` inside a
            # guarded run) drops the inherited ones: the guard's checks and marks of the run it is started in
            # (LangChain's context config) are put back.
            context = (var_child_runnable_config.get() or {}).get("callbacks")
            hold = innermost_hold(context)
            for handler in _guard_handlers(context) if hold is not None else ():
                manager.add_handler(handler, inherit=True)
        if hold is not None:
            hold.hold_all(manager)
        return manager

    configure.llamaguard_holds = True  # type: ignore[attr-defined]
    _manager._configure = configure


for _event in _EVENTS:
    setattr(_StandIn, _event, _recorder(_event))
for _name in _IGNORES:
    setattr(_StandIn, _name, _ignore(_name))
install()


__all__ = ["ObserverHold", "Release", "checked_release", "guard_json", "innermost_hold", "install", "observes"]

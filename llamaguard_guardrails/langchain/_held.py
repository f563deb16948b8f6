"""What a tool streams while it runs is held until its result is checked.

A tool of a LangGraph agent can reach the stream's consumer before ``LlamaGuardMiddleware`` checks its result:
``get_stream_writer()`` / ``runtime.stream_writer`` writes go out at once (``stream_mode="custom"``), a chat
model the tool calls streams its tokens (``stream_mode="messages"``), and a graph the tool runs streams its own
chunks (``subgraphs=True``). So while a tool runs under the middleware (:meth:`HeldToolOutput.holding`):

- its runs are tagged ``"nostream"`` (LangGraph's messages stream skips the tokens of models it calls);
- its stream writer, the graph stream it hands to subgraphs and LangGraph's messages-stream callback are replaced
  by ones that hold every write, and the application's callback handlers by stand-ins (:mod:`._observers`).

After the tool returns, :meth:`HeldToolOutput.text` is what the guard is shown of the held writes (each one as a
line of JSON, messages as the guard shows them); the middleware checks it with the result and then
:meth:`HeldToolOutput.release` hands the writes on, in order, or drops them with a blocked result.

It patches the config dict the ``ToolNode`` hands the tool (``request.runtime.config``, the dict its tool run
receives), and restores it afterwards.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import BaseCallbackManager
from langgraph._internal._constants import CONF, CONFIG_KEY_RUNTIME, CONFIG_KEY_STREAM
from langgraph.constants import TAG_NOSTREAM
from langgraph.pregel._messages import StreamMessagesHandler
from langgraph.pregel.protocol import StreamProtocol

from ..core.errors import InvalidConversationError
from ._observers import ObserverHold, guard_json

_MISSING = object()


class HeldToolOutput:
    """The writes a tool made to the stream while it ran, each with the writer that releases it."""

    def __init__(self, checks: Sequence[Any] = ()) -> None:
        self.checks = list(checks)
        """Callback handlers that check the tool's runs live (the input of a model the tool calls)."""
        self.writes: list[tuple[Callable[[Any], Any], Any]] = []
        self.blocked: Any = None
        """The refusal when a check in :attr:`checks` stopped the tool (set by the middleware)."""
        self.observers = ObserverHold()
        """The events of the application's callback handlers (the tool's own run included: its raw result)."""
        self._lock = threading.Lock()

    def _hold(self, writer: Callable[[Any], Any]) -> Callable[[Any], None]:
        def hold(value: Any) -> None:
            with self._lock:
                self.writes.append((writer, value))

        return hold

    def patch(self, config: dict[str, Any]) -> dict[str, Any]:
        """The entries of a run's ``config`` to replace so that the run holds what it streams (see the module)."""
        conf = dict(config.get(CONF) or {})
        node_runtime = conf.get(CONFIG_KEY_RUNTIME)
        if node_runtime is not None and callable(getattr(node_runtime, "stream_writer", None)):
            conf[CONFIG_KEY_RUNTIME] = node_runtime.override(stream_writer=self._hold(node_runtime.stream_writer))
        stream = conf.get(CONFIG_KEY_STREAM)
        if isinstance(stream, StreamProtocol):
            conf[CONFIG_KEY_STREAM] = StreamProtocol(self._hold(stream), stream.modes)
        patched: dict[str, Any] = {"tags": [*(config.get("tags") or []), TAG_NOSTREAM], CONF: conf}
        callbacks = config.get("callbacks")
        if isinstance(callbacks, BaseCallbackManager):
            patched["callbacks"] = self._held_callbacks(callbacks)
            for check in self.checks:
                patched["callbacks"].add_handler(check, inherit=True)
        else:
            patched["callbacks"] = [*self.observers.held(callbacks), *self.checks]
        return patched

    @contextlib.contextmanager
    def holding(self, request: Any) -> Iterator[Any]:
        """``request`` (a ``ToolCallRequest``) set up to hold what its tool streams. The ``ToolNode`` runs the tool
        with the config dict of ``request.runtime``, so that dict is patched, and restored afterwards."""
        runtime = request.runtime
        config = getattr(runtime, "config", None)
        if not isinstance(config, dict):
            yield request
            return
        saved = {key: config.get(key, _MISSING) for key in ("tags", CONF, "callbacks")}
        config.update(self.patch(config))
        request = request.override(runtime=self._held_runtime(runtime))
        try:
            yield request
        finally:
            for key, value in saved.items():
                if value is _MISSING:
                    config.pop(key, None)
                else:
                    config[key] = value

    def held_input(self, tool_input: Any) -> Any:
        """``tool_input`` (arguments, or a ``ToolCall`` and its ``args``) with each injected ``ToolRuntime``'s
        stream writer holding its writes."""
        if not isinstance(tool_input, dict):
            return tool_input
        if tool_input.get("type") == "tool_call" and isinstance(tool_input.get("args"), dict):
            return {**tool_input, "args": self.held_input(tool_input["args"])}
        return {key: self._held_runtime(value, with_config=True) for key, value in tool_input.items()}

    def _held_runtime(self, value: Any, with_config: bool = False) -> Any:
        """A ``ToolRuntime`` whose stream writer holds (and, ``with_config``, whose config holds too: a graph the
        tool runs with it)."""
        if not (dataclasses.is_dataclass(value) and not isinstance(value, type)):
            return value
        if not callable(getattr(value, "stream_writer", None)):
            return value
        changes: dict[str, Any] = {"stream_writer": self._hold(value.stream_writer)}
        config = getattr(value, "config", None)
        if with_config and isinstance(config, dict):
            changes["config"] = {**config, **self.patch(config)}
        return dataclasses.replace(value, **changes)

    def _held_callbacks(self, manager: BaseCallbackManager) -> BaseCallbackManager:
        """``manager`` with LangGraph's messages-stream handler replaced by a copy that holds what it emits (the
        messages a graph's nodes return, when the tool runs a graph)."""
        copies: dict[int, Any] = {}

        def held(handler: Any) -> Any:
            if not isinstance(handler, StreamMessagesHandler):
                return handler
            if id(handler) not in copies:
                twin = copy.copy(handler)  # shares what it has seen and the runs it follows
                twin.stream = self._hold(handler.stream)
                copies[id(handler)] = twin
            return copies[id(handler)]

        manager = self.observers.held(manager)
        manager.handlers = [held(h) for h in manager.handlers]
        manager.inheritable_handlers = [held(h) for h in manager.inheritable_handlers]
        return manager

    @property
    def held_anything(self) -> bool:
        """Whether the tool streamed a write or an observed callback event while it ran."""
        return bool(self.writes or self.observers.events)

    def text(self) -> str:
        """The held writes as the guard is shown them: one line each, messages in the shape the guard reads; then
        what the held callback events carry (a custom event's data, a model's answer inside the tool: never part of
        the result). Events with no readable text are dropped, never shown unchecked."""
        writes = [guard_json(value, "a tool wrote to the stream") for _, value in self.writes]
        try:
            events = self.observers.text()
        except InvalidConversationError:
            self.observers.drop()
            events = ""
        return "\n".join([*writes, *([events] if events else [])])

    def release(self) -> None:
        """Hand every held write on, in order (the callback events: :attr:`observers`)."""
        writes, self.writes = self.writes, []
        for writer, value in writes:
            writer(value)

    def drop(self) -> None:
        self.writes = []
        self.observers.drop()


__all__ = ["HeldToolOutput"]

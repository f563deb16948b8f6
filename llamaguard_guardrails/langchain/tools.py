"""Guarded tools: arguments checked before a tool runs, results checked before they go back.

>>> safe_tools = guard_tools([search, run_python], guard)   # doctest: +SKIP
>>> agent = create_agent(model, tools=safe_tools)           # doctest: +SKIP

A guarded tool has the wrapped tool's name, description and argument schema, so models and agents
see no difference. Each call's arguments are checked as an assistant tool call (code-interpreter
tools, or a ``code``/``script``/``command`` argument, are shown to the model as code, so S14 Code
Interpreter Abuse applies); each result is checked as a tool message in the context of that call (a
LangGraph ``Command`` message by message, with its other state updates, ``Send`` inputs and ``resume``
value; a result the guard cannot read raises :class:`InvalidConversationError`). A model the tool calls
reads only checked input: each message of its input is checked (result policy) when its run starts.
A block becomes an error ``ToolMessage`` (``status="error"``, verdict in
``response_metadata["llamaguard"]``) when the tool is invoked with a ``ToolCall`` (as agents do),
the error text when invoked with plain arguments, or :class:`UnsafeContentError` with
``on_block="raise"``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from pydantic import ConfigDict, Field, field_validator

from ..core import messages as build
from ..core.errors import UnsafeContentError
from ..core.policy import Policy
from ..enforce import OnBlock, OnVerdict, Refusal, RefusalMessage, block_action, enforce, tool_refusal
from ..guard import LlamaGuard
from . import _steps
from ._common import refusal_tool_message, tool_steps
from ._held import HeldToolOutput
from ._model_input import InputBlocked, ModelInputCheck
from ._observers import Release
from ._steps import Call, Classify, Steps, check
from .convert import OpenAIMessage, tool_call_message


class GuardedTool(BaseTool):
    """A tool whose arguments and results are checked by Llama Guard. Build it with :func:`guard_tool`."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    tool: BaseTool
    guard: LlamaGuard
    policy: Policy | None = None
    """Policy of both checks (default: the guard's)."""
    args_policy: Policy | None = None
    result_policy: Policy | None = None
    check_args: bool = True
    check_result: bool = True
    on_block: OnBlock = "refuse"
    """``"refuse"``: an error ``ToolMessage`` (or text) in place of the call or result; ``"raise"``:
    :class:`UnsafeContentError`."""
    blocked_message: RefusalMessage = tool_refusal
    on_verdict: OnVerdict | None = Field(default=None, exclude=True)

    @field_validator("on_block", mode="before")
    @classmethod
    def _known_block_action(cls, value: str) -> OnBlock:
        return block_action(value)

    # The wrapped tool's schema, exactly (also for tools without an args_schema).
    @property
    def args(self) -> dict[str, Any]:
        return self.tool.args

    @property
    def tool_call_schema(self) -> Any:
        return self.tool.tool_call_schema

    def get_input_schema(self, config: RunnableConfig | None = None) -> Any:
        return self.tool.get_input_schema(config)

    def _run(self, *args: Any, **kwargs: Any) -> Any:  # never reached: run/arun are overridden
        raise NotImplementedError("GuardedTool runs through invoke/run")

    # -- checks -----------------------------------------------------------------------------------

    def _call(self, tool_input: Any, call_id: str | None) -> OpenAIMessage:
        shown = tool_input
        filter_injected = getattr(self.tool, "_filter_injected_args", None)
        if isinstance(tool_input, dict) and filter_injected is not None:
            shown = filter_injected(tool_input)  # what the model wrote, not injected state or runtime
        return tool_call_message(self.tool.name, shown, call_id)

    def _check(self, conversation: list[OpenAIMessage], stage: str) -> Steps[Refusal | None]:
        policy = self.args_policy if stage == "tool_call" else self.result_policy
        return check(self, conversation, stage, policy or self.policy, self.blocked_message)

    def _blocked(self, refusal: Refusal, call_id: str | None) -> Any:
        """An error ``ToolMessage`` for a ``ToolCall`` (as agents invoke tools), else the text."""
        return refusal.text if call_id is None else refusal_tool_message(refusal, call_id, self.tool.name)

    def _steps(self, tool_input: Any, args: tuple[Any, ...], call_id: str | None, kwargs: dict[str, Any]) -> Steps[Any]:
        """The guarded run; what the wrapped tool streams while it runs is held (see :mod:`._held`), checked with
        its result and released only when safe."""
        check = ModelInputCheck(self._judge, set(), self.check_result, stage="tool_result")
        held = HeldToolOutput(checks=[check])  # a model the tool calls reads only checked input
        config = {**(kwargs.get("config") or {}), **{k: kwargs[k] for k in ("tags", "callbacks") if k in kwargs}}
        patched = held.patch(config)
        top = {k: v for k, v in patched.items() if k in ("tags", "callbacks")}
        kwargs = {**kwargs, **top, "config": {**(kwargs.get("config") or {}), **patched}}
        refusals: list[Refusal] = []

        def blocked(refusal: Refusal) -> Any:
            refusals.append(refusal)
            return self._blocked(refusal, call_id)

        call = self._call(tool_input, call_id)
        result = yield from tool_steps(
            self._check,
            [],
            call,
            Call(
                self._stopping(self.tool.run, held, call_id),
                self._astopping(self.tool.arun, held, call_id),
                (held.held_input(tool_input), *args),
                {"tool_call_id": call_id, **kwargs},
            ),
            self.tool.name,
            call_id,
            blocked,
            check_call=self.check_args,
            check_result=self.check_result,
        )
        if held.blocked is not None and not refusals:
            if self.on_block == "raise":
                held.drop()
                raise UnsafeContentError(held.blocked.verdict, held.blocked.stage)
            result = blocked(held.blocked)
        if held.held_anything and not refusals and self.check_result:
            streamed = build.tool_result(held.text(), name=self.tool.name, call_id=call_id or "call")
            refusal = yield from self._check([call, streamed], "tool_result")
            if refusal is not None:
                result = blocked(refusal)
        if refusals:
            held.drop()
        else:
            held.release()
            yield Release(held.observers)
        return result

    def _judge(self, conversations: list[list[OpenAIMessage]], stage: str) -> Steps[list[Refusal | None]]:
        """Per conversation (a model's input inside the tool, see :mod:`._model_input`): ``None`` or its refusal."""
        if not conversations:
            return []
        policy = self.result_policy or self.policy
        verdicts = yield Classify(self.guard, conversations, policy, stage=stage)
        message = self.blocked_message
        return [
            enforce(v, stage, on_block="refuse", refusal_message=message, on_verdict=self.on_verdict) for v in verdicts
        ]

    def _stopping(self, run: Callable[..., Any], held: HeldToolOutput, call_id: str | None) -> Callable[..., Any]:
        """``run``, stopped where a model the tool calls was about to read blocked content (its refusal then)."""

        def stopping(*args: Any, **kwargs: Any) -> Any:
            try:
                return run(*args, **kwargs)
            except InputBlocked as stopped:
                held.blocked = stopped.refusal
                return self._blocked(stopped.refusal, call_id)

        return stopping

    def _astopping(self, arun: Callable[..., Any], held: HeldToolOutput, call_id: str | None) -> Callable[..., Any]:
        async def stopping(*args: Any, **kwargs: Any) -> Any:
            try:
                return await arun(*args, **kwargs)
            except InputBlocked as stopped:
                held.blocked = stopped.refusal
                return self._blocked(stopped.refusal, call_id)

        return stopping

    # -- running ----------------------------------------------------------------------------------

    def run(self, tool_input: Any, *args: Any, tool_call_id: str | None = None, **kwargs: Any) -> Any:
        """Check the arguments, run the wrapped tool, check its result."""
        return _steps.run(self._steps(tool_input, args, tool_call_id, kwargs))

    async def arun(self, tool_input: Any, *args: Any, tool_call_id: str | None = None, **kwargs: Any) -> Any:
        """Async :meth:`run`."""
        return await _steps.arun(self._steps(tool_input, args, tool_call_id, kwargs))


def guard_tool(tool: BaseTool, guard: LlamaGuard, **options: Any) -> GuardedTool:
    """Wrap ``tool`` so its arguments are checked before it runs and its result before it returns.

    Options: ``policy`` (or ``args_policy`` / ``result_policy``), ``check_args`` / ``check_result``,
    ``on_block`` (``"refuse"``: an error ``ToolMessage`` or text; ``"raise"``: raise
    :class:`UnsafeContentError`), ``blocked_message`` (text or ``f(verdict, stage)``), ``on_verdict``.

    >>> safe_python = guard_tool(python_repl, guard)                                  # doctest: +SKIP
    >>> safe_python.invoke({"name": "python_repl", "args": {"code": "..."}, "id": "1", "type": "tool_call"})  # doctest: +SKIP
    ToolMessage(content='Blocked by Llama Guard: ...', status='error', ...)
    """
    if not isinstance(tool, BaseTool):
        raise TypeError(f"guard_tool needs a LangChain BaseTool, got {type(tool).__name__}; wrap functions with @tool")
    return GuardedTool(
        tool=tool,
        guard=guard,
        name=tool.name,
        description=tool.description,
        args_schema=tool.args_schema,
        return_direct=tool.return_direct,
        response_format=tool.response_format,
        **options,
    )


def guard_tools(tools: Sequence[BaseTool], guard: LlamaGuard, **options: Any) -> list[GuardedTool]:
    """:func:`guard_tool` for each tool, all sharing one guard."""
    return [guard_tool(t, guard, **options) for t in tools]

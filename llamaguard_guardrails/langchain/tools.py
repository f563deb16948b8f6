"""Guarded tools: arguments checked before a tool runs, results checked before they go back.

>>> safe_tools = guard_tools([search, run_python], guard)   # doctest: +SKIP
>>> agent = create_agent(model, tools=safe_tools)           # doctest: +SKIP

A guarded tool has the wrapped tool's name, description and argument schema, so models and agents
see no difference. Each call's arguments are checked as an assistant tool call (code-interpreter
tools, or a ``code``/``script``/``command`` argument, are shown to the model as code, so S14 Code
Interpreter Abuse applies); each result is checked as a tool message in the context of that call (a
LangGraph ``Command`` message by message, with its other state updates, ``Send`` inputs and ``resume``
value; a result the guard cannot read raises :class:`InvalidConversationError`).
A block becomes an error ``ToolMessage`` (``status="error"``, verdict in
``response_metadata["llamaguard"]``) when the tool is invoked with a ``ToolCall`` (as agents do),
the error text when invoked with plain arguments, or :class:`UnsafeContentError` with
``on_block="raise"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from pydantic import ConfigDict, Field

from ..core.errors import UnsafeContentError
from ..core.policy import Policy
from ..core.verdict import Verdict
from ..guard import LlamaGuard
from . import _common
from ._common import OnVerdict, RefusalMessage
from .convert import OpenAIMessage, tool_call_message


def default_tool_block_message(verdict: Verdict, stage: str) -> str:
    """``"Blocked by Llama Guard: the tool call was ... The tool was not run."``"""
    if stage == "tool_call":
        return f"Blocked by Llama Guard: the tool call was {verdict.summary()}. The tool was not run."
    return f"Blocked by Llama Guard: the tool result was {verdict.summary()}. The result was withheld."


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
    on_block: Literal["error", "raise"] = "error"
    blocked_message: RefusalMessage = default_tool_block_message
    on_verdict: OnVerdict | None = Field(default=None, exclude=True)

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

    def _block(self, verdict: Verdict, stage: str, call_id: str | None) -> Any:
        if self.on_block == "raise":
            raise UnsafeContentError(verdict, stage)
        text = _common.refusal_text(self.blocked_message, verdict, stage)
        if call_id is None:
            return text
        return ToolMessage(
            content=text,
            tool_call_id=call_id,
            name=self.tool.name,
            status="error",
            response_metadata=_common.verdict_metadata(verdict, stage),
        )

    def _verdict(self, messages: list[OpenAIMessage], stage: str, policy: Policy | None) -> Verdict:
        return _common.classify(self.guard, messages, stage, policy or self.policy, self.on_verdict)

    async def _averdict(self, messages: list[OpenAIMessage], stage: str, policy: Policy | None) -> Verdict:
        return await _common.aclassify(self.guard, messages, stage, policy or self.policy, self.on_verdict)

    # -- running ----------------------------------------------------------------------------------

    def run(self, tool_input: Any, *args: Any, tool_call_id: str | None = None, **kwargs: Any) -> Any:
        """Check the arguments, run the wrapped tool, check its result."""
        call = self._call(tool_input, tool_call_id)
        if self.check_args:
            verdict = self._verdict([call], "tool_call", self.args_policy)
            if not verdict.safe:
                return self._block(verdict, "tool_call", tool_call_id)
        result = self.tool.run(tool_input, *args, tool_call_id=tool_call_id, **kwargs)
        if self.check_result:
            for checked in _common.tool_results(result, self.tool.name, tool_call_id):
                verdict = self._verdict([call, *checked], "tool_result", self.result_policy)
                if not verdict.safe:
                    return self._block(verdict, "tool_result", tool_call_id)
        return result

    async def arun(self, tool_input: Any, *args: Any, tool_call_id: str | None = None, **kwargs: Any) -> Any:
        """Async :meth:`run`."""
        call = self._call(tool_input, tool_call_id)
        if self.check_args:
            verdict = await self._averdict([call], "tool_call", self.args_policy)
            if not verdict.safe:
                return self._block(verdict, "tool_call", tool_call_id)
        result = await self.tool.arun(tool_input, *args, tool_call_id=tool_call_id, **kwargs)
        if self.check_result:
            for checked in _common.tool_results(result, self.tool.name, tool_call_id):
                verdict = await self._averdict([call, *checked], "tool_result", self.result_policy)
                if not verdict.safe:
                    return self._block(verdict, "tool_result", tool_call_id)
        return result


def guard_tool(tool: BaseTool, guard: LlamaGuard, **options: Any) -> GuardedTool:
    """Wrap ``tool`` so its arguments are checked before it runs and its result before it returns.

    Options: ``policy`` (or ``args_policy`` / ``result_policy``), ``check_args`` / ``check_result``,
    ``on_block`` (``"error"``: an error ``ToolMessage`` or text; ``"raise"``: raise
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

"""``LlamaGuardMiddleware``: Llama Guard for ``langchain.agents.create_agent`` agents.

>>> agent = create_agent(model, tools, middleware=[LlamaGuardMiddleware(guard)])  # doctest: +SKIP

Four checks, each with its own policy, all on one shared guard:

- **input** (``before_agent``): the new user turn, in the context of the thread. Blocked: the run
  ends with a refusal ``AIMessage`` (``jump_to="end"``); the model is never called.
- **output** (``wrap_model_call``): the model's answer, including the tool calls it proposes and
  provider-side tool calls in its content (``server_tool_call`` blocks such as a hosted code
  interpreter, checked as code under S14). The model runs with LangGraph's ``"nostream"`` tag and
  streaming off, so ``stream_mode="messages"`` never shows tokens before they are checked (an
  ``after_model`` hook would be too late: the tokens are already streamed) and the answer is checked
  whole, ``name`` included. Blocked: the answer is replaced by a refusal without tool calls, which
  ends the run.
- **tool_call** (``wrap_tool_call``): each tool call before it executes. Blocked: the tool does not
  run; the model gets an error ``ToolMessage`` instead.
- **tool_result** (``wrap_tool_call``): each tool result before the model sees it (every message and
  state update of a ``Command``). Blocked: the model gets an error ``ToolMessage`` instead of the result.

``on_block="raise"`` raises :class:`UnsafeContentError` at any stage instead. Every hook has a sync
and an async version. Refusals and blocked tool messages carry the verdict in
``response_metadata["llamaguard"]``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

from langchain.agents.middleware import (
    AgentMiddleware,
    ExtendedModelResponse,
    ModelRequest,
    ModelResponse,
    ToolCallRequest,
    hook_config,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langgraph.constants import TAG_NOSTREAM
from langgraph.runtime import Runtime

from ..core.errors import UnsafeContentError
from ..core.policy import Policy
from ..core.verdict import Verdict
from ..guard import LlamaGuard
from . import _common
from ._common import DEFAULT_REFUSAL, OnVerdict, RefusalMessage
from .convert import OpenAIMessage, message_to_openai, tool_call_message
from .tools import default_tool_block_message

log = logging.getLogger("llamaguard_guardrails.langchain")

ModelCallResult = ModelResponse | AIMessage | ExtendedModelResponse


class LlamaGuardMiddleware(AgentMiddleware):
    """Check user input, model output, tool calls and tool results of a ``create_agent`` agent.

    Args:
        guard: the loaded guard (share one between agents and other adapters).
        policy: default policy of every stage (default: the guard's).
        input_policy, output_policy, tool_call_policy, tool_result_policy: per-stage policies.
        check_input, check_output, check_tool_calls, check_tool_results: switch stages off.
        on_block: ``"end"`` (default: refuse and end the run / return error tool messages) or ``"raise"``.
        refusal_message: text (or ``f(verdict, stage)``) of the refusal for blocked input and output.
        tool_blocked_message: text (or ``f(verdict, stage)``) of the error ``ToolMessage`` for blocked tools.
        buffer_model_output: run the model with the ``"nostream"`` tag and streaming off so no token is
            streamed before its check (default True; turning it off leaks unchecked tokens to
            ``stream_mode="messages"``).
        on_verdict: called with every verdict and its stage.
    """

    def __init__(
        self,
        guard: LlamaGuard,
        *,
        policy: Policy | None = None,
        input_policy: Policy | None = None,
        output_policy: Policy | None = None,
        tool_call_policy: Policy | None = None,
        tool_result_policy: Policy | None = None,
        check_input: bool = True,
        check_output: bool = True,
        check_tool_calls: bool = True,
        check_tool_results: bool = True,
        on_block: Literal["end", "raise"] = "end",
        refusal_message: RefusalMessage = DEFAULT_REFUSAL,
        tool_blocked_message: RefusalMessage = default_tool_block_message,
        buffer_model_output: bool = True,
        on_verdict: OnVerdict | None = None,
    ) -> None:
        if on_block not in ("end", "raise"):
            raise ValueError(f"on_block must be 'end' or 'raise', got {on_block!r}")
        self.guard = guard
        self.policies: dict[str, Policy | None] = {
            "input": input_policy or policy,
            "output": output_policy or policy,
            "tool_call": tool_call_policy or policy,
            "tool_result": tool_result_policy or policy,
        }
        self.check_input = check_input
        self.check_output = check_output
        self.check_tool_calls = check_tool_calls
        self.check_tool_results = check_tool_results
        self.on_block = on_block
        self.refusal_message = refusal_message
        self.tool_blocked_message = tool_blocked_message
        self.buffer_model_output = buffer_model_output
        self.on_verdict = on_verdict
        self.tools = []

    # -- checks -----------------------------------------------------------------------------------

    def _verdict(self, messages: list[OpenAIMessage], stage: str) -> Verdict:
        return _common.classify(self.guard, messages, stage, self.policies[stage], self.on_verdict)

    async def _averdict(self, messages: list[OpenAIMessage], stage: str) -> Verdict:
        return await _common.aclassify(self.guard, messages, stage, self.policies[stage], self.on_verdict)

    def _raise_or(self, verdict: Verdict, stage: str) -> None:
        if self.on_block == "raise":
            raise UnsafeContentError(verdict, stage)

    def _refusal(self, verdict: Verdict, stage: str) -> AIMessage:
        self._raise_or(verdict, stage)
        return _common.refusal(self.refusal_message, verdict, stage)

    def _tool_block(self, verdict: Verdict, stage: str, call: dict[str, Any]) -> ToolMessage:
        self._raise_or(verdict, stage)
        return ToolMessage(
            content=_common.refusal_text(self.tool_blocked_message, verdict, stage),
            tool_call_id=call.get("id") or "",
            name=call["name"],
            status="error",
            response_metadata=_common.verdict_metadata(verdict, stage),
        )

    # -- input ------------------------------------------------------------------------------------

    def _user_turn(self, state: Any) -> list[OpenAIMessage] | None:
        messages = _state_messages(state)
        if not self.check_input or not messages or isinstance(messages[-1], AIMessage):
            return None  # nothing new from the user
        return _convert(messages)

    def _end(self, verdict: Verdict) -> dict[str, Any]:
        return {"messages": [self._refusal(verdict, "input")], "jump_to": "end"}

    @hook_config(can_jump_to=["end"])
    def before_agent(self, state: Any, runtime: Runtime) -> dict[str, Any] | None:
        """Check the user turn; refuse and end the run (the model is never called) when unsafe."""
        conversation = self._user_turn(state)
        if conversation is None:
            return None
        verdict = self._verdict(conversation, "input")
        return None if verdict.safe else self._end(verdict)

    @hook_config(can_jump_to=["end"])
    async def abefore_agent(self, state: Any, runtime: Runtime) -> dict[str, Any] | None:
        conversation = self._user_turn(state)
        if conversation is None:
            return None
        verdict = await self._averdict(conversation, "input")
        return None if verdict.safe else self._end(verdict)

    # -- model output -----------------------------------------------------------------------------

    def _buffered(self, request: ModelRequest) -> ModelRequest:
        """The request with the model tagged "nostream" (LangGraph streams none of its tokens) and, for a chat
        model, with streaming off: its answer arrives whole, with the fields that adding streamed chunks drops
        (a chunk's ``name``), so the output check sees everything the answer carries."""
        if not self.buffer_model_output:
            return request
        model = request.model
        tags = list(getattr(model, "tags", None) or [])
        update: dict[str, Any] = {}
        if TAG_NOSTREAM not in tags:
            update["tags"] = [*tags, TAG_NOSTREAM]
        if isinstance(model, BaseChatModel) and model.disable_streaming is not True:
            update["disable_streaming"] = True
        if not update:
            return request
        try:
            tagged = model.model_copy(update=update)
        except AttributeError:
            log.warning(
                "cannot tag %s with 'nostream': its tokens may stream before the output check",
                type(model).__name__,
            )
            return request
        return request.override(model=tagged)

    def _answers(self, request: ModelRequest, response: ModelCallResult) -> list[list[OpenAIMessage]]:
        """One conversation per AI message of the response: the request's messages, then that answer."""
        if not self.check_output:
            return []
        context = [request.system_message, *request.messages] if request.system_message else list(request.messages)
        history = _convert(context)
        return [history + [message_to_openai(m)] for m in _result_messages(response) if isinstance(m, AIMessage)]

    def wrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], ModelResponse]
    ) -> ModelCallResult:
        """Run the model without streaming tokens, check its answer, refuse when unsafe."""
        response = handler(self._buffered(request))
        for conversation in self._answers(request, response):
            verdict = self._verdict(conversation, "output")
            if not verdict.safe:
                return ModelResponse(result=[self._refusal(verdict, "output")])
        return response

    async def awrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], Awaitable[ModelResponse]]
    ) -> ModelCallResult:
        response = await handler(self._buffered(request))
        for conversation in self._answers(request, response):
            verdict = await self._averdict(conversation, "output")
            if not verdict.safe:
                return ModelResponse(result=[self._refusal(verdict, "output")])
        return response

    # -- tools ------------------------------------------------------------------------------------

    def _call(self, request: ToolCallRequest) -> tuple[list[OpenAIMessage], OpenAIMessage]:
        """(conversation before the proposing model turn, the call as an assistant message)."""
        call = request.tool_call
        messages = _common.before_proposing_turn(_state_messages(request.state), call.get("id"))
        context = _convert(messages) if messages else []
        return context, tool_call_message(call["name"], call.get("args", {}), call.get("id"))

    def wrap_tool_call(self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], Any]) -> Any:
        """Check the call before the tool runs and the result before the model sees it."""
        context, call = self._call(request)
        if self.check_tool_calls:
            verdict = self._verdict(context + [call], "tool_call")
            if not verdict.safe:
                return self._tool_block(verdict, "tool_call", request.tool_call)
        result = handler(request)
        if self.check_tool_results:
            for checked in _common.tool_results(result, request.tool_call["name"], request.tool_call.get("id")):
                verdict = self._verdict([*context, call, *checked], "tool_result")
                if not verdict.safe:
                    return self._tool_block(verdict, "tool_result", request.tool_call)
        return result

    async def awrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], Awaitable[Any]]
    ) -> Any:
        context, call = self._call(request)
        if self.check_tool_calls:
            verdict = await self._averdict(context + [call], "tool_call")
            if not verdict.safe:
                return self._tool_block(verdict, "tool_call", request.tool_call)
        result = await handler(request)
        if self.check_tool_results:
            for checked in _common.tool_results(result, request.tool_call["name"], request.tool_call.get("id")):
                verdict = await self._averdict([*context, call, *checked], "tool_result")
                if not verdict.safe:
                    return self._tool_block(verdict, "tool_result", request.tool_call)
        return result


def _state_messages(state: Any) -> Sequence[BaseMessage]:
    if isinstance(state, dict):
        return state.get("messages") or []
    return getattr(state, "messages", None) or []


def _convert(messages: Sequence[BaseMessage]) -> list[OpenAIMessage]:
    return [message_to_openai(m) for m in messages]


def _result_messages(response: ModelCallResult) -> list[BaseMessage]:
    if isinstance(response, AIMessage):
        return [response]
    if isinstance(response, ExtendedModelResponse):
        return list(response.model_response.result)
    return list(response.result)

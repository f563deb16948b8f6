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
from langchain_core.messages import AIMessage, BaseMessage
from langgraph.constants import TAG_NOSTREAM
from langgraph.runtime import Runtime

from ..core.policy import Policy
from ..enforce import DEFAULT_REFUSAL, OnBlock, OnReview, OnVerdict, Refusal, RefusalMessage, block_action, tool_refusal
from ..guard import LlamaGuard
from ._common import before_proposing_turn, refusal_like
from ._steps import Call, Steps, arun, check, run
from .convert import OpenAIMessage, message_to_openai
from .review import reviewed_tool_steps

log = logging.getLogger("llamaguard_guardrails.langchain")

ModelCallResult = ModelResponse | AIMessage | ExtendedModelResponse


class LlamaGuardMiddleware(AgentMiddleware):
    """Check user input, model output, tool calls and tool results of a ``create_agent`` agent.

    Args:
        guard: the loaded guard (share one between agents and other adapters).
        policy: default policy of every stage (default: the guard's).
        input_policy, output_policy, tool_call_policy, tool_result_policy: per-stage policies.
        check_input, check_output, check_tool_calls, check_tool_results: switch stages off.
        on_block: ``"refuse"`` (default: refuse and end the run / return error tool messages), ``"raise"``, or
            ``"interrupt"`` (blocked tool calls pause the run for a human; other stages refuse)
            (``"end"``, the old name of ``"refuse"``, works for one more release with a ``DeprecationWarning``).
        refusal_message: text (or ``f(verdict, stage)``) of the refusal for blocked input and output.
        tool_blocked_message: text (or ``f(verdict, stage)``) of the error ``ToolMessage`` for blocked tools.
        buffer_model_output: run the model with the ``"nostream"`` tag and streaming off so no token is
            streamed before its check (default True; turning it off leaks unchecked tokens to
            ``stream_mode="messages"``).
        on_verdict: called with every verdict and its stage.
        on_review: decides a verdict in review at stages that cannot pause (input, output, tool result): ``True``
            lets it through; without it that content is held back. A tool call in review pauses the run for a
            human instead (``on_block="interrupt"``: every blocked tool call too); see :mod:`.review`.
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
        on_block: OnBlock | Literal["end", "interrupt"] = "refuse",
        refusal_message: RefusalMessage = DEFAULT_REFUSAL,
        tool_blocked_message: RefusalMessage = tool_refusal,
        buffer_model_output: bool = True,
        on_verdict: OnVerdict | None = None,
        on_review: OnReview | None = None,
    ) -> None:
        self.interrupt_blocks = on_block == "interrupt"  # tool calls go to a human (langchain/review.py)
        self.on_block = "refuse" if self.interrupt_blocks else block_action(on_block)
        self.on_review = on_review
        self.guard = guard
        self.policies: dict[str, Policy | None] = {
            "input": input_policy or policy,
            "output": output_policy or policy,
            "tool_call": tool_call_policy or policy,
            "tool_result": tool_result_policy or policy,
        }
        self.checks = {
            "input": check_input,
            "output": check_output,
            "tool_call": check_tool_calls,
            "tool_result": check_tool_results,
        }
        self.refusal_messages: dict[str, RefusalMessage] = {
            "input": refusal_message,
            "output": refusal_message,
            "tool_call": tool_blocked_message,
            "tool_result": tool_blocked_message,
        }
        self.buffer_model_output = buffer_model_output
        self.on_verdict = on_verdict
        self.tools = []

    # -- checks -----------------------------------------------------------------------------------

    def _check(self, conversation: list[OpenAIMessage], stage: str) -> Steps[Refusal | None]:
        """``None`` when ``conversation`` may go on; else the refusal (``on_block="raise"`` raises)."""
        return check(self, conversation, stage, self.policies[stage], self.refusal_messages[stage])

    # -- input ------------------------------------------------------------------------------------

    def _user_turn(self, state: Any) -> list[OpenAIMessage] | None:
        messages = _state_messages(state)
        if not self.checks["input"] or not messages or isinstance(messages[-1], AIMessage):
            return None  # nothing new from the user
        return _convert(messages)

    def _before_agent(self, state: Any) -> Steps[dict[str, Any] | None]:
        conversation = self._user_turn(state)
        if conversation is None:
            return None
        refusal = yield from self._check(conversation, "input")
        return None if refusal is None else {"messages": [refusal_like(refusal)], "jump_to": "end"}

    @hook_config(can_jump_to=["end"])
    def before_agent(self, state: Any, runtime: Runtime) -> dict[str, Any] | None:
        """Check the user turn; refuse and end the run (the model is never called) when unsafe."""
        return run(self._before_agent(state))

    @hook_config(can_jump_to=["end"])
    async def abefore_agent(self, state: Any, runtime: Runtime) -> dict[str, Any] | None:
        return await arun(self._before_agent(state))

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
        if not self.checks["output"]:
            return []
        context = [request.system_message, *request.messages] if request.system_message else list(request.messages)
        history = _convert(context)
        return [history + [message_to_openai(m)] for m in _result_messages(response) if isinstance(m, AIMessage)]

    def _model_call(self, request: ModelRequest, handler: Callable[..., Any]) -> Steps[ModelCallResult]:
        response = yield Call(handler, handler, (self._buffered(request),))
        for conversation in self._answers(request, response):
            refusal = yield from self._check(conversation, "output")
            if refusal is not None:
                return ModelResponse(result=[refusal_like(refusal)])
        return response

    def wrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], ModelResponse]
    ) -> ModelCallResult:
        """Run the model without streaming tokens, check its answer, refuse when unsafe."""
        return run(self._model_call(request, handler))

    async def awrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], Awaitable[ModelResponse]]
    ) -> ModelCallResult:
        return await arun(self._model_call(request, handler))

    # -- tools ------------------------------------------------------------------------------------

    def _tool_call(self, request: ToolCallRequest, handler: Callable[..., Any]) -> Steps[Any]:
        """The call checked in the conversation before the model turn that proposed it, then its result."""
        call = request.tool_call
        messages = before_proposing_turn(_state_messages(request.state), call.get("id"))
        context = _convert(messages) if messages else []
        return reviewed_tool_steps(self, request, handler, context, self._check, interrupt_blocks=self.interrupt_blocks)

    def wrap_tool_call(self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], Any]) -> Any:
        """Check the call before the tool runs and the result before the model sees it."""
        return run(self._tool_call(request, handler))

    async def awrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], Awaitable[Any]]
    ) -> Any:
        return await arun(self._tool_call(request, handler))


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

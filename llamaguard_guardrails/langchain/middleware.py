"""``LlamaGuardMiddleware``: Llama Guard for ``langchain.agents.create_agent`` agents.

>>> agent = create_agent(model, tools, middleware=[LlamaGuardMiddleware(guard)])  # doctest: +SKIP

Four checks, each with its own policy, all on one shared guard:

- **input** (``before_agent`` and ``before_model``): every message of the thread's state the guard has not checked, whatever its
  role (a new user turn, several messages, AI or tool messages added with ``update_state``, a tool call edited
  by a resumed interrupt), each in the context before it, before the model runs. What was checked is kept in a
  private state key (see :mod:`._thread`), so each message is checked once across runs of a checkpointed
  thread. Blocked: each blocked message is replaced in the state, under its id, by a fixed-text placeholder,
  and the run ends with a refusal ``AIMessage`` after it (``jump_to="end"``); the model is never called, and
  later turns (and later checks) read the placeholder, never the content. The record is keyed with
  ``record_key``, so whoever writes the state cannot mark content as checked. The model's *request* is checked
  again when each model run inside the model call starts (:mod:`._model_input`): what other middlewares add
  (a dynamic prompt, messages, a summary, a fallback model) reaches no model unchecked.
- **output** (``wrap_model_call``): the model's answer, including the tool calls it proposes and
  provider-side tool calls in its content (``server_tool_call`` blocks such as a hosted code
  interpreter, checked as code under S14). The model runs with LangGraph's ``"nostream"`` tag and
  streaming off, so ``stream_mode="messages"`` never shows tokens before they are checked (an
  ``after_model`` hook would be too late: the tokens are already streamed) and the answer is checked
  whole, ``name`` included. Blocked: the answer is replaced by a refusal without tool calls, which
  ends the run.
- **tool_call** (``wrap_tool_call``): each tool call before it executes. Blocked: the tool does not
  run; the model gets an error ``ToolMessage`` instead, and the call's arguments are emptied in the state.
- **tool_result** (``wrap_tool_call``): each tool result before the model sees it (every message and
  state update of a ``Command``), with what the tool streamed while it ran (held until then, see
  :mod:`._held`); a model the tool calls reads only checked input. Blocked: the model gets an error
  ``ToolMessage`` instead of the result.

Callback handlers of the application see the model's and the tools' runs only once they are checked
(:mod:`._observers`).

``on_block="raise"`` does all of that (so the thread's state is clean) and then ends the run and raises
:class:`UnsafeContentError` (from ``after_agent``), whatever the stage; nothing runs after a block. Blocked
answers never enter the state: the refusal stands in their place. Every hook has a sync and an async version. Refusals and blocked tool messages carry the verdict in
``response_metadata["llamaguard"]``.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, Literal, NotRequired

from langchain.agents.middleware import (
    AgentMiddleware,
    AgentState,
    ExtendedModelResponse,
    ModelRequest,
    ModelResponse,
    ToolCallRequest,
    hook_config,
)
from langchain.agents.middleware.types import PrivateStateAttr
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langgraph.constants import TAG_NOSTREAM
from langgraph.runtime import Runtime
from langgraph.types import Command

from ..core import messages as build
from ..core.errors import UnsafeContentError
from ..core.policy import Policy
from ..core.verdict import Verdict
from ..enforce import (
    DEFAULT_REFUSAL,
    OnBlock,
    OnReview,
    OnVerdict,
    Refusal,
    RefusalMessage,
    block_action,
    enforce,
    tool_refusal,
)
from ..guard import LlamaGuard
from . import _thread as thread
from ._common import METADATA_KEY, before_proposing_turn, refusal_like, refusal_tool_message
from ._held import HeldToolOutput
from ._model_input import InputBlocked, ModelInputCheck, guarded_model_calls
from ._observers import ObserverHold, Release, checked_release
from ._steps import Call, Classify, Steps, arun, run
from .convert import OpenAIMessage, message_to_openai, tool_call_message
from .review import reviewed_tool_steps

log = logging.getLogger("llamaguard_guardrails.langchain")


def _union(left: list[str] | None, right: list[str] | None) -> list[str]:
    """The reducer of the checked record: every fingerprint of both, in order, once."""
    merged = dict.fromkeys(left or ())
    merged.update(dict.fromkeys(right or ()))
    return list(merged)


class GuardState(AgentState[Any]):
    """The agent state with the middleware's private keys (never in the agent's input or output): the
    fingerprints of the messages checked (:data:`._thread.CHECKED_KEY`) and the block a raise-mode run raises
    when it ends (:data:`._thread.BLOCK_KEY`)."""

    llamaguard_checked: NotRequired[Annotated[list[str], PrivateStateAttr, _union]]
    llamaguard_block: NotRequired[Annotated[dict[str, Any] | None, PrivateStateAttr]]


ModelCallResult = ModelResponse | AIMessage | ExtendedModelResponse


class LlamaGuardMiddleware(AgentMiddleware):
    """Check user input, model output, tool calls and tool results of a ``create_agent`` agent.

    Args:
        guard: the loaded guard (share one between agents and other adapters).
        policy: default policy of every stage (default: the guard's).
        input_policy, output_policy, tool_call_policy, tool_result_policy: per-stage policies.
        check_input, check_output, check_tool_calls, check_tool_results: switch stages off.
        on_block: ``"refuse"`` (default: refuse and end the run / return error tool messages), ``"raise"`` (the
            same, then the run ends and ``after_agent`` raises :class:`UnsafeContentError`), or ``"interrupt"``
            (blocked tool calls pause the run for a human; other stages refuse).
        refusal_message: text (or ``f(verdict, stage)``) of the refusal for blocked input and output.
        tool_blocked_message: text (or ``f(verdict, stage)``) of the error ``ToolMessage`` for blocked tools.
        buffer_model_output: run the model with the ``"nostream"`` tag and streaming off so no token is
            streamed before its check (default True; turning it off leaks unchecked tokens to
            ``stream_mode="messages"``).
        on_verdict: called with every verdict and its stage.
        on_review: decides a verdict in review at stages that cannot pause (input, output, tool result): ``True``
            lets it through; without it that content is held back. A tool call in review pauses the run for a
            human instead (``on_block="interrupt"``: every blocked tool call too); see :mod:`.review`.
        record_key: the secret that keys the thread's record of checked messages (default: random per instance,
            so a message is checked again by another process). Give the processes serving one thread the same
            key; whoever writes the thread's state cannot forge the record without it.
    """

    state_schema = GuardState

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
        on_block: OnBlock | Literal["interrupt"] = "refuse",
        refusal_message: RefusalMessage = DEFAULT_REFUSAL,
        tool_blocked_message: RefusalMessage = tool_refusal,
        buffer_model_output: bool = True,
        on_verdict: OnVerdict | None = None,
        on_review: OnReview | None = None,
        record_key: bytes | None = None,
    ) -> None:
        self.record_key = record_key if record_key is not None else secrets.token_bytes(32)
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

    def _judge(self, conversations: list[list[OpenAIMessage]], stage: str) -> Steps[list[Refusal | None]]:
        """Per conversation (one batched pass): ``None`` when it may go on, else its refusal. Never raises a
        block: under ``on_block="raise"`` the hooks clean the state first and raise when the run ends."""
        if not conversations:
            return []
        verdicts = yield Classify(self.guard, conversations, self.policies[stage], stage=stage)
        message = self.refusal_messages[stage]
        return [
            enforce(
                v,
                stage,
                on_block="refuse",
                refusal_message=message,
                on_verdict=self.on_verdict,
                on_review=self.on_review,
            )
            for v in verdicts
        ]

    def _check(self, conversation: list[OpenAIMessage], stage: str) -> Steps[Refusal | None]:
        (refusal,) = yield from self._judge([conversation], stage)
        return refusal

    def _blocked(self, update: dict[str, Any], refusal: Refusal) -> dict[str, Any]:
        """``update``, recording the block a ``on_block="raise"`` run raises when it ends."""
        if self.on_block == "raise":
            update[thread.BLOCK_KEY] = {"stage": refusal.stage, "verdict": refusal.verdict.model_dump(mode="json")}
        return update

    # -- run start and end ----------------------------------------------------------------------------

    def _before_agent(self, state: Any) -> Steps[dict[str, Any] | None]:
        """Forget a block raised at the end of the thread's last run (an ``after_agent`` raise keeps no writes),
        then check what entered the thread since (a new turn, ``update_state``): before any ``before_model`` hook
        of another middleware reads it (a ``SummarizationMiddleware`` before the guard sends it to its model)."""
        stale = bool(_get(state, thread.BLOCK_KEY))
        if stale:
            state = {**state, thread.BLOCK_KEY: None} if isinstance(state, dict) else state
        update = yield from self._before_model(state)
        if stale:
            update = {thread.BLOCK_KEY: None, **(update or {})}
        return update

    @hook_config(can_jump_to=["end"])
    def before_agent(self, state: Any, runtime: Runtime) -> dict[str, Any] | None:
        return run(self._before_agent(state))

    @hook_config(can_jump_to=["end"])
    async def abefore_agent(self, state: Any, runtime: Runtime) -> dict[str, Any] | None:
        return await arun(self._before_agent(state))

    def after_agent(self, state: Any, runtime: Runtime) -> dict[str, Any] | None:
        """Under ``on_block="raise"``: raise the run's block, now that the state is clean and nothing else runs."""
        block = _get(state, thread.BLOCK_KEY)
        if block:
            raise UnsafeContentError(Verdict.model_validate(block["verdict"]), block["stage"])
        return None

    async def aafter_agent(self, state: Any, runtime: Runtime) -> dict[str, Any] | None:
        return self.after_agent(state, runtime)

    # -- input ------------------------------------------------------------------------------------

    def _before_model(self, state: Any) -> Steps[dict[str, Any] | None]:
        messages = list(_state_messages(state))
        redacted = thread.redact_blocked_calls(messages)
        if _get(state, thread.BLOCK_KEY):  # blocked earlier in this run (raise): nothing more runs
            return {
                "messages": redacted,
                thread.CHECKED_KEY: thread.fingerprints(redacted, self.record_key),
                "jump_to": "end",
            }
        by_id = {m.id: m for m in redacted}
        messages = [by_id.get(m.id, m) for m in messages]
        checked = set(_get(state, thread.CHECKED_KEY) or ()) | set(thread.fingerprints(redacted, self.record_key))
        new = (
            [i for i, m in enumerate(messages) if thread.fingerprint(m, self.record_key) not in checked]
            if self.checks["input"]
            else []
        )
        refusals = yield from self._judge([_convert(messages[: i + 1]) for i in new], "input")
        blocked = {i: r for i, r in zip(new, refusals) if r is not None}
        written: list[BaseMessage] = list(redacted)
        for i, refusal in blocked.items():
            meta = thread.withheld_metadata(refusal_like(refusal).response_metadata[METADATA_KEY])
            written.append(thread.withheld(messages[i], meta))
        passed = [messages[i] for i in new if i not in blocked]
        if blocked:
            first = next(iter(blocked.values()))
            written.append(thread.with_id(refusal_like(first)))
        if not written and not new:
            return None
        update: dict[str, Any] = {thread.CHECKED_KEY: thread.fingerprints([*passed, *written], self.record_key)}
        if written:
            update["messages"] = written
        if blocked:
            update["jump_to"] = "end"
            self._blocked(update, first)
        return update

    @hook_config(can_jump_to=["end"])
    def before_model(self, state: Any, runtime: Runtime) -> dict[str, Any] | None:
        """Check every message not checked yet; replace the blocked ones and end the run (the model is never
        called) when one is unsafe."""
        return run(self._before_model(state))

    @hook_config(can_jump_to=["end"])
    async def abefore_model(self, state: Any, runtime: Runtime) -> dict[str, Any] | None:
        return await arun(self._before_model(state))

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
        """One conversation per message of the response (each after the request's messages and the ones before
        it): the answers, and any other message a middleware inside the guard put into the response."""
        if not self.checks["output"]:
            return []
        context = [request.system_message, *request.messages] if request.system_message else list(request.messages)
        history = _convert(context)
        conversations = []
        for message in _result_messages(response):
            history = [*history, message_to_openai(message)]
            conversations.append(history)
        return conversations

    def _model_call(self, request: ModelRequest, handler: Callable[..., Any]) -> Steps[ModelCallResult]:
        """The handler runs with every model run inside it tagged "nostream" and its input checked when it starts
        (see :mod:`._model_input`), then the answer is checked."""
        known = set(_get(request.state, thread.CHECKED_KEY) or ())
        inputs = ModelInputCheck(self._judge, known, self.checks["input"], self.record_key)
        hold = ObserverHold()

        def call(req: ModelRequest) -> Any:
            try:
                with guarded_model_calls(inputs, hold, self.buffer_model_output):
                    return handler(req)
            except InputBlocked as blocked:
                return blocked

        async def acall(req: ModelRequest) -> Any:
            try:
                with guarded_model_calls(inputs, hold, self.buffer_model_output):
                    return await handler(req)
            except InputBlocked as blocked:
                return blocked

        response = yield Call(call, acall, (self._buffered(request),))
        if isinstance(response, InputBlocked):
            hold.drop()
            return self._refused(response.refusal, inputs.checked, request, response.messages)
        for conversation in self._answers(request, response):
            refusal = yield from self._check(conversation, "output")
            if refusal is not None:
                hold.drop()
                return self._refused(refusal, inputs.checked)
        if self.checks["output"]:  # what the held events carry (a second model asked inside the call) is checked
            context = [request.system_message, *request.messages] if request.system_message else request.messages
            policy = self.policies["output"]
            yield from checked_release(hold, self.guard, _convert(list(context)), policy, "output", self.on_review)
        else:
            yield Release(hold)
        return _checked_answers(response, inputs.checked, self.record_key)

    def _refused(
        self,
        refusal: Refusal,
        checked: list[str],
        request: ModelRequest | None = None,
        blocked: Sequence[BaseMessage] = (),
    ) -> ExtendedModelResponse:
        """The refusal in place of the model's answer; blocked input messages that are in the thread's state are
        replaced there by placeholders (a summary another middleware wrote, say)."""
        answer = thread.with_id(refusal_like(refusal))
        in_state = {m.id for m in _state_messages(request.state)} if request is not None else set()
        meta = thread.withheld_metadata(refusal_like(refusal).response_metadata[METADATA_KEY])
        withheld = [thread.withheld(m, meta) for m in blocked if m.id and m.id in in_state]
        update: dict[str, Any] = {
            thread.CHECKED_KEY: [*checked, *thread.fingerprints([answer, *withheld], self.record_key)]
        }
        if withheld:
            update["messages"] = withheld
        return ExtendedModelResponse(
            model_response=ModelResponse(result=[answer]), command=Command(update=self._blocked(update, refusal))
        )

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

    def _tool_call(self, request: ToolCallRequest, handler: Callable[..., Any], held: HeldToolOutput) -> Steps[Any]:
        """The call checked in the conversation before the model turn that proposed it, then its result and what
        the tool streamed while it ran (``held``: released only when safe)."""
        call = request.tool_call
        messages = before_proposing_turn(_state_messages(request.state), call.get("id"))
        context = _convert(messages) if messages else []
        refusals: list[Refusal] = []
        result = yield from reviewed_tool_steps(
            self,
            request,
            handler,
            context,
            self._check,
            interrupt_blocks=self.interrupt_blocks,
            on_refusal=refusals.append,
        )
        if held.blocked is not None:
            refusals.append(held.blocked)
        if held.held_anything and not refusals and self.checks["tool_result"]:
            streamed = build.tool_result(held.text(), name=call["name"], call_id=call.get("id") or "call")
            shown_call = tool_call_message(call["name"], call.get("args", {}), call.get("id"))
            refusal = yield from self._check([*context, shown_call, streamed], "tool_result")
            if refusal is not None:
                refusals.append(refusal)
                result = refusal_tool_message(refusal, call.get("id") or "", call["name"])
        if refusals:
            held.drop()
        else:
            held.release()
            yield Release(held.observers)
        if not isinstance(result, ToolMessage):
            return result  # a Command: its messages are checked again before the model reads them
        message = thread.with_id(result)
        update: dict[str, Any] = {
            "messages": [message],
            thread.CHECKED_KEY: thread.fingerprints([message], self.record_key),
        }
        return Command(update=self._blocked(update, refusals[0]) if refusals else update)

    def wrap_tool_call(self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], Any]) -> Any:
        """Check the call before the tool runs and the result (and what the tool streamed) before the model or
        the stream's consumer sees it."""
        held = self._held(request)

        def holding(req: ToolCallRequest) -> Any:
            try:
                with held.holding(req) as req:
                    return handler(req)
            except InputBlocked as blocked:
                return self._tool_input_blocked(held, blocked, req)

        return run(self._tool_call(request, holding, held))

    async def awrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], Awaitable[Any]]
    ) -> Any:
        held = self._held(request)

        async def holding(req: ToolCallRequest) -> Any:
            try:
                with held.holding(req) as req:
                    return await handler(req)
            except InputBlocked as blocked:
                return self._tool_input_blocked(held, blocked, req)

        return await arun(self._tool_call(request, holding, held))

    def _held(self, request: ToolCallRequest) -> HeldToolOutput:
        """What holds the tool's streams while it runs, with a live check of what a model the tool calls reads
        (a page the tool fetched reaches that model only once checked, under the tool-result policy)."""
        known = set(_get(request.state, thread.CHECKED_KEY) or ())
        check = ModelInputCheck(self._judge, known, self.checks["tool_result"], self.record_key, stage="tool_result")
        return HeldToolOutput(checks=[check])

    def _tool_input_blocked(self, held: HeldToolOutput, blocked: InputBlocked, request: ToolCallRequest) -> ToolMessage:
        """The error tool message for a tool whose model was about to read blocked content (the tool stops there)."""
        held.blocked = blocked.refusal
        call = request.tool_call
        return refusal_tool_message(blocked.refusal, call.get("id") or "", call["name"])


def _checked_answers(response: ModelCallResult, inputs: list[str], key: bytes) -> ModelCallResult:
    """The model's answers, each with an id, and their fingerprints recorded as checked (the output check has
    run, or was switched off: either way the next input check does not check them again), with ``inputs``, the
    fingerprints of the request's messages checked at the model call."""
    if isinstance(response, ExtendedModelResponse):
        return response  # another middleware's state update: its answers are checked again as input
    result = [thread.with_id(m) for m in _result_messages(response)]
    structured = None if isinstance(response, AIMessage) else response.structured_response
    update = {thread.CHECKED_KEY: [*inputs, *thread.fingerprints(result, key)]}
    return ExtendedModelResponse(
        model_response=ModelResponse(result=result, structured_response=structured), command=Command(update=update)
    )


def _get(state: Any, key: str) -> Any:
    return state.get(key) if isinstance(state, dict) else getattr(state, key, None)


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

"""A callback handler that checks what passes through LangChain callbacks: a hard stop and an audit log.

>>> handler = LlamaGuardCallbackHandler(guard)                       # doctest: +SKIP
>>> llm.invoke("...", config={"callbacks": [handler]})               # raises UnsafeContentError when unsafe
>>> handler.records                                                  # every verdict, with its stage and run id

For code you cannot restructure: attach it to any model, chain, tool or agent through ``config``.
It checks chat-model inputs (``on_chat_model_start``), completion prompts (``on_llm_start``), final
generations in the context of their input (``on_llm_end``) and tool inputs (``on_tool_start``),
and raises :class:`UnsafeContentError` (``raise_error=True``, so LangChain propagates it) when
content is unsafe.

Limits, by design of callbacks: a callback cannot replace content, only stop the run; and it
cannot take back tokens already streamed. With ``stream``/``astream`` (or any streaming
handler attached), tokens reach the caller as they are generated and the answer is checked only
at ``on_llm_end``, after the caller has seen it. Use :func:`guard_chain` or
:class:`LlamaGuardMiddleware` to keep unchecked tokens from the caller.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, LLMResult

from ..core.policy import Policy
from ..core.verdict import Verdict
from ..enforce import OnVerdict, enforce
from ..guard import LlamaGuard
from ._common import log
from .convert import OpenAIMessage, message_to_openai, tool_call_message


@dataclass(frozen=True)
class VerdictRecord:
    """One check the handler made: which stage, which run, what the guard decided."""

    stage: str
    verdict: Verdict
    run_id: UUID | None = None
    name: str | None = None


class _GuardCallbacks:
    """What both handlers share: settings, conversation building, the record of verdicts."""

    raise_error = True
    run_inline = True
    llamaguard_check = True  # a check: runs live inside guarded runs (never held like an observer)

    def __init__(
        self,
        guard: LlamaGuard,
        *,
        policy: Policy | None = None,
        check_inputs: bool = True,
        check_outputs: bool = True,
        check_tools: bool = True,
        on_verdict: OnVerdict | None = None,
        max_records: int | None = 10_000,
        max_pending_runs: int = 1024,
    ) -> None:
        if max_records is not None and max_records < 0:
            raise ValueError(f"max_records must be 0 or more (or None: keep all), got {max_records}")
        if max_pending_runs < 1:
            raise ValueError(f"max_pending_runs must be at least 1, got {max_pending_runs}")
        self.guard = guard
        self.policy = policy
        self.check_inputs = check_inputs
        self.check_outputs = check_outputs
        self.check_tools = check_tools
        self.on_verdict = on_verdict
        self.max_records = max_records
        self.max_pending_runs = max_pending_runs
        self.records: list[VerdictRecord] = []
        # Inputs of model runs still going, kept only to check their outputs in context: forgotten at the
        # run's end or error, never kept for a blocked run, and bounded for runs whose end never comes.
        self._inputs: OrderedDict[UUID, list[list[OpenAIMessage]]] = OrderedDict()
        self._lock = threading.Lock()

    def _remember(self, run_id: UUID, conversations: list[list[OpenAIMessage]]) -> None:
        with self._lock:
            self._inputs[run_id] = conversations
            while len(self._inputs) > self.max_pending_runs:
                forgotten, _ = self._inputs.popitem(last=False)
                log.warning(
                    "more than %d model runs without an end: forgot the input of run %s (its output will be "
                    "checked without that context)",
                    self.max_pending_runs,
                    forgotten,
                )

    def _forget(self, run_id: UUID) -> list[list[OpenAIMessage]]:
        with self._lock:
            return self._inputs.pop(run_id, [])

    def _outputs(self, response: LLMResult, run_id: UUID) -> list[list[OpenAIMessage]]:
        contexts = self._forget(run_id)
        conversations = []
        for n, generations in enumerate(response.generations):
            context = contexts[n] if n < len(contexts) else []
            for generation in generations:
                if isinstance(generation, ChatGeneration):
                    answer = message_to_openai(generation.message)
                else:
                    answer = {"role": "assistant", "content": generation.text}
                conversations.append(context + [answer])
        return conversations

    def _settle(self, verdict: Verdict, stage: str, run_id: UUID | None, name: str | None) -> None:
        """Record ``verdict``, report it, and raise :class:`UnsafeContentError` when it blocks."""
        record = VerdictRecord(stage, verdict, run_id, name)
        with self._lock:
            self.records.append(record)
            if self.max_records is not None and len(self.records) > self.max_records:
                del self.records[: len(self.records) - self.max_records]
        enforce(verdict, stage, on_block="raise", on_verdict=self.on_verdict)

    @property
    def verdicts(self) -> list[Verdict]:
        return [r.verdict for r in self.records]


def _chat_inputs(messages: list[list[BaseMessage]]) -> list[list[OpenAIMessage]]:
    return [[message_to_openai(m) for m in conversation] for conversation in messages]


def _prompt_inputs(prompts: list[str]) -> list[list[OpenAIMessage]]:
    return [[{"role": "user", "content": p}] for p in prompts]


def _tool_input(serialized: dict[str, Any] | None, input_str: str, inputs: dict[str, Any] | None) -> OpenAIMessage:
    name = (serialized or {}).get("name") or "tool"
    return tool_call_message(name, inputs if inputs is not None else input_str)


class LlamaGuardCallbackHandler(_GuardCallbacks, BaseCallbackHandler):
    """Check model inputs, final generations and tool inputs; raise :class:`UnsafeContentError` on a block.

    ``on_verdict(verdict, stage)`` is called with every verdict (the audit hook of every adapter);
    ``records`` (and ``verdicts``) keep the last ``max_records`` verdicts as :class:`VerdictRecord` s
    with their run id (``None``: keep all). A callback cannot replace content, so a block always raises. The inputs of a model run are kept only
    until its end or error (never for a blocked run), for at most ``max_pending_runs`` runs at once.
    See the module docs for what callbacks cannot do.
    """

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[BaseMessage]], *, run_id: UUID, **kwargs: Any
    ) -> None:
        self._start(_chat_inputs(messages), run_id, kwargs.get("name"))

    def on_llm_start(self, serialized: dict[str, Any], prompts: list[str], *, run_id: UUID, **kwargs: Any) -> None:
        self._start(_prompt_inputs(prompts), run_id, kwargs.get("name"))

    def _start(self, conversations: list[list[OpenAIMessage]], run_id: UUID, name: str | None) -> None:
        if self.check_inputs:  # a blocked (or failed) input check ends the run: nothing is remembered
            for conversation in conversations:
                self._settle(self.guard.classify(conversation, policy=self.policy), "input", run_id, name)
        if self.check_outputs:
            self._remember(run_id, conversations)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        conversations = self._outputs(response, run_id)
        if self.check_outputs:
            for conversation in conversations:
                self._settle(self.guard.classify(conversation, policy=self.policy), "output", run_id, None)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._forget(run_id)

    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if self.check_tools:
            call = _tool_input(serialized, input_str, inputs)
            verdict = self.guard.classify([call], policy=self.policy)
            self._settle(verdict, "tool_call", run_id, call["tool_calls"][0]["function"]["name"])


class AsyncLlamaGuardCallbackHandler(LlamaGuardCallbackHandler):
    """:class:`LlamaGuardCallbackHandler` for async code: in async runs its checks run in an executor.

    LangChain's async callback manager runs a handler with ``run_inline=False`` in a thread, so the
    event loop is never blocked, and waits for it before the model or tool starts. It is deliberately
    not an ``AsyncCallbackHandler``: exceptions of ``AsyncCallbackHandler`` coroutines are logged and
    swallowed whenever LangChain drives them from a sync code path (a sync tool under ``ainvoke``
    runs through one), which would let blocked content through. This handler raises on every path.
    """

    run_inline = False

"""Guards as LangChain Runnables: pipe them in LCEL, or wrap a whole chain with :func:`guard_chain`.

>>> guard_in = LlamaGuardRunnable(guard)                      # doctest: +SKIP
>>> guard_out = LlamaGuardRunnable(guard, stage="output")     # doctest: +SKIP
>>> chain = guard_in | prompt | llm | guard_out               # doctest: +SKIP
>>> safe_chain = guard_chain(prompt | llm, guard)             # doctest: +SKIP

Both run through LangChain's config helpers, so a guard step is its own run in traces (LangSmith,
callbacks), and tags, metadata and callbacks reach the wrapped chain. Every entry point is
implemented: ``invoke``, ``ainvoke``, ``batch`` / ``abatch`` (one batched classifier pass per
stage; ``return_exceptions=True`` gives the exception in place of a blocked item), ``stream`` /
``astream`` (never releasing unchecked text; see :mod:`llamaguard_guardrails.langchain.stream`).

Observers of the wrapped chain's own runs (LangGraph ``stream_mode="messages"``,
``astream_events``) would see its tokens as they are generated; :func:`guard_chain` therefore tags
those runs ``"nostream"``: LangGraph skips them, and ``astream_events(..., exclude_tags=["nostream"])``
shows only checked output.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, Literal

from langchain_core.runnables import Runnable, RunnableConfig, RunnableSerializable
from pydantic import ConfigDict, Field, model_validator

from ..core.errors import GuardError, UnsafeContentError
from ..core.policy import Policy
from ..core.verdict import Verdict
from ..guard import LlamaGuard
from . import _common
from ._common import DEFAULT_REFUSAL, OnVerdict, RefusalMessage
from .convert import OpenAIMessage, to_messages
from .stream import Check, StreamMode, StreamWindow, fold, validate_window

OnBlock = Literal["raise", "refuse"]
TAG_NOSTREAM = "nostream"  # langgraph.constants.TAG_NOSTREAM: LangGraph's messages stream skips such runs


class _GuardRunnable(RunnableSerializable[Any, Any]):
    """Settings shared by the guard runnables."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    guard: LlamaGuard
    """The loaded guard; share one instance between any number of runnables."""
    policy: Policy | None = None
    """Policy of the checks (default: the guard's)."""
    on_block: OnBlock = "raise"
    """``"raise"``: raise :class:`UnsafeContentError`; ``"refuse"``: return ``refusal_message`` instead."""
    refusal_message: RefusalMessage = DEFAULT_REFUSAL
    stream_mode: StreamMode = "buffered"
    """How ``stream``/``astream`` release output: after the whole output is checked, or in checked windows."""
    window_size: int = 256
    """Windowed streaming: new characters per check."""
    window_overlap: int = 64
    """Windowed streaming: characters held back after each check, so text across a boundary is checked whole."""
    on_verdict: OnVerdict | None = Field(default=None, exclude=True)
    """Called with every verdict and its stage."""

    @model_validator(mode="after")
    def _valid_window(self) -> _GuardRunnable:
        validate_window(self.stream_mode, self.window_size, self.window_overlap)
        return self

    # -- checks -----------------------------------------------------------------------------------

    def _classify(self, messages: list[OpenAIMessage], stage: str, policy: Policy | None) -> Verdict:
        return _common.classify(self.guard, messages, stage, policy or self.policy, self.on_verdict)

    async def _aclassify(self, messages: list[OpenAIMessage], stage: str, policy: Policy | None) -> Verdict:
        return await _common.aclassify(self.guard, messages, stage, policy or self.policy, self.on_verdict)

    def _blocked(self, verdict: Verdict, stage: str, like: Any) -> Any:
        return _common.blocked(self.on_block, self.refusal_message, verdict, stage, like)

    def _outcome(self, verdict: Verdict, stage: str, value: Any, like: Any) -> Any:
        """For batches: the value, the refusal, or the exception as a value."""
        if verdict.safe:
            return value
        if self.on_block == "raise":
            return UnsafeContentError(verdict, stage)
        return _common.refusal(self.refusal_message, verdict, stage, like)

    # -- streaming --------------------------------------------------------------------------------

    def _stream_verdict(
        self, checks: list[Check], context: list[OpenAIMessage], key: str | None, policy: Policy | None
    ) -> Verdict | None:
        """Run the checks a stream window asks for (one batched pass when there are several): the first unsafe
        verdict, or ``None`` when the chunks may be released."""
        conversations = [_output_conversation(context, c.outputs, key) for c in checks if c.outputs]
        if len(conversations) == 1:
            verdicts = [self._classify(conversations[0], "output", policy)]
        else:
            verdicts = _common.classify_batch(
                self.guard, conversations, "output", policy or self.policy, self.on_verdict
            )
        return next((v for v in verdicts if not v.safe), None)

    async def _astream_verdict(
        self, checks: list[Check], context: list[OpenAIMessage], key: str | None, policy: Policy | None
    ) -> Verdict | None:
        conversations = [_output_conversation(context, c.outputs, key) for c in checks if c.outputs]
        if len(conversations) == 1:
            verdicts = [await self._aclassify(conversations[0], "output", policy)]
        else:
            verdicts = await _common.aclassify_batch(
                self.guard, conversations, "output", policy or self.policy, self.on_verdict
            )
        return next((v for v in verdicts if not v.safe), None)

    def _guard_stream(
        self, chunks: Iterator[Any], context: list[OpenAIMessage], key: str | None, policy: Policy | None
    ) -> Iterator[Any]:
        window = StreamWindow(self.stream_mode, self.window_size, self.window_overlap)
        try:
            for chunk in chunks:
                checks = window.add(chunk)
                if checks:
                    verdict = self._stream_verdict(checks, context, key, policy)
                    if verdict is not None:
                        yield self._blocked(verdict, "output", chunk)
                        return
                    for check in checks:
                        yield from check.release()
            checks = window.finish()
            verdict = self._stream_verdict(checks, context, key, policy) if checks else None
            if verdict is not None:
                yield self._blocked(verdict, "output", window.sample())
                return
            for check in checks:
                yield from check.release()
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    async def _aguard_stream(
        self, chunks: AsyncIterator[Any], context: list[OpenAIMessage], key: str | None, policy: Policy | None
    ) -> AsyncIterator[Any]:
        window = StreamWindow(self.stream_mode, self.window_size, self.window_overlap)
        try:
            async for chunk in chunks:
                checks = window.add(chunk)
                if checks:
                    verdict = await self._astream_verdict(checks, context, key, policy)
                    if verdict is not None:
                        yield self._blocked(verdict, "output", chunk)
                        return
                    for check in checks:
                        for released in check.release():
                            yield released
            checks = window.finish()
            verdict = await self._astream_verdict(checks, context, key, policy) if checks else None
            if verdict is not None:
                yield self._blocked(verdict, "output", window.sample())
                return
            for check in checks:
                for released in check.release():
                    yield released
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()

    # -- protocol ---------------------------------------------------------------------------------

    def stream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[Any]:
        yield from self.transform(iter([input]), config, **kwargs)

    async def astream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> AsyncIterator[Any]:
        async def one() -> AsyncIterator[Any]:
            yield input

        async for chunk in self.atransform(one(), config, **kwargs):
            yield chunk


class LlamaGuardRunnable(_GuardRunnable):
    """A guard step for LCEL: checks what flows through it and passes it on unchanged when safe.

    ``stage="input"`` (default) checks user input: strings, prompt values, messages, or dicts (the
    ``key`` entry, else ``"messages"``, else all entries). ``stage="output"`` checks model output
    (``AIMessage``, strings, message lists, agent state dicts) as the assistant's turn. Unsafe
    content raises :class:`UnsafeContentError` (``.verdict``, ``.stage``), or with
    ``on_block="refuse"`` is replaced by a refusal ``AIMessage`` carrying the verdict in
    ``response_metadata["llamaguard"]``. An output step in a pipe sees only the output; use
    :func:`guard_chain` to check the output in the context of the input (and to refuse a blocked
    input: a refusal returned by an input step would flow on into the rest of the pipe).

    >>> chain = LlamaGuardRunnable(guard) | prompt | llm | LlamaGuardRunnable(guard, stage="output")  # doctest: +SKIP
    """

    stage: Literal["input", "output"] = "input"
    key: str | None = None
    """Which entry of a dict to check (default: ``"messages"`` if present, else every entry)."""

    def __init__(self, guard: LlamaGuard | None = None, **kwargs: Any) -> None:
        if guard is not None:
            kwargs["guard"] = guard
        super().__init__(**kwargs)

    def get_name(self, suffix: str | None = None, *, name: str | None = None) -> str:
        return super().get_name(suffix, name=name or self.name or f"LlamaGuard{self.stage.capitalize()}")

    def _conversation(self, value: Any) -> list[OpenAIMessage]:
        return to_messages(value, key=self.key, default_role="user" if self.stage == "input" else "assistant")

    def _check(self, value: Any) -> Any:
        verdict = self._classify(self._conversation(value), self.stage, None)
        return value if verdict.safe else self._blocked(verdict, self.stage, value)

    async def _acheck(self, value: Any) -> Any:
        verdict = await self._aclassify(self._conversation(value), self.stage, None)
        return value if verdict.safe else self._blocked(verdict, self.stage, value)

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self._call_with_config(self._check, input, config, **kwargs)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return await self._acall_with_config(self._acheck, input, config, **kwargs)

    def _split(self, values: list[Any]) -> tuple[list[Any], list[int], list[list[OpenAIMessage]]]:
        results: list[Any] = [None] * len(values)
        index, conversations = [], []
        for i, value in enumerate(values):
            try:
                conversations.append(self._conversation(value))
                index.append(i)
            except GuardError as exc:
                results[i] = exc
        return results, index, conversations

    def _check_batch(self, values: list[Any]) -> list[Any]:
        results, index, conversations = self._split(values)
        verdicts = _common.classify_batch(self.guard, conversations, self.stage, self.policy, self.on_verdict)
        for i, verdict in zip(index, verdicts):
            results[i] = self._outcome(verdict, self.stage, values[i], values[i])
        return results

    async def _acheck_batch(self, values: list[Any]) -> list[Any]:
        results, index, conversations = self._split(values)
        verdicts = await _common.aclassify_batch(self.guard, conversations, self.stage, self.policy, self.on_verdict)
        for i, verdict in zip(index, verdicts):
            results[i] = self._outcome(verdict, self.stage, values[i], values[i])
        return results

    def batch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        return self._batch_with_config(self._check_batch, inputs, config, return_exceptions=return_exceptions)

    async def abatch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        return await self._abatch_with_config(self._acheck_batch, inputs, config, return_exceptions=return_exceptions)

    def _transform(self, chunks: Iterator[Any]) -> Iterator[Any]:
        if self.stage == "input":
            yield self._check(fold(list(chunks)))
        else:
            yield from self._guard_stream(chunks, [], self.key, None)

    async def _atransform(self, chunks: AsyncIterator[Any]) -> AsyncIterator[Any]:
        if self.stage == "input":
            yield await self._acheck(fold([c async for c in chunks]))
        else:
            async for chunk in self._aguard_stream(chunks, [], self.key, None):
                yield chunk

    def transform(self, input: Iterator[Any], config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[Any]:
        yield from self._transform_stream_with_config(input, self._transform, config, **kwargs)

    async def atransform(
        self, input: AsyncIterator[Any], config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        async for chunk in self._atransform_stream_with_config(input, self._atransform, config, **kwargs):
            yield chunk


class GuardedChain(_GuardRunnable):
    """Any Runnable with its input checked before it runs and its output checked in context after.

    Build it with :func:`guard_chain`. A blocked input never reaches the chain; a blocked output
    never reaches the caller, streamed or not. ``on_block="refuse"`` returns a refusal
    ``AIMessage`` (a string when the chain streams or returns strings) instead of raising.
    """

    chain: Runnable[Any, Any]
    input_policy: Policy | None = None
    """Policy of the input check (default: ``policy``)."""
    output_policy: Policy | None = None
    """Policy of the output check (default: ``policy``)."""
    input_key: str | None = None
    """Which entry of a dict input to check (default: ``"messages"`` if present, else every entry)."""
    output_key: str | None = None
    """Which entry of a dict output to check (default: ``"messages"`` if present, else every entry)."""
    check_input: bool = True
    check_output: bool = True
    nostream: bool = True
    """Tag the wrapped chain's runs ``"nostream"`` while its output is checked: LangGraph's
    ``stream_mode="messages"`` then skips its unchecked tokens, and ``astream_events(...,
    exclude_tags=["nostream"])`` shows only checked output."""

    def get_name(self, suffix: str | None = None, *, name: str | None = None) -> str:
        return super().get_name(suffix, name=name or self.name or f"LlamaGuard[{self.chain.get_name()}]")

    @property
    def InputType(self) -> Any:
        return self.chain.InputType

    @property
    def OutputType(self) -> Any:
        return self.chain.OutputType

    def _context(self, value: Any) -> list[OpenAIMessage]:
        return to_messages(value, key=self.input_key, default_role="user")

    def _output(self, context: list[OpenAIMessage], value: Any) -> list[OpenAIMessage]:
        return _output_conversation(context, [value], self.output_key)

    def _inner(self, config: RunnableConfig) -> RunnableConfig:
        """The wrapped chain's config: tagged "nostream" when its output is checked."""
        if not (self.nostream and self.check_output):
            return config
        return {**config, "tags": [*(config.get("tags") or []), TAG_NOSTREAM]}

    # -- invoke -----------------------------------------------------------------------------------

    def _invoke(self, value: Any, config: RunnableConfig, **kwargs: Any) -> Any:
        context = self._context(value)
        if self.check_input:
            verdict = self._classify(context, "input", self.input_policy)
            if not verdict.safe:
                return self._blocked(verdict, "input", None)
        output = self.chain.invoke(value, self._inner(config), **kwargs)
        if self.check_output:
            verdict = self._classify(self._output(context, output), "output", self.output_policy)
            if not verdict.safe:
                return self._blocked(verdict, "output", output)
        return output

    async def _ainvoke(self, value: Any, config: RunnableConfig, **kwargs: Any) -> Any:
        context = self._context(value)
        if self.check_input:
            verdict = await self._aclassify(context, "input", self.input_policy)
            if not verdict.safe:
                return self._blocked(verdict, "input", None)
        output = await self.chain.ainvoke(value, self._inner(config), **kwargs)
        if self.check_output:
            verdict = await self._aclassify(self._output(context, output), "output", self.output_policy)
            if not verdict.safe:
                return self._blocked(verdict, "output", output)
        return output

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self._call_with_config(self._invoke, input, config, **kwargs)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return await self._acall_with_config(self._ainvoke, input, config, **kwargs)

    # -- batch ------------------------------------------------------------------------------------

    def _batch_inputs(self, values: list[Any]) -> tuple[list[Any], dict[int, list[OpenAIMessage]]]:
        results: list[Any] = [None] * len(values)
        contexts: dict[int, list[OpenAIMessage]] = {}
        for i, value in enumerate(values):
            try:
                contexts[i] = self._context(value)
            except GuardError as exc:
                results[i] = exc
        return results, contexts

    def _apply_input_verdicts(self, results: list[Any], pending: list[int], verdicts: list[Verdict]) -> list[int]:
        safe = []
        for i, verdict in zip(pending, verdicts):
            if verdict.safe:
                safe.append(i)
            else:
                results[i] = self._outcome(verdict, "input", None, None)
        return safe

    def _output_conversations(
        self, results: list[Any], contexts: dict[int, list[OpenAIMessage]], ran: list[int], outputs: list[Any]
    ) -> tuple[list[int], list[list[OpenAIMessage]]]:
        checked, conversations = [], []
        for i, output in zip(ran, outputs):
            results[i] = output
            if isinstance(output, Exception) or not self.check_output:
                continue
            try:
                conversations.append(self._output(contexts[i], output))
                checked.append(i)
            except GuardError as exc:
                results[i] = exc
        return checked, conversations

    def _batch(self, values: list[Any], config: list[RunnableConfig], **kwargs: Any) -> list[Any]:
        results, contexts = self._batch_inputs(values)
        pending = list(contexts)
        if self.check_input:
            conversations = [contexts[i] for i in pending]
            verdicts = _common.classify_batch(self.guard, conversations, "input", self.input_policy, self.on_verdict)
            pending = self._apply_input_verdicts(results, pending, verdicts)
        outputs = []
        if pending:
            configs = [self._inner(config[i]) for i in pending]
            outputs = self.chain.batch([values[i] for i in pending], configs, return_exceptions=True, **kwargs)
        checked, conversations = self._output_conversations(results, contexts, pending, outputs)
        verdicts = _common.classify_batch(self.guard, conversations, "output", self.output_policy, self.on_verdict)
        for i, verdict in zip(checked, verdicts):
            results[i] = self._outcome(verdict, "output", results[i], results[i])
        return results

    async def _abatch(self, values: list[Any], config: list[RunnableConfig], **kwargs: Any) -> list[Any]:
        results, contexts = self._batch_inputs(values)
        pending = list(contexts)
        if self.check_input:
            conversations = [contexts[i] for i in pending]
            verdicts = await _common.aclassify_batch(
                self.guard, conversations, "input", self.input_policy, self.on_verdict
            )
            pending = self._apply_input_verdicts(results, pending, verdicts)
        outputs = []
        if pending:
            configs = [self._inner(config[i]) for i in pending]
            outputs = await self.chain.abatch([values[i] for i in pending], configs, return_exceptions=True, **kwargs)
        checked, conversations = self._output_conversations(results, contexts, pending, outputs)
        verdicts = await _common.aclassify_batch(
            self.guard, conversations, "output", self.output_policy, self.on_verdict
        )
        for i, verdict in zip(checked, verdicts):
            results[i] = self._outcome(verdict, "output", results[i], results[i])
        return results

    def batch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        return self._batch_with_config(self._batch, inputs, config, return_exceptions=return_exceptions, **kwargs)

    async def abatch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        return await self._abatch_with_config(
            self._abatch, inputs, config, return_exceptions=return_exceptions, **kwargs
        )

    # -- streaming --------------------------------------------------------------------------------

    def _transform(self, chunks: Iterator[Any], config: RunnableConfig, **kwargs: Any) -> Iterator[Any]:
        value = fold(list(chunks))
        context = self._context(value)
        if self.check_input:
            verdict = self._classify(context, "input", self.input_policy)
            if not verdict.safe:
                yield self._blocked(verdict, "input", None)
                return
        stream = self.chain.stream(value, self._inner(config), **kwargs)
        if not self.check_output:
            yield from stream
            return
        yield from self._guard_stream(stream, context, self.output_key, self.output_policy)

    async def _atransform(
        self, chunks: AsyncIterator[Any], config: RunnableConfig, **kwargs: Any
    ) -> AsyncIterator[Any]:
        value = fold([c async for c in chunks])
        context = self._context(value)
        if self.check_input:
            verdict = await self._aclassify(context, "input", self.input_policy)
            if not verdict.safe:
                yield self._blocked(verdict, "input", None)
                return
        stream = self.chain.astream(value, self._inner(config), **kwargs)
        if not self.check_output:
            async for chunk in stream:
                yield chunk
            return
        async for chunk in self._aguard_stream(stream, context, self.output_key, self.output_policy):
            yield chunk

    def transform(self, input: Iterator[Any], config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[Any]:
        yield from self._transform_stream_with_config(input, self._transform, config, **kwargs)

    async def atransform(
        self, input: AsyncIterator[Any], config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        async for chunk in self._atransform_stream_with_config(input, self._atransform, config, **kwargs):
            yield chunk


def guard_chain(chain: Runnable[Any, Any], guard: LlamaGuard, **options: Any) -> GuardedChain:
    """Wrap ``chain`` so its input is checked before it runs and its output, in context, after.

    Options: ``policy`` (or ``input_policy`` / ``output_policy``), ``on_block`` (``"raise"`` or
    ``"refuse"``), ``refusal_message``, ``input_key`` / ``output_key``, ``stream_mode``
    (``"buffered"`` or ``"windowed"``), ``window_size``, ``window_overlap``, ``on_verdict``,
    ``check_input`` / ``check_output``, ``nostream``, ``name``.

    A refusal is an ``AIMessage`` with the verdict in ``response_metadata["llamaguard"]``, or a
    plain string where the chain returns or streams strings; in windowed streaming it follows the
    text already released.

    >>> safe = guard_chain(prompt | llm, guard)                         # doctest: +SKIP
    >>> safe.invoke({"question": "How do I bake bread?"})               # doctest: +SKIP
    >>> for chunk in safe.stream({"question": "..."}): print(chunk.content)  # doctest: +SKIP
    """
    return GuardedChain(chain=chain, guard=guard, **options)


def _output_conversation(context: list[OpenAIMessage], outputs: list[Any], key: str | None) -> list[OpenAIMessage]:
    """The outputs, in order, as the messages after ``context``; an agent state's messages stand alone."""
    conversation = list(context)
    for value in outputs:
        messages = to_messages(value, key=key, default_role="assistant")
        if key is None and isinstance(value, Mapping) and "messages" in value:
            conversation = messages  # the state already holds the whole conversation
        else:
            conversation += messages
    return conversation

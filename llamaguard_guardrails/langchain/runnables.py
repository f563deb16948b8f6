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

from typing import Any, Literal

from langchain_core.runnables import Runnable, RunnableConfig

from ..core.policy import Policy
from ..guard import LlamaGuard
from ._common import refusal_like
from ._observers import ObserverHold, checked_release
from ._runnable import GuardRunnable, output_conversation
from ._steps import Call, Emit, Open, Steps, forward, pull_all
from ._thread import withhold_refused_turns
from .convert import OpenAIMessage, to_messages
from .stream import fold

TAG_NOSTREAM = "nostream"  # langgraph.constants.TAG_NOSTREAM: LangGraph's messages stream skips such runs


class LlamaGuardRunnable(GuardRunnable):
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

    def _invoke_steps(self, value: Any, config: RunnableConfig, **kwargs: Any) -> Steps[Any]:
        refusal = yield from self._check(self._conversation(value), self.stage, None)
        return value if refusal is None else refusal_like(refusal, value)

    def _batch_steps(self, values: list[Any], configs: list[RunnableConfig], **kwargs: Any) -> Steps[list[Any]]:
        results: list[Any] = [None] * len(values)
        conversations = self._readable(results, dict(enumerate(values)), lambda i, value: self._conversation(value))
        verdicts = yield self._classify(list(conversations.values()), None, batch=True)
        for i, verdict in zip(conversations, verdicts):
            results[i] = self._outcome(verdict, self.stage, values[i])
        return results

    def _transform_steps(self, chunks: Any, config: RunnableConfig, **kwargs: Any) -> Steps[None]:
        if self.stage == "output":
            yield from self._guard_output(chunks, [], self.key, None)
            return
        value = fold((yield from pull_all(chunks)))
        yield Emit(((yield from self._invoke_steps(value, config)),))


class GuardedChain(GuardRunnable):
    """Any Runnable with its input checked before it runs and its output checked in context after.

    A conversation that comes back with a refused turn in it (a message history stores the refused input with
    its refusal ``AIMessage``) reaches neither the check nor the chain with that turn's content: placeholders
    stand in for it.

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
        return output_conversation(context, [value], self.output_key)

    def _inner(self, config: RunnableConfig, hold: ObserverHold) -> RunnableConfig:
        """The wrapped chain's config: when its output is checked, tagged "nostream" and with the callback handlers
        that observe it held by ``hold`` until the check passed (see :mod:`._observers`)."""
        if not self.check_output:
            return config
        config = {**config, "callbacks": hold.held(config.get("callbacks"))}
        if not self.nostream:
            return config
        return {**config, "tags": [*(config.get("tags") or []), TAG_NOSTREAM]}

    def _release_events(self, hold: ObserverHold, context: list[OpenAIMessage]) -> Steps[bool]:
        """Hand the held callback events on once what they carry passed the output check (see
        :func:`._observers.checked_release`)."""
        policy = self.output_policy or self.policy
        return (yield from checked_release(hold, self.guard, context, policy, "output", self.on_review))

    def _input_refusal(self, context: list[OpenAIMessage]) -> Steps[Any]:
        """``None`` when the input may reach the chain, else its refusal."""
        if not self.check_input:
            return None
        refusal = yield from self._check(context, "input", self.input_policy)
        return None if refusal is None else refusal_like(refusal)

    def _invoke_steps(self, value: Any, config: RunnableConfig, **kwargs: Any) -> Steps[Any]:
        value = withhold_refused_turns(value)
        context = self._context(value)
        refused = yield from self._input_refusal(context)
        if refused is not None:
            return refused
        hold = ObserverHold()
        output = yield Call(self.chain.invoke, self.chain.ainvoke, (value, self._inner(config, hold)), kwargs)
        if self.check_output:
            refusal = yield from self._check(self._output(context, output), "output", self.output_policy)
            if refusal is not None:
                hold.drop()
                return refusal_like(refusal, output)
        yield from self._release_events(hold, context)
        return output

    def _batch_steps(self, values: list[Any], configs: list[RunnableConfig], **kwargs: Any) -> Steps[list[Any]]:
        results: list[Any] = [None] * len(values)
        values = [withhold_refused_turns(value) for value in values]
        contexts = self._readable(results, dict(enumerate(values)), lambda i, value: self._context(value))
        pending = list(contexts)
        if self.check_input:
            verdicts = yield self._classify([contexts[i] for i in pending], self.input_policy, batch=True)
            for i, verdict in zip(pending, verdicts):
                results[i] = self._outcome(verdict, "input", None)
            pending = [i for i in pending if results[i] is None]  # enforce() let it through
        holds = {i: ObserverHold() for i in pending}
        if pending:
            inputs, inner = [values[i] for i in pending], [self._inner(configs[i], holds[i]) for i in pending]
            batch = Call(self.chain.batch, self.chain.abatch, (inputs, inner), {"return_exceptions": True, **kwargs})
            for i, output in zip(pending, (yield batch)):
                results[i] = output
        outputs = {i: results[i] for i in pending if not isinstance(results[i], BaseException)}
        if self.check_output:
            conversations = self._readable(results, outputs, lambda i, output: self._output(contexts[i], output))
            verdicts = yield self._classify(list(conversations.values()), self.output_policy, batch=True)
            for i, verdict in zip(conversations, verdicts):
                results[i] = self._outcome(verdict, "output", results[i])
        for i, hold in holds.items():  # observers see an item's runs only when its output passed
            if i in outputs and results[i] is outputs[i]:
                yield from self._release_events(hold, contexts[i])
        return results

    def _transform_steps(self, chunks: Any, config: RunnableConfig, **kwargs: Any) -> Steps[None]:
        value = withhold_refused_turns(fold((yield from pull_all(chunks))))
        context = self._context(value)
        refused = yield from self._input_refusal(context)
        if refused is not None:
            yield Emit((refused,))
            return
        hold = ObserverHold()
        stream = yield Open(self.chain.stream, self.chain.astream, (value, self._inner(config, hold)), kwargs)
        if not self.check_output:
            yield from forward(stream)
        elif (yield from self._guard_output(stream, context, self.output_key, self.output_policy)):
            yield from self._release_events(hold, context)


def guard_chain(chain: Runnable[Any, Any], guard: LlamaGuard, **options: Any) -> GuardedChain:
    """Wrap ``chain`` so its input is checked before it runs and its output, in context, after.

    Options: ``policy`` (or ``input_policy`` / ``output_policy``), ``on_block`` (``"raise"`` or
    ``"refuse"``), ``refusal_message``, ``input_key`` / ``output_key``, ``stream_mode``
    (``"buffered"`` or ``"windowed"``), ``window_size``, ``window_overlap``, ``on_verdict``,
    ``on_review`` (decides a verdict in the policy's grey zone: ``True`` lets it through), ``check_input`` /
    ``check_output``, ``nostream``, ``name``.

    A refusal is an ``AIMessage`` with the verdict in ``response_metadata["llamaguard"]``, or a
    plain string where the chain returns or streams strings; in windowed streaming it follows the
    text already released.

    >>> safe = guard_chain(prompt | llm, guard)                         # doctest: +SKIP
    >>> safe.invoke({"question": "How do I bake bread?"})               # doctest: +SKIP
    >>> for chunk in safe.stream({"question": "..."}): print(chunk.content)  # doctest: +SKIP
    """
    return GuardedChain(chain=chain, guard=guard, **options)

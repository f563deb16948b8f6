"""``GuardRunnable``: what the guard runnables share: settings, the Runnable protocol over steps, the output stream.

A subclass writes each entry point once, as steps (:mod:`._steps`): ``_invoke_steps``, ``_batch_steps`` and
``_transform_steps``; this class drives them for ``invoke`` / ``ainvoke``, ``batch`` / ``abatch`` and
``stream`` / ``astream`` / ``transform`` / ``atransform`` through LangChain's config helpers, so a guard step is
its own run in traces and tags, metadata and callbacks reach what it wraps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from langchain_core.callbacks import BaseCallbackManager
from langchain_core.runnables import RunnableConfig, RunnableSerializable, ensure_config
from pydantic import ConfigDict, Field, field_validator, model_validator

from ..core.errors import GuardError, UnsafeContentError
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
    report,
)
from ..guard import LlamaGuard
from . import _steps
from ._common import refusal_like
from ._steps import END, Classify, Emit, Pull, Steps
from .convert import OpenAIMessage, to_messages
from .stream import StreamMode, StreamWindow, WindowCheck, validate_window


class GuardRunnable(RunnableSerializable[Any, Any]):
    """Settings and entry points shared by :class:`LlamaGuardRunnable` and :class:`GuardedChain`."""

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
    on_review: OnReview | None = Field(default=None, exclude=True)
    """Called with a verdict that needs a human (the policy's grey zone) and its stage; ``True`` lets it through,
    anything else blocks it (:class:`ReviewRequired` or the refusal). Without it such content is held back."""

    @field_validator("on_block", mode="before")
    @classmethod
    def _known_block_action(cls, value: str) -> OnBlock:
        return block_action(value)

    @model_validator(mode="after")
    def _valid_window(self) -> GuardRunnable:
        validate_window(self.stream_mode, self.window_size, self.window_overlap)
        return self

    # -- steps a subclass writes --------------------------------------------------------------------

    def _invoke_steps(self, value: Any, config: RunnableConfig, **kwargs: Any) -> Steps[Any]:
        raise NotImplementedError

    def _batch_steps(self, values: list[Any], configs: list[RunnableConfig], **kwargs: Any) -> Steps[list[Any]]:
        raise NotImplementedError

    def _transform_steps(self, chunks: Any, config: RunnableConfig, **kwargs: Any) -> Steps[None]:
        raise NotImplementedError

    # -- checks -----------------------------------------------------------------------------------

    def _classify(
        self, conversations: list[list[OpenAIMessage]], policy: Policy | None, batch: bool = False
    ) -> Classify:
        return Classify(self.guard, conversations, policy or self.policy, batch)

    def _enforce(self, verdict: Verdict, stage: str, on_verdict: OnVerdict | None) -> Refusal | None:
        return enforce(
            verdict,
            stage,
            on_block=self.on_block,
            refusal_message=self.refusal_message,
            on_verdict=on_verdict,
            on_review=self.on_review,
        )

    def _check(self, conversation: list[OpenAIMessage], stage: str, policy: Policy | None) -> Steps[Refusal | None]:
        """``None`` when ``conversation`` may go on; else the refusal (``on_block="raise"`` raises)."""
        return _steps.check(self, conversation, stage, policy or self.policy, self.refusal_message)

    def _outcome(self, verdict: Verdict, stage: str, value: Any) -> Any:
        """For batches: ``value``, its refusal, or the :class:`UnsafeContentError` as a value."""
        try:
            refusal = self._enforce(verdict, stage, self.on_verdict)
        except UnsafeContentError as exc:
            return exc
        return value if refusal is None else refusal_like(refusal, value)

    @staticmethod
    def _readable(
        results: list[Any], items: dict[int, Any], convert: Callable[[int, Any], list[OpenAIMessage]]
    ) -> dict[int, list[OpenAIMessage]]:
        """For batches: ``convert(i, item)`` of each item; one the guard cannot read gets its typed error as result."""
        conversations = {}
        for i, item in items.items():
            try:
                conversations[i] = convert(i, item)
            except GuardError as exc:
                results[i] = exc
        return conversations

    # -- the output stream ----------------------------------------------------------------------------

    def _guard_output(
        self, chunks: Any, context: list[OpenAIMessage], key: str | None, policy: Policy | None
    ) -> Steps[bool]:
        """Release the chunks of ``chunks`` only once checked (see :mod:`.stream`); a block ends the stream.
        ``True`` when everything was released, ``False`` after a block."""
        window = StreamWindow(self.stream_mode, self.window_size, self.window_overlap)
        while (chunk := (yield Pull(chunks))) is not END:
            if not (yield from self._release(window.add(chunk), context, key, policy, chunk)):
                return False
        return (yield from self._release(window.finish(), context, key, policy, window.sample()))

    def _release(
        self, checks: list[WindowCheck], context: list[OpenAIMessage], key: str | None, policy: Policy | None, like: Any
    ) -> Steps[bool]:
        """Run the checks a stream window asks for (one batched pass when several), then emit their chunks; on a
        block emit the refusal (shaped like ``like``) and answer ``False``. Every verdict is reported."""
        conversations = [output_conversation(context, c.outputs, key) for c in checks if c.outputs]
        verdicts = (yield self._classify(conversations, policy)) if conversations else []
        for verdict in verdicts:
            report(verdict, "output", self.on_verdict)
        unsafe = next((v for v in verdicts if not v.safe), None)
        refusal = None if unsafe is None else self._enforce(unsafe, "output", None)
        if refusal is not None:
            yield Emit((refusal_like(refusal, like),))
            return False
        yield Emit(tuple(released for c in checks for released in c.release()))
        return True

    # -- protocol ---------------------------------------------------------------------------------

    def _invoke(self, value: Any, config: RunnableConfig, **kwargs: Any) -> Any:
        return _steps.run(self._invoke_steps(value, config, **kwargs))

    async def _ainvoke(self, value: Any, config: RunnableConfig, **kwargs: Any) -> Any:
        return await _steps.arun(self._invoke_steps(value, config, **kwargs))

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        with final_inside(config):
            return self._call_with_config(self._invoke, input, config, **kwargs)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        with final_inside(config):
            return await self._acall_with_config(self._ainvoke, input, config, **kwargs)

    def _batch(self, values: list[Any], config: list[RunnableConfig], **kwargs: Any) -> list[Any]:
        return _steps.run(self._batch_steps(values, config, **kwargs))

    async def _abatch(self, values: list[Any], config: list[RunnableConfig], **kwargs: Any) -> list[Any]:
        return await _steps.arun(self._batch_steps(values, config, **kwargs))

    def batch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        """Each input through one batched classifier pass per stage; ``return_exceptions=True`` gives the
        exception in place of a blocked item when called directly (see :func:`final_blocks`)."""
        outputs = self._batch_with_config(self._batch, inputs, config, return_exceptions=return_exceptions, **kwargs)
        return final_blocks(outputs, config, return_exceptions)

    async def abatch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        outputs = await self._abatch_with_config(
            self._abatch, inputs, config, return_exceptions=return_exceptions, **kwargs
        )
        return final_blocks(outputs, config, return_exceptions)

    def _transform(self, chunks: Iterator[Any], config: RunnableConfig, **kwargs: Any) -> Iterator[Any]:
        yield from _steps.stream(self._transform_steps(chunks, config, **kwargs))

    async def _atransform(
        self, chunks: AsyncIterator[Any], config: RunnableConfig, **kwargs: Any
    ) -> AsyncIterator[Any]:
        async for chunk in _steps.astream(self._transform_steps(chunks, config, **kwargs)):
            yield chunk

    def transform(self, input: Iterator[Any], config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[Any]:
        with final_inside(config):
            yield from self._transform_stream_with_config(input, self._transform, config, **kwargs)

    async def atransform(
        self, input: AsyncIterator[Any], config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        with final_inside(config):
            async for chunk in self._atransform_stream_with_config(input, self._atransform, config, **kwargs):
                yield chunk

    def stream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[Any]:
        yield from self.transform(iter([input]), config, **kwargs)

    async def astream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> AsyncIterator[Any]:
        async def one() -> AsyncIterator[Any]:
            yield input

        async for chunk in self.atransform(one(), config, **kwargs):
            yield chunk


def final_blocks(
    outputs: list[Any], config: RunnableConfig | list[RunnableConfig] | None, return_exceptions: bool
) -> list[Any]:
    """``outputs``, unless one is a block that must be raised: always without ``return_exceptions``, and
    inside another Runnable (a sequence, fallbacks, a retry: its run is our parent).

    A batch step hands a blocked item on as the :class:`UnsafeContentError` in its place, but LangChain's
    compositions treat only ``Exception`` values as failed items: a sequence would hand the block to its next
    step as input, and that step's failure would send the original input to a fallback. There the whole
    batch fails instead (the composition gives every item the block), so nothing after the guard runs.
    """
    block = next((out for out in outputs if isinstance(out, UnsafeContentError)), None)
    if block is not None and (not return_exceptions or _nested(config)):
        raise block
    if _nested(config):
        unchecked = next((out for out in outputs if isinstance(out, GuardError)), None)
        if unchecked is not None:
            raise unchecked_block(unchecked) from unchecked
    return outputs


@contextmanager
def final_inside(config: RunnableConfig | list[RunnableConfig] | None) -> Iterator[None]:
    """Inside another Runnable, a typed error of the guard (content it cannot read, a closed guard ...) is raised
    as a block (:func:`unchecked_block`): the composition would otherwise treat it as an ordinary failure and
    send the unchecked input elsewhere (``with_fallbacks`` hands it to the fallback). Called directly, the typed
    error itself is raised, saying what to fix; on the block it is the ``__cause__``."""
    try:
        yield
    except GuardError as exc:
        if not _nested(config):
            raise
        raise unchecked_block(exc) from exc


def unchecked_block(exc: GuardError) -> UnsafeContentError:
    """The block standing for content the guard could not check (fixed text: the cause says what went wrong)."""
    verdict = Verdict(safe=False, unsafe_probability=1.0, error=f"{type(exc).__name__}: not checked")
    return UnsafeContentError(verdict, getattr(exc, "stage", None))


def _nested(config: RunnableConfig | list[RunnableConfig] | None) -> bool:
    """True when a batch runs as a child of another run (a composition hands its children a child manager)."""
    configs = config if isinstance(config, list) else [config]
    for item in configs:
        callbacks = ensure_config(item).get("callbacks")  # a parent's config may come as a context variable
        if isinstance(callbacks, BaseCallbackManager) and callbacks.parent_run_id is not None:
            return True
    return False


def output_conversation(context: list[OpenAIMessage], outputs: list[Any], key: str | None) -> list[OpenAIMessage]:
    """The outputs, in order, as the messages after ``context``; an agent state's messages stand alone."""
    conversation = list(context)
    for value in outputs:
        messages = to_messages(value, key=key, default_role="assistant")
        if key is None and isinstance(value, Mapping) and "messages" in value:
            conversation = messages  # the state already holds the whole conversation
        else:
            conversation += messages
    return conversation

"""Sync and async without copies: each guarded operation is written once, as *steps*, and driven twice.

Steps are a generator that yields the I/O it needs as requests (:class:`Classify`, :class:`Call`,
:class:`Open`, :class:`Pull`) and the values it hands the caller (:class:`Emit`); it receives each
request's answer and returns its result. :func:`run` / :func:`stream` answer by calling (sync),
:func:`arun` / :func:`astream` by awaiting (async). Everything else (what is checked, what a verdict
does) lives in the steps, once, as httpx's ``BaseClient`` holds what its two clients share.

>>> def steps():
...     chunks = yield from pull_all(iter(["a", "b"]))
...     yield Emit(("".join(chunks),))
>>> list(stream(steps()))
['ab']
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from langchain_core.runnables.config import run_in_executor

from ..core.policy import Policy
from ..core.verdict import Verdict
from ..enforce import OnBlock, OnVerdict, Refusal, RefusalMessage, enforce
from ..guard import LlamaGuard
from ..tracing import checking
from .convert import OpenAIMessage
from .run_metadata import annotate_run

T = TypeVar("T")
END = object()
"""What :class:`Pull` answers once its source is exhausted."""


class Request:
    """Something steps need from outside: the sync driver calls :meth:`run`, the async one awaits :meth:`arun`."""

    emits: tuple[Any, ...] = ()
    """Values the stream drivers hand the caller before answering."""

    def run(self) -> Any:
        return None

    async def arun(self) -> Any:
        return None


Steps = Generator[Request, Any, T]


@dataclass(frozen=True, eq=False)
class Classify(Request):
    """The verdicts of ``conversations``: one ``classify`` for one conversation, else one batched pass
    (``batch=True``: a batched pass whatever the number, as the batch entry points do)."""

    guard: LlamaGuard
    conversations: list[list[OpenAIMessage]]
    policy: Policy | None = None
    batch: bool = False
    stage: str | None = None
    """The stage the check is for (on its trace span)."""

    @property
    def single(self) -> bool:
        return len(self.conversations) == 1 and not self.batch

    def run(self) -> list[Verdict]:
        with checking(self.stage, self.conversations[0] if self.single else None):
            verdicts = self._run()
        annotate_run(verdicts, self.stage)
        return verdicts

    def _run(self) -> list[Verdict]:
        if not self.conversations:
            return []
        if self.single:
            return [self.guard.classify(self.conversations[0], policy=self.policy)]
        return self.guard.classify_batch(self.conversations, policy=self.policy)

    async def arun(self) -> list[Verdict]:
        if self.single:
            with checking(self.stage, self.conversations[0]):
                verdict = await self.guard.aclassify(self.conversations[0], policy=self.policy)
            annotate_run([verdict], self.stage)
            return [verdict]
        return await run_in_executor(None, self.run) if self.conversations else []


@dataclass(frozen=True, eq=False)
class Call(Request):
    """The wrapped chain, tool or handler: ``sync(*args, **kwargs)``, or awaited ``asynchronous(*args, **kwargs)``."""

    sync: Callable[..., Any]
    asynchronous: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def run(self) -> Any:
        return self.sync(*self.args, **self.kwargs)

    async def arun(self) -> Any:
        return await self.asynchronous(*self.args, **self.kwargs)


class Open(Call):
    """A stream: the iterator ``sync(...)`` returns, or the async iterator ``asynchronous(...)`` returns."""

    async def arun(self) -> Any:
        return self.asynchronous(*self.args, **self.kwargs)


@dataclass(frozen=True, eq=False)
class Pull(Request):
    """The next value of ``source`` (an iterator, or an async iterator under the async driver), or :data:`END`.
    The drivers close every source pulled from when they stop."""

    source: Any

    def run(self) -> Any:
        return next(self.source, END)

    async def arun(self) -> Any:
        return await anext(self.source, END)


@dataclass(frozen=True, eq=False)
class Emit(Request):
    """Hand ``emits`` to the caller, in order (stream drivers only)."""

    emits: tuple[Any, ...]


def pull_all(source: Any) -> Steps[list[Any]]:
    """Every value of ``source``."""
    values = []
    while (value := (yield Pull(source))) is not END:
        values.append(value)
    return values


def forward(source: Any) -> Steps[None]:
    """Hand every value of ``source`` to the caller as it comes."""
    while (value := (yield Pull(source))) is not END:
        yield Emit((value,))


class Enforcing(Protocol):
    """What an adapter gives :func:`check`: its guard, its ``on_block`` and its audit hook."""

    guard: LlamaGuard
    on_block: OnBlock
    on_verdict: OnVerdict | None


def check(
    adapter: Enforcing,
    conversation: list[OpenAIMessage],
    stage: str,
    policy: Policy | None,
    refusal_message: RefusalMessage,
) -> Steps[Refusal | None]:
    """Classify ``conversation`` with the adapter's guard and :func:`~llamaguard_guardrails.enforce.enforce` its
    verdict: ``None`` when it may proceed, else the refusal (or, under ``on_block="raise"``, a raise)."""
    (verdict,) = yield Classify(adapter.guard, [conversation], policy, stage=stage)
    return enforce(
        verdict,
        stage,
        on_block=adapter.on_block,
        refusal_message=refusal_message,
        on_verdict=adapter.on_verdict,
        on_review=getattr(adapter, "on_review", None),
    )


# -- drivers --------------------------------------------------------------------------------------


class _Stepper:
    """Steps being driven: their next request, their result, the sources they pulled from."""

    def __init__(self, steps: Steps[Any]) -> None:
        self.steps = steps
        self.result: Any = None
        self.sources: dict[int, Any] = {}

    def send(self, answer: Any) -> Request | None:
        try:
            request = self.steps.send(answer)
        except StopIteration as done:
            self.result = done.value
            return None
        if isinstance(request, Pull):
            self.sources.setdefault(id(request.source), request.source)
        return request

    def close(self) -> None:
        self.steps.close()
        for source in self.sources.values():
            if hasattr(source, "close"):
                source.close()

    async def aclose(self) -> None:
        self.steps.close()
        for source in self.sources.values():
            if hasattr(source, "aclose"):
                await source.aclose()


def run(steps: Steps[T]) -> T:
    """Drive ``steps`` here, synchronously; their result."""
    stepper = _Stepper(steps)
    request = stepper.send(None)
    while request is not None:
        request = stepper.send(request.run())
    return stepper.result


async def arun(steps: Steps[T]) -> T:
    """Drive ``steps`` on the event loop; their result."""
    stepper = _Stepper(steps)
    request = stepper.send(None)
    while request is not None:
        request = stepper.send(await request.arun())
    return stepper.result


def stream(steps: Steps[Any]) -> Iterator[Any]:
    """Drive ``steps`` synchronously, yielding what they emit; closes what they pulled from when it stops."""
    stepper = _Stepper(steps)
    try:
        request = stepper.send(None)
        while request is not None:
            yield from request.emits
            request = stepper.send(request.run())
    finally:
        stepper.close()


async def astream(steps: Steps[Any]) -> AsyncIterator[Any]:
    """Drive ``steps`` on the event loop, yielding what they emit; closes what they pulled from when it stops."""
    stepper = _Stepper(steps)
    try:
        request = stepper.send(None)
        while request is not None:
            for value in request.emits:
                yield value
            request = stepper.send(await request.arun())
    finally:
        await stepper.aclose()

"""The wrapped client: an allow-list (:mod:`.surface`) over the real client's attribute tree.

Guarded methods (``chat.completions.create``, ``responses.create``, ``completions.create``) check the request
before the call and the answer before it is returned; harmless attributes pass through; everything else raises
:class:`~.surface.UnguardedAttributeError`. The sync and async clients share :class:`_Call` (everything but I/O).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..core.errors import InvalidConversationError
from ..enforce import Refusal
from ..guard import LlamaGuard
from .chat import chat_chunk_text, chat_output_checks, chat_request, chat_stream_checks
from .checker import Checker
from .completions import (
    completion_chunk_text,
    completions_output_checks,
    completions_request,
    completions_stream_checks,
)
from .families import Family
from .fields import Check, input_stage
from .refusals import (
    chat_refusal,
    chat_refusal_chunks,
    completion_refusal,
    completion_refusal_chunks,
    response_refusal,
    response_refusal_events,
)
from .responses import response_event_text, responses_output_checks, responses_request, responses_stream_checks
from .streams import AsyncGuardedStream, AsyncReplay, GuardedStream, Replay, StreamWindow
from .surface import (
    GUARDED,
    HARMLESS,
    PLAIN_CALLS,
    RESOURCES,
    REWRAPPED,
    plain_fields,
    refuse_attribute,
    request_fields,
    shown_context,
)

Messages = list[dict[str, Any]]


Request = Mapping[str, Any]


@dataclass(frozen=True)
class Api:
    """How one ``create`` endpoint's requests, answers and streamed chunks are read (with the request's fields), and
    its refusals built."""

    request: Callable[[Request], Messages]
    output_checks: Callable[[Messages, Any, Request], list[Check]]
    stream_checks: Callable[[Messages, list[Any], Request], list[Check]]
    chunk_text: Callable[[Any, Request], str | None]
    refusal: Callable[[Family, Mapping[str, Any], str, Any], Any]
    stream_refusal: Callable[[Family, Mapping[str, Any], str, list[Any]], list[Any]]


APIS = {
    "chat": Api(
        chat_request, chat_output_checks, chat_stream_checks, chat_chunk_text, chat_refusal, chat_refusal_chunks
    ),
    "responses": Api(
        responses_request,
        lambda messages, response, _: responses_output_checks(messages, response),
        lambda messages, events, _: responses_stream_checks(messages, events),
        lambda event, _: response_event_text(event),
        response_refusal,
        response_refusal_events,
    ),
    "completions": Api(
        completions_request,
        completions_output_checks,
        completions_stream_checks,
        completion_chunk_text,
        completion_refusal,
        completion_refusal_chunks,
    ),
}


@dataclass(frozen=True)
class Settings:
    """What every guarded call of one client shares: the checks, the client family and the stream window."""

    checker: Checker
    family: Family
    is_async: bool
    window: StreamWindow


class _Call:
    """One ``create(**kwargs)``, without I/O: its checks before and after the call, and what it returns."""

    def __init__(self, name: str, settings: Settings, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if args:
            raise InvalidConversationError(
                f"pass the {name} request as keyword arguments (model=..., ...): a positional request object "
                "is not read by the client-side guard"
            )
        self.api = APIS[name]
        self.settings = settings
        self.checker = settings.checker
        self.request = request_fields(name, kwargs)
        self.messages = shown_context(name, self.request) + self.api.request(self.request)
        self.streamed = bool(self.request.get("stream"))

    def input_checks(self) -> list[Check]:
        return [(self.messages, input_stage(self.messages))] if self.checker.check_input else []

    def refused(self, refusal: Refusal) -> Any:
        """What a blocked request returns: a refusal (or a stream of it) in place of the call."""
        if self.streamed:
            replay = AsyncReplay if self.settings.is_async else Replay
            return replay(self.stream_refusal([], refusal.text))
        return self.api.refusal(self.settings.family, self.request, refusal.text, None)

    def output_checks(self, result: Any) -> list[Check]:
        """The checks of a whole answer (a stream is checked while it is read)."""
        if self.streamed or not self.checker.check_output:
            return []
        return self.api.output_checks(self.messages, _an_object(result, "the answer"), self.request)

    def answer(self, result: Any, refusal: Refusal | None) -> Any:
        """What the call returns: the answer, its refusal, or a guarded stream of it."""
        if refusal is not None:
            return self.api.refusal(self.settings.family, self.request, refusal.text, result)
        if self.streamed and self.checker.check_output:
            stream = AsyncGuardedStream if self.settings.is_async else GuardedStream
            return stream(result, self, self.checker, self.settings.window)
        return result

    # -- what a guarded stream asks (StreamCheck) --

    def chunk_text(self, chunk: Any) -> str | None:
        return self.api.chunk_text(_an_object(chunk, "a streamed chunk"), self.request)

    def stream_checks(self, chunks: list[Any]) -> list[Check]:
        return self.api.stream_checks(self.messages, [_an_object(c, "a streamed chunk") for c in chunks], self.request)

    def stream_refusal(self, chunks: list[Any], text: str) -> list[Any]:
        return self.api.stream_refusal(self.settings.family, self.request, text, chunks)


def _an_object(result: Any, what: str) -> Any:
    """``result`` when the SDK read a JSON object (a model or a dict); a body that was not one (text, a list, a
    string: the SDK hands it back as it is) cannot be checked field by field, so it raises."""
    if (
        isinstance(result, Mapping)
        or callable(getattr(result, "model_dump", None))
        or callable(getattr(result, "to_dict", None))
    ):
        return result
    raise InvalidConversationError(
        f"{what} is a {type(result).__name__}, not a JSON object: the upstream did not answer in the API's format, "
        "so nothing of it was released"
    )


class _Node:
    """The guarded view of the wrapped object at ``path``: only what :mod:`.surface` allows is reachable."""

    def __init__(self, wrapped: Any, settings: Settings, path: tuple[str, ...] = ()) -> None:
        object.__setattr__(self, "_wrapped", wrapped)
        object.__setattr__(self, "_settings", settings)
        object.__setattr__(self, "_path", path)

    def __getattr__(self, name: str) -> Any:
        path = (*self._path, name)
        if path in GUARDED:
            return self._guarded(GUARDED[path], getattr(self._wrapped, name))
        if path in RESOURCES:
            return _Node(getattr(self._wrapped, name), self._settings, path)
        if path in HARMLESS:
            return getattr(self._wrapped, name)
        if path in PLAIN_CALLS:
            return _plain(path, getattr(self._wrapped, name))
        raise refuse_attribute(path)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"a guarded client is read-only (set {name!r} on the client before wrapping it)")

    def __dir__(self) -> list[str]:
        allowed = {*GUARDED, *RESOURCES, *HARMLESS, *PLAIN_CALLS}
        return sorted({p[len(self._path)] for p in allowed if len(p) > len(self._path) and p[:-1] == self._path})

    def __repr__(self) -> str:
        where = ".".join(self._path) or "client"
        return f"<guarded {where} of {type(self._wrapped).__name__}>"

    def _guarded(self, name: str, create: Callable[..., Any]) -> Callable[..., Any]:
        settings = self._settings
        checker = settings.checker

        def guarded_create(*args: Any, **kwargs: Any) -> Any:
            call = _Call(name, settings, args, kwargs)
            refusal = checker.run(call.input_checks())
            if refusal is not None:
                return call.refused(refusal)
            result = create(**kwargs)
            return call.answer(result, checker.run(call.output_checks(result)))

        async def aguarded_create(*args: Any, **kwargs: Any) -> Any:
            call = _Call(name, settings, args, kwargs)
            refusal = await checker.arun(call.input_checks())
            if refusal is not None:
                return call.refused(refusal)
            result = await create(**kwargs)
            return call.answer(result, await checker.arun(call.output_checks(result)))

        return aguarded_create if settings.is_async else guarded_create


def _plain(path: tuple[str, ...], method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` (sync or async), called once its request holds only harmless fields."""

    def plain_call(*args: Any, **kwargs: Any) -> Any:
        if args:
            raise InvalidConversationError(f"pass the {'.'.join(path)} request as keyword arguments")
        plain_fields(path, kwargs)
        return method(**kwargs)

    return plain_call


class GuardedClient(_Node):
    """An OpenAI-compatible client whose chat completions, responses and completions are checked locally.

    Made by :func:`~llamaguard_guardrails.client.guard_client`; anything not on the allow-list raises
    :class:`~.surface.UnguardedAttributeError`.
    """

    def __getattr__(self, name: str) -> Any:
        if name in REWRAPPED:
            rewrap = getattr(self._wrapped, name)

            def rewrapped(*args: Any, **kwargs: Any) -> GuardedClient:
                return type(self)(rewrap(*args, **kwargs), self._settings)

            return rewrapped
        return super().__getattr__(name)

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *REWRAPPED, "unwrapped", "guard"})

    @property
    def unwrapped(self) -> Any:
        """The wrapped client itself: calls on it are not checked."""
        return self._wrapped

    @property
    def guard(self) -> LlamaGuard:
        return self._settings.checker.guard

    def __enter__(self) -> GuardedClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._wrapped.close()


class AsyncGuardedClient(GuardedClient):
    """The async twin of :class:`GuardedClient` (``AsyncOpenAI``, ``AsyncOgxClient``, ``AsyncLlamaStackClient``)."""

    async def __aenter__(self) -> AsyncGuardedClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        result = self._wrapped.close()
        if hasattr(result, "__await__"):
            await result

"""The wrapped client objects: a guarded client, its ``chat.completions`` and ``responses``, sync and async.

Both twins share :class:`_Call` (everything but I/O: what to check before and after the call, what to return);
they differ only where they await. Everything the proxies do not define passes through to the wrapped object.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ...enforce import Refusal
from ...guard import LlamaGuard
from .chat import chat_output_checks, chat_request, chat_stream_checks
from .checker import Checker
from .fields import Check, input_stage
from .refusals import chat_refusal, chat_refusal_chunks, response_refusal, response_refusal_events
from .responses import responses_output_checks, responses_request, responses_stream_checks
from .streams import AsyncGuardedStream, GuardedStream

#: Attributes that would return the raw HTTP answer, past the checks.
BYPASSES = ("with_raw_response", "with_streaming_response")

Messages = list[dict[str, Any]]


@dataclass(frozen=True)
class Api:
    """How one ``create`` endpoint's requests and answers are read, and its refusals built."""

    request: Callable[[Mapping[str, Any]], Messages]
    output_checks: Callable[[Messages, Any], list[Check]]
    stream_checks: Callable[[Messages, list[Any]], list[Check]]
    refusal: Callable[[Mapping[str, Any], str, Any], Any]
    stream_refusal: Callable[[Mapping[str, Any], str, list[Any]], list[Any]]


CHAT = Api(chat_request, chat_output_checks, chat_stream_checks, chat_refusal, chat_refusal_chunks)
RESPONSES = Api(
    responses_request, responses_output_checks, responses_stream_checks, response_refusal, response_refusal_events
)


class _Call:
    """One ``create(**request)``, without I/O: its checks before and after the call, and what it returns."""

    def __init__(self, api: Api, checker: Checker, request: dict[str, Any], stream_type: type[Any]) -> None:
        self.api = api
        self.checker = checker
        self.request = request
        self.stream_type = stream_type
        self.messages = api.request(request)
        self.streamed = bool(request.get("stream"))

    def input_checks(self) -> list[Check]:
        return [(self.messages, input_stage(self.messages))] if self.checker.check_input else []

    def refused(self, refusal: Refusal) -> Any:
        """What a blocked request returns: a refusal (or a stream of it) in place of the call."""
        if self.streamed:
            return self.stream_type.replay(self.api.stream_refusal(self.request, refusal.text, []))
        return self.api.refusal(self.request, refusal.text, None)

    def output_checks(self, result: Any) -> list[Check]:
        """The checks of a whole answer (a stream is checked when it is read)."""
        if self.streamed or not self.checker.check_output:
            return []
        return self.api.output_checks(self.messages, result)

    def answer(self, result: Any, refusal: Refusal | None) -> Any:
        """What the call returns: the answer, its refusal, or a guarded stream of it."""
        if refusal is not None:
            return self.api.refusal(self.request, refusal.text, result)
        if self.streamed and self.checker.check_output:
            return self.stream_type(result, self, self.checker)
        return result

    def stream_checks(self, chunks: list[Any]) -> list[Check]:
        return self.api.stream_checks(self.messages, chunks)

    def stream_refusal(self, chunks: list[Any], text: str) -> list[Any]:
        return self.api.stream_refusal(self.request, text, chunks)


class _Proxy:
    """Delegates everything it does not define to the wrapped object."""

    def __init__(self, wrapped: Any, checker: Checker) -> None:
        self._wrapped = wrapped
        self._checker = checker

    def __getattr__(self, name: str) -> Any:
        if name in BYPASSES:
            raise AttributeError(
                f"{name} would bypass the client-side guard; call it on the unwrapped client "
                "(guarded.unwrapped) if you mean to skip the checks"
            )
        return getattr(self._wrapped, name)


class _Endpoint(_Proxy):
    """``chat.completions`` or ``responses``: ``create`` is checked."""

    stream_type: type[Any] = GuardedStream

    def __init__(self, wrapped: Any, checker: Checker, api: Api) -> None:
        super().__init__(wrapped, checker)
        self._api = api

    def _call(self, request: dict[str, Any]) -> _Call:
        return _Call(self._api, self._checker, request, self.stream_type)


class _SyncEndpoint(_Endpoint):
    def create(self, **kwargs: Any) -> Any:
        call = self._call(kwargs)
        refusal = self._checker.run(call.input_checks())
        if refusal is not None:
            return call.refused(refusal)
        result = self._wrapped.create(**kwargs)
        return call.answer(result, self._checker.run(call.output_checks(result)))


class _AsyncEndpoint(_Endpoint):
    stream_type = AsyncGuardedStream

    async def create(self, **kwargs: Any) -> Any:
        call = self._call(kwargs)
        refusal = await self._checker.arun(call.input_checks())
        if refusal is not None:
            return call.refused(refusal)
        result = await self._wrapped.create(**kwargs)
        return call.answer(result, await self._checker.arun(call.output_checks(result)))


class _Chat(_Proxy):
    def __init__(self, wrapped: Any, checker: Checker, completions: _Endpoint) -> None:
        super().__init__(wrapped, checker)
        self.completions = completions


class GuardedLlamaStackClient(_Proxy):
    """A ``LlamaStackClient`` whose chat completions and responses are checked locally."""

    _endpoint: type[_Endpoint] = _SyncEndpoint

    @property
    def unwrapped(self) -> Any:
        return self._wrapped

    @property
    def guard(self) -> LlamaGuard:
        return self._checker.guard

    @property
    def chat(self) -> Any:
        completions = self._endpoint(self._wrapped.chat.completions, self._checker, CHAT)
        return _Chat(self._wrapped.chat, self._checker, completions)

    @property
    def responses(self) -> Any:
        return self._endpoint(self._wrapped.responses, self._checker, RESPONSES)

    def copy(self, *args: Any, **kwargs: Any) -> GuardedLlamaStackClient:
        return type(self)(self._wrapped.copy(*args, **kwargs), self._checker)

    with_options = copy


class AsyncGuardedLlamaStackClient(GuardedLlamaStackClient):
    """An ``AsyncLlamaStackClient`` whose chat completions and responses are checked locally."""

    _endpoint = _AsyncEndpoint

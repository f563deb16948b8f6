"""``guard_client`` around the official ``openai`` SDK (the client of OGX, vLLM, LiteLLM and every OpenAI-compatible
server), sync and async, streamed buffered and windowed, against the fake upstream: the same rows as the
``LlamaStackClient`` ones (:mod:`.entry_points_llama_stack`), with another client under the guard."""

from __future__ import annotations

from typing import Any

from .cases import Case
from .entry_points import EntryPoint
from .entry_points_llama_stack import (
    AsyncGuardClientChatStream,
    AsyncGuardClientResponsesStream,
    GuardClientChat,
    GuardClientChatStream,
    GuardClientResponses,
    GuardClientResponsesStream,
)

#: Small windows, so a case's answer spans several of them.
WINDOWED = {"stream_mode": "windowed", "window_size": 12, "window_overlap": 6}


class OpenAIClient:
    """Builds ``guard_client(openai.OpenAI(base_url=upstream))`` (or ``AsyncOpenAI``) with :attr:`options`."""

    group = "client"
    marks: tuple[Any, ...] = ()
    options: dict[str, Any] = {}  # noqa: RUF012 - read only

    def na(self, case: Case) -> str | None:
        return EntryPoint.na(self, case)  # type: ignore[arg-type]  # the openai SDK is always installed

    def client(self, env: Any, case: Case) -> Any:
        import openai

        from llamaguard_guardrails.client import guard_client

        raw = openai.OpenAI(base_url=env.upstream.url + "/v1", api_key="k", max_retries=0)
        return guard_client(raw, env.guard(case.guard), **self.options)

    def async_client(self, env: Any, case: Case) -> Any:
        import openai

        from llamaguard_guardrails.client import guard_client

        raw = openai.AsyncOpenAI(base_url=env.upstream.url + "/v1", api_key="k", max_retries=0)
        return guard_client(raw, env.guard(case.guard), **self.options)


class OpenAIChat(OpenAIClient, GuardClientChat):
    id = "guard_client(openai) chat"


class OpenAIChatStream(OpenAIClient, GuardClientChatStream):
    id = "guard_client(openai) chat stream"


class OpenAIChatStreamWindowed(OpenAIClient, GuardClientChatStream):
    id = "guard_client(openai) chat stream windowed"
    options = WINDOWED


class AsyncOpenAIChatStreamWindowed(OpenAIClient, AsyncGuardClientChatStream):
    id = "guard_client(openai) chat stream windowed (async)"
    options = WINDOWED


class OpenAIResponses(OpenAIClient, GuardClientResponses):
    id = "guard_client(openai) responses"


class OpenAIResponsesStream(OpenAIClient, GuardClientResponsesStream):
    id = "guard_client(openai) responses stream"


class AsyncOpenAIResponsesStream(OpenAIClient, AsyncGuardClientResponsesStream):
    id = "guard_client(openai) responses stream (async)"


class OpenAIResponsesStreamWindowed(OpenAIClient, GuardClientResponsesStream):
    id = "guard_client(openai) responses stream windowed"
    options = WINDOWED


CLIENT: list[EntryPoint] = [
    OpenAIChat(),
    OpenAIChatStream(),
    OpenAIChatStreamWindowed(),
    AsyncOpenAIChatStreamWindowed(),
    OpenAIResponses(),
    OpenAIResponsesStream(),
    AsyncOpenAIResponsesStream(),
    OpenAIResponsesStreamWindowed(),
]

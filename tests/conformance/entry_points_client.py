"""``guard_client`` around the official ``openai`` SDK (the client of OGX, vLLM, LiteLLM and every OpenAI-compatible
server), sync and async, streamed buffered and windowed, and around ``ogx_client``, against the fake upstream: the
same rows as the ``LlamaStackClient`` ones (:mod:`.entry_points_llama_stack`), with another client under the guard."""

from __future__ import annotations

import importlib.util
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


#: Answers ogx_client does not hand over as sent (the openai rows cover these cases).
OGX_DROPS = frozenset({"a.assistant_name", "a.reasoning_content", "b.unknown_field"})
OGX_REFUSES = frozenset({"a.tool_call_flat", "b.call_without_name"})


class OgxClient(OpenAIClient):
    """``guard_client(ogx_client.OgxClient(base_url=upstream))``: OGX's generated client under the same guard."""

    def na(self, case: Case) -> str | None:
        if importlib.util.find_spec("ogx_client") is None:
            return "ogx_client is not installed (the client extra)"
        if case.id in OGX_DROPS:
            return "ogx_client's models drop this answer field: it reaches neither the caller nor the guard"
        if case.id in OGX_REFUSES:
            return "ogx_client refuses this tool-call shape itself (ValueError while reading the answer)"
        return super().na(case)

    def client(self, env: Any, case: Case) -> Any:
        import ogx_client

        from llamaguard_guardrails.client import guard_client

        return guard_client(ogx_client.OgxClient(base_url=env.upstream.url), env.guard(case.guard), **self.options)


class OgxChat(OgxClient, GuardClientChat):
    id = "guard_client(ogx) chat"


class OgxChatStreamWindowed(OgxClient, GuardClientChatStream):
    id = "guard_client(ogx) chat stream windowed"
    options = WINDOWED


class OgxResponsesStream(OgxClient, GuardClientResponsesStream):
    id = "guard_client(ogx) responses stream"


CLIENT: list[EntryPoint] = [
    OpenAIChat(),
    OpenAIChatStream(),
    OpenAIChatStreamWindowed(),
    AsyncOpenAIChatStreamWindowed(),
    OpenAIResponses(),
    OpenAIResponsesStream(),
    AsyncOpenAIResponsesStream(),
    OpenAIResponsesStreamWindowed(),
    OgxChat(),
    OgxChatStreamWindowed(),
    OgxResponsesStream(),
]

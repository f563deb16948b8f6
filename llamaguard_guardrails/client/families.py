"""The clients a guard wraps (the ``openai`` SDK, ``ogx_client``, ``llama_stack_client``), and the result types a
refusal is built in, so a refusal has the type the caller's code expects from its own client."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Family:
    """One client library: its sync and async client classes, and where its result types live."""

    name: str
    sync: tuple[str, str]  # (module, class)
    async_: tuple[str, str]
    types: dict[str, tuple[str, str]]  # kind -> (module, class)

    def client_kind(self, client: Any) -> str | None:
        """``"sync"``, ``"async"`` or ``None`` (not this family's client, or the library is not installed)."""
        for kind, (module, name) in (("async", self.async_), ("sync", self.sync)):
            cls = _load(module, name)
            if cls is not None and isinstance(client, cls):
                return kind
        return None

    def build(self, kind: str, data: dict[str, Any]) -> Any:
        """A ``kind`` result (``chat``, ``chunk``, ``completion``, ``response``, ``text_delta``, ``completed``)."""
        module, name = self.types[kind]
        cls = _load(module, name)
        if cls is None:  # pragma: no cover - the family's client imported, so its types do
            raise ImportError(f"{module}.{name} is missing")
        return build(cls, data)


def build(cls: type[Any], data: dict[str, Any]) -> Any:
    """A pydantic result of ``cls`` from ``data``: the SDKs' recursive ``construct``, else validated."""
    construct = getattr(cls, "construct", None)
    if callable(construct) and getattr(cls, "__module__", "").split(".")[0] in ("openai", "llama_stack_client"):
        return construct(**data)
    try:
        return cls.model_validate(data)
    except ValueError:
        return cls.model_construct(**data)


def _load(module: str, name: str) -> type[Any] | None:
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError:
        return None


_OPENAI = "openai.types"
FAMILIES = (
    Family(
        "openai",
        ("openai", "OpenAI"),
        ("openai", "AsyncOpenAI"),
        {
            "chat": (f"{_OPENAI}.chat", "ChatCompletion"),
            "chunk": (f"{_OPENAI}.chat", "ChatCompletionChunk"),
            "completion": (_OPENAI, "Completion"),
            "response": (f"{_OPENAI}.responses", "Response"),
            "text_delta": (f"{_OPENAI}.responses", "ResponseTextDeltaEvent"),
            "completed": (f"{_OPENAI}.responses", "ResponseCompletedEvent"),
        },
    ),
    Family(
        "ogx_client",
        ("ogx_client", "OgxClient"),
        ("ogx_client", "AsyncOgxClient"),
        {
            "chat": ("ogx_client.models", "OpenAIChatCompletion"),
            "chunk": ("ogx_client.models", "OpenAIChatCompletionChunk"),
            "completion": ("ogx_client.models", "OpenAICompletion"),
            "response": ("ogx_client.models", "OpenAIResponseObject"),
            "text_delta": ("ogx_client.models", "OpenAIResponseObjectStreamResponseOutputTextDelta"),
            "completed": ("ogx_client.models", "OpenAIResponseObjectStreamResponseCompleted"),
        },
    ),
    Family(
        "llama_stack_client",
        ("llama_stack_client", "LlamaStackClient"),
        ("llama_stack_client", "AsyncLlamaStackClient"),
        {
            "chat": ("llama_stack_client.types.chat.completion_create_response", "CompletionCreateResponse"),
            "chunk": ("llama_stack_client.types.chat_completion_chunk", "ChatCompletionChunk"),
            "completion": ("llama_stack_client.types.completion_create_response", "CompletionCreateResponse"),
            "response": ("llama_stack_client.types.response_object", "ResponseObject"),
            "text_delta": (
                "llama_stack_client.types.response_object_stream",
                "OpenAIResponseObjectStreamResponseOutputTextDelta",
            ),
            "completed": (
                "llama_stack_client.types.response_object_stream",
                "OpenAIResponseObjectStreamResponseCompleted",
            ),
        },
    ),
)


def family_of(client: Any) -> tuple[Family, bool]:
    """The family of ``client`` and whether it is async; ``TypeError`` for any other object."""
    for family in FAMILIES:
        kind = family.client_kind(client)
        if kind is not None:
            return family, kind == "async"
    raise TypeError(
        "guard_client expects an OpenAI-compatible client: openai.OpenAI / AsyncOpenAI (also for vLLM, LiteLLM "
        f"and OGX servers), ogx_client.OgxClient / AsyncOgxClient, or a LlamaStackClient; got {type(client).__name__}"
    )

"""Refusals in the shape of what they replace: a chat completion or chunk (``finish_reason="content_filter"``),
a response, or the events of a streamed response. ``like`` is the blocked result (its ids and metadata are kept)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from .fields import get


def chat_refusal(request: Mapping[str, Any], text: str, like: Any = None) -> Any:
    """A chat completion whose one choice is the refusal."""
    from llama_stack_client.types.chat.completion_create_response import CompletionCreateResponse

    base = like.model_dump() if like is not None else {}
    return CompletionCreateResponse.construct(
        **{
            "id": _new_id("chatcmpl-guard"),
            "created": int(time.time()),
            "object": "chat.completion",
            **base,
            "model": get(like, "model") or request.get("model") or "",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "content_filter",
                    "message": {"role": "assistant", "content": text, "refusal": text},
                }
            ],
        }
    )


def chat_refusal_chunks(request: Mapping[str, Any], text: str, chunks: list[Any]) -> list[Any]:
    """The one chunk of a refused chat stream (with the id and model of the blocked ``chunks``, if any)."""
    from llama_stack_client.types.chat_completion_chunk import ChatCompletionChunk

    first = chunks[0] if chunks else None
    return [
        ChatCompletionChunk.construct(
            id=get(first, "id") or _new_id("chatcmpl-guard"),
            created=int(time.time()),
            model=get(first, "model") or request.get("model") or "",
            object="chat.completion.chunk",
            choices=[{"index": 0, "finish_reason": "content_filter", "delta": {"role": "assistant", "content": text}}],
        )
    ]


def response_refusal(request: Mapping[str, Any], text: str, like: Any = None) -> Any:
    """A completed response whose one output item is a message with the refusal."""
    from llama_stack_client.types.response_object import ResponseObject

    base = like.model_dump() if like is not None else {}
    return ResponseObject.construct(
        **{
            "id": _new_id("resp-guard"),
            "created_at": int(time.time()),
            "model": request.get("model") or "",
            **base,
            "status": "completed",
            "error": None,
            "output": [
                {
                    "type": "message",
                    "role": "assistant",
                    "id": _new_id("msg-guard"),
                    "status": "completed",
                    "content": [{"type": "output_text", "text": text, "annotations": []}],
                }
            ],
        }
    )


def response_refusal_events(request: Mapping[str, Any], text: str, events: list[Any]) -> list[Any]:
    """A refused response stream: the blocked ``events``' opening events that hold no output, a text delta
    carrying the refusal, then ``response.completed`` with the refusal response."""
    from llama_stack_client.types.response_object_stream import (
        OpenAIResponseObjectStreamResponseCompleted,
        OpenAIResponseObjectStreamResponseOutputTextDelta,
    )

    prelude = [
        e
        for e in events
        if get(e, "type") in ("response.created", "response.in_progress") and not get(get(e, "response"), "output")
    ]
    final = next((get(e, "response") for e in reversed(events) if get(e, "response") is not None), None)
    response = response_refusal(request, text, final)
    delta = OpenAIResponseObjectStreamResponseOutputTextDelta.construct(
        type="response.output_text.delta",
        item_id=response.output[0].id,
        output_index=0,
        content_index=0,
        delta=text,
        sequence_number=len(prelude),
    )
    done = OpenAIResponseObjectStreamResponseCompleted.construct(
        type="response.completed", response=response, sequence_number=len(prelude) + 1
    )
    return [*prelude, delta, done]


def _new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"

"""Refusals in the shape of what they replace: a chat completion or chunk (``finish_reason="content_filter"``),
a response, or the events of a streamed response. ``like`` is the blocked result: only its ids, timestamps, model
and usage are kept (:data:`KEPT`), never a field that could carry what was blocked."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from .families import Family
from .fields import get

#: The fields of a blocked result a refusal keeps: none can carry its content.
KEPT = frozenset({"id", "object", "created", "created_at", "model", "system_fingerprint", "service_tier", "usage"})


def _kept(like: Any) -> dict[str, Any]:
    if like is None:
        return {}
    data = like.model_dump() if hasattr(like, "model_dump") else dict(like)
    return {k: v for k, v in data.items() if k in KEPT and v is not None}


def chat_refusal(family: Family, request: Mapping[str, Any], text: str, like: Any = None) -> Any:
    """A chat completion whose one choice is the refusal."""
    base = _kept(like)
    return family.build(
        "chat",
        {
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
        },
    )


def chat_refusal_chunks(family: Family, request: Mapping[str, Any], text: str, chunks: list[Any]) -> list[Any]:
    """The one chunk of a refused chat stream (with the id and model of the blocked ``chunks``, if any)."""
    first = chunks[0] if chunks else None
    chunk = {
        "id": get(first, "id") or _new_id("chatcmpl-guard"),
        "created": int(time.time()),
        "model": get(first, "model") or request.get("model") or "",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "finish_reason": "content_filter", "delta": {"role": "assistant", "content": text}}],
    }
    return [family.build("chunk", chunk)]


def completion_refusal(family: Family, request: Mapping[str, Any], text: str, like: Any = None) -> Any:
    """A (legacy) completion whose one choice is the refusal."""
    base = _kept(like)
    return family.build(
        "completion",
        {
            "id": _new_id("cmpl-guard"),
            "created": int(time.time()),
            "object": "text_completion",
            **base,
            "model": get(like, "model") or request.get("model") or "",
            "choices": [{"index": 0, "finish_reason": "content_filter", "text": text, "logprobs": None}],
        },
    )


def completion_refusal_chunks(family: Family, request: Mapping[str, Any], text: str, chunks: list[Any]) -> list[Any]:
    """The one chunk of a refused completion stream."""
    return [completion_refusal(family, request, text, None)]


def response_refusal(family: Family, request: Mapping[str, Any], text: str, like: Any = None) -> Any:
    """A completed response whose one output item is a message with the refusal."""
    base = _kept(like)
    return family.build(
        "response",
        {
            "object": "response",
            "tools": [],
            "tool_choice": "auto",
            "parallel_tool_calls": True,
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
        },
    )


def response_refusal_events(family: Family, request: Mapping[str, Any], text: str, events: list[Any]) -> list[Any]:
    """A refused response stream: the blocked ``events``' opening events that hold no output, a text delta
    carrying the refusal, then ``response.completed`` with the refusal response."""
    prelude = [
        e
        for e in events
        if get(e, "type") in ("response.created", "response.in_progress") and not get(get(e, "response"), "output")
    ]
    final = next((get(e, "response") for e in reversed(events) if get(e, "response") is not None), None)
    response = response_refusal(family, request, text, final)
    delta = {
        "type": "response.output_text.delta",
        "item_id": get(get(response, "output")[0], "id"),
        "output_index": 0,
        "content_index": 0,
        "delta": text,
        "logprobs": [],
        "sequence_number": len(prelude),
    }
    done = {"type": "response.completed", "response": response, "sequence_number": len(prelude) + 1}
    return [*prelude, family.build("text_delta", delta), family.build("completed", done)]


def _new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"

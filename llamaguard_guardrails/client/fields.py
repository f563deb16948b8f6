"""Reading what a client sends and a server answers (untrusted dicts or pydantic models): field by field,
refusing what cannot be shown to the guard; and the check a conversation stands for."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.errors import InvalidConversationError
from ..core.values import reject_unknown_fields

Check = tuple[list[dict[str, Any]], str]
"""A conversation to check and its stage (``input``, ``tool_result``, ``output`` or ``tool_call``)."""

#: The keys of an assistant message that hold text (streamed in pieces by chat completions).
ASSISTANT_TEXT = ("content", "refusal", "reasoning_content", "reasoning")


def input_stage(messages: list[dict[str, Any]]) -> str:
    """``tool_result`` when the request sends tool results back, else ``input``."""
    return "tool_result" if messages and messages[-1].get("role") in ("tool", "function") else "input"


def output_stage(message: Mapping[str, Any]) -> str:
    """``tool_call`` for an answer that only calls tools, else ``output``."""
    calls = message.get("tool_calls") or message.get("function_call")
    text = any(filled(message.get(k)) for k in (*ASSISTANT_TEXT, "annotations"))
    return "tool_call" if calls and not text else "output"


def get(obj: Any, key: str, default: Any = None) -> Any:
    """``obj[key]`` or ``obj.key``; ``default`` when missing or ``None``."""
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    value = getattr(obj, key, default)
    return default if value is None else value


def filled(value: Any) -> bool:
    """Whether ``value`` holds something (not ``None``, not an empty string, list or dict)."""
    return value is not None and not (isinstance(value, str | list | dict) and not value)


def text_piece(value: Any, where: str) -> str:
    """A streamed text piece (``None`` is empty); anything else cannot be concatenated and checked."""
    if value is None or isinstance(value, str):
        return value or ""
    raise InvalidConversationError(f"{where} must be a string, got {type(value).__name__}")


def only_known(mapping: Mapping[str, Any], known: frozenset[str] | set[str], where: str) -> None:
    """Raise on a field the client-side guard does not know: it could reach a user unchecked."""
    reject_unknown_fields(mapping, known, where, "request or answer the client-side guard reads")


__all__ = [
    "ASSISTANT_TEXT",
    "Check",
    "filled",
    "get",
    "input_stage",
    "only_known",
    "output_stage",
    "text_piece",
]

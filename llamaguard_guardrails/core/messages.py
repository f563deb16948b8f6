"""Builders for the core's message shapes: the one way every adapter hands framework objects to the guard.

Adapters translate their objects with these instead of writing message dicts by hand, so a tool call,
a tool result, a refusal or an image reaches :func:`~.conversation.parse_conversation` in one shape
whatever framework it came from. The builders only build: the parser checks what they hold (a tool call
without a name, say, is refused there, with the same typed error whichever adapter built it).

>>> tool_call("search", {"q": "bread"}, call_id="c1")
{'id': 'c1', 'type': 'function', 'function': {'name': 'search', 'arguments': '{"q": "bread"}'}}
>>> assistant(refusal="I can't help with that.")
{'role': 'assistant', 'content': None, 'refusal': "I can't help with that."}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .values import json_text

Message = dict[str, Any]


def arguments_text(arguments: Any) -> str:
    """A tool call's arguments as the JSON text a model sends (a string is taken as it is)."""
    return json_text({} if arguments is None else arguments)


def tool_call(name: Any, arguments: Any, *, call_id: Any = "call") -> Message:
    """One OpenAI-shape tool call; ``arguments`` is JSON text or anything ``json.dumps`` can write."""
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments_text(arguments)}}


def assistant(
    content: Any = None,
    *,
    tool_calls: Sequence[Message] = (),
    refusal: str | None = None,
    name: str | None = None,
) -> Message:
    """An assistant message: text or parts, tool calls, a refusal, a name (only the fields given)."""
    message: Message = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = list(tool_calls)
    if refusal is not None:
        message["refusal"] = refusal
    if name:
        message["name"] = name
    return message


def tool_result(content: Any, *, name: str | None = None, call_id: Any = "call") -> Message:
    """A tool's result (text or content parts) as the input the agent reads next."""
    message: Message = {"role": "tool", "tool_call_id": call_id, "content": content}
    if name:
        message["name"] = name
    return message


def image_part(image: Any) -> Message:
    """A content part holding one image: bytes, base64 text, a data URL, a PIL image or a ``pathlib.Path``.

    URLs are never fetched and path strings never opened (see :mod:`.images`): the parser refuses them.
    """
    return {"type": "image", "image": image}

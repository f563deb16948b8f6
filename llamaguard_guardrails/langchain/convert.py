"""LangChain values -> OpenAI-format messages, the format the core classifies.

Everything LangChain hands a guard is turned into the core's OpenAI chat format, without dropping
content: strings, prompt values, ``BaseMessage`` objects (and their chunks), OpenAI / LangChain
message dicts and ``(role, text)`` tuples, and dicts holding messages. Message content is read
through LangChain's standard content blocks (``message.content_blocks``), so provider formats,
OpenAI ``image_url`` parts, standard ``{"type": "image", "base64": ...}`` blocks and legacy v0 image
blocks all arrive as images; assistant tool calls, invalid tool calls, tool-call chunks and
provider-side ``server_tool_call`` blocks (e.g. a hosted code interpreter) become ``tool_calls`` so
code is checked under S14. Content the guard cannot read (audio, video, files, provider file ids)
raises :class:`InvalidConversationError` instead of being skipped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pydantic
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    convert_to_messages,
)
from langchain_core.prompt_values import PromptValue

from ..core import json_text as json_pairs
from ..core import messages as build
from ..core.errors import InvalidConversationError, InvalidImageError, shown_name
from ..core.values import json_text
from . import _blocks as _blocks_mod

OpenAIMessage = dict[str, Any]

_CHAT_ROLES = {
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "ai": "assistant",
    "system": "system",
    "developer": "developer",
    "tool": "tool",
    "function": "tool",
}
_TOOL_CALL_BLOCKS = frozenset({"tool_call", "tool_call_chunk", "invalid_tool_call", "server_tool_call"})
_SERVER_CALL_CHUNK = "server_tool_call_chunk"
#: Provider parts LangChain wraps as ``non_standard`` that the core reads (or rejects) by their own type.
_PROVIDER_PARTS = frozenset({"thinking", "redacted_thinking", "reasoning", "refusal", "image_url", "input_image"})


def to_messages(value: Any, *, key: str | None = None, default_role: str = "user") -> list[OpenAIMessage]:
    """Turn a LangChain input or output value into OpenAI-format messages.

    - ``str``: one message with ``default_role`` (``"user"`` for inputs, ``"assistant"`` for outputs);
    - ``PromptValue``, ``BaseMessage``, a list of messages (objects, dicts, tuples, strings): converted;
    - ``dict``: its ``key`` entry when ``key`` is given; else its ``"messages"`` entry followed by its
      other entries as ``name: value`` lines on the side of the last message (so an agent state's
      ``structured_response`` is checked with the answer); else every entry as ``name: value`` lines
      of one message with ``default_role``;
    - a pydantic model (a structured output): its fields as JSON, as for a dict.
    """
    if isinstance(value, str):
        return [{"role": default_role, "content": value}]
    if isinstance(value, PromptValue):
        return [message_to_openai(m) for m in value.to_messages()]
    if isinstance(value, BaseMessage):
        return [message_to_openai(value)]
    if isinstance(value, Mapping):
        if key is not None:
            if key not in value:
                raise InvalidConversationError(
                    f"the input has no {key!r} key (keys: {sorted(map(str, value))}); set input_key/output_key"
                )
            return to_messages(value[key], default_role=default_role)
        if "messages" in value:
            return _state_messages(value, default_role)
        if "role" in value or value.get("type") in ("human", "ai", "system", "tool"):
            return [message_to_openai(m) for m in _converted([value])]
        return _mapping_messages(value, default_role)
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        if not value:
            raise InvalidConversationError("there is nothing to check: the message list is empty")
        return [message_to_openai(m) for m in _converted(list(value))]
    if isinstance(value, pydantic.BaseModel):  # a structured output (with_structured_output): its fields
        return _mapping_messages(_fields(value), default_role)
    raise InvalidConversationError(
        f"cannot check a value of type {type(value).__name__}; pass a string, a prompt value, messages, a "
        "pydantic model, or a dict with a 'messages' key (or set input_key/output_key)"
    )


def _call_list(message: BaseMessage, field: str) -> list[Mapping[str, Any]]:
    """A message's ``tool_calls`` / ``tool_call_chunks`` / ``invalid_tool_calls``: a list of dicts, else a typed
    error (a message class that allows extra fields takes any value there)."""
    calls = getattr(message, field, None) or []
    if not isinstance(calls, list) or not all(isinstance(call, Mapping) for call in calls):
        raise InvalidConversationError(
            f"{type(message).__name__}.{field} must be a list of tool-call dicts, got {shown_name(calls)}"
        )
    return calls


def _fields(value: pydantic.BaseModel) -> dict[str, Any]:
    """A pydantic model's fields as the JSON its consumer would write (every field, nested ones too)."""
    try:
        return value.model_dump(mode="json")
    except (pydantic.PydanticSerializationError, ValueError, TypeError) as exc:
        raise InvalidConversationError(f"a {type(value).__name__} cannot be shown to the model as JSON: {exc}") from None


def _converted(values: list[Any]) -> list[BaseMessage]:
    """LangChain's own conversion, with every failure turned into a typed error that says what is wrong."""
    try:
        return convert_to_messages(values)
    except (ValueError, TypeError, NotImplementedError, KeyError, AttributeError) as exc:  # pydantic errors too
        raise InvalidConversationError(f"cannot read the messages: {type(exc).__name__}: {exc}") from exc


def message_to_openai(message: BaseMessage) -> OpenAIMessage:
    """One LangChain message as an OpenAI-style chat message: every field a model, tool or user receives.

    Content blocks (text with its annotations, images, reasoning / thinking, refusals, provider
    blocks), the message ``name``, every tool call (``tool_calls``, ``invalid_tool_calls``,
    tool-call chunks, ``server_tool_call`` blocks, ``additional_kwargs["tool_calls"]`` and
    ``["function_call"]``), ``additional_kwargs["refusal"]`` / ``["reasoning_content"]`` /
    ``["reasoning"]``, and any other ``additional_kwargs`` entry (as ``[KEY] value`` text).
    Content the guard cannot read raises :class:`InvalidConversationError`.
    """
    role = _role(message)
    kwargs = dict(getattr(message, "additional_kwargs", None) or {})
    kwargs.pop("__openai_role__", None)  # read by _role
    reasoning_content = kwargs.pop("reasoning_content", None)
    parts: list[dict[str, Any]] = []
    calls = _Calls()
    for n, block in enumerate(_blocks(message)):
        where = f"{type(message).__name__} content block {n}"
        kind = block.get("type")
        _blocks_mod.check_fields(block, where)
        if kind in _TOOL_CALL_BLOCKS or kind == _SERVER_CALL_CHUNK:
            calls.add(_tool_call(block, len(calls), where))
        elif kind == "reasoning" and isinstance(reasoning_content, str) and block.get("reasoning") == reasoning_content:
            pass  # LangChain's copy of additional_kwargs["reasoning_content"], shown below
        else:
            part = _part(block, where)
            if part is not None:
                parts.append(part)
        extras = _blocks_mod.extras_text(block, where)
        if extras is not None:
            parts.append({"type": "text", "text": extras})
    # The message's own tool calls: a chat model sends them whatever its content blocks hold (a provider's
    # translator, or output_version="v1" content, builds content_blocks without them).
    streamed = "tool_call_chunk" if isinstance(message, AIMessageChunk) else "tool_call"  # may lack a name yet
    for field, kind in (
        ("tool_calls", streamed),
        ("tool_call_chunks", "tool_call_chunk"),
        ("invalid_tool_calls", "invalid_tool_call"),
    ):
        for n, call in enumerate(_call_list(message, field)):
            calls.add(_tool_call({**call, "type": kind}, len(calls), f"{field}[{n}]"))
    refusal = kwargs.pop("refusal", None)
    _add_legacy_calls(calls, kwargs.pop("tool_calls", None), kwargs.pop("function_call", None))
    if reasoning_content is not None:
        parts.insert(0, _reasoning_part(reasoning_content, "additional_kwargs['reasoning_content']"))
    if kwargs.get("reasoning") is not None:
        parts[:0] = _reasoning_parts(kwargs.pop("reasoning"))
    if "audio" in kwargs and kwargs["audio"] is not None:
        raise InvalidConversationError(
            f"a {type(message).__name__} carries audio (additional_kwargs['audio']); Llama Guard 4 cannot hear it: "
            "remove it or transcribe it to text before the guard"
        )
    parts += [{"type": "text", "text": f"[{key}] {_shown(value)}"} for key, value in kwargs.items() if value]
    if calls and role != "assistant":
        raise InvalidConversationError(f"a {type(message).__name__} cannot carry tool calls")
    out = _message(message, role, parts, calls, refusal)
    unshown = _blocks_mod.unshown_blocks(message.content, out, parts)
    if unshown:  # a raw block a translator (or a field no one knew) left out: shown whole
        parts += [{"type": "text", "text": f"[content block {n}] {_shown(block)}"} for n, block in unshown]
        out = _message(message, role, parts, calls, refusal)
    return out


def _message(
    message: BaseMessage, role: str, parts: list[dict[str, Any]], calls: list[dict[str, Any]], refusal: Any
) -> OpenAIMessage:
    out: OpenAIMessage = {"role": role}
    if refusal is not None:
        if role != "assistant":
            parts = [*parts, {"type": "text", "text": f"[refusal] {_shown(refusal)}"}]
        elif isinstance(refusal, str):
            out["refusal"] = refusal
        else:
            raise InvalidConversationError(
                f"additional_kwargs['refusal'] must be a string, got {type(refusal).__name__}"
            )
    if calls:
        out["tool_calls"] = calls
        out["content"] = _compact(parts) if parts else None
    elif parts or "refusal" not in out:  # a refusal-only message has no content, as OpenAI sends it
        out["content"] = _compact(parts) if parts else ""
    name = getattr(message, "name", None)
    if role == "tool":
        out["tool_call_id"] = str(getattr(message, "tool_call_id", "") or "")
        if name:
            out["name"] = name
    elif name:
        if not isinstance(name, str):
            raise InvalidConversationError(f"a {type(message).__name__}'s name must be a string")
        out["name"] = name
    return out


def tool_call_message(name: str, args: Any, call_id: str | None = None) -> OpenAIMessage:
    """An assistant message holding one tool call (the form a tool-argument check classifies)."""
    return build.assistant(tool_calls=[build.tool_call(name, args, call_id=call_id or "call")])


def tool_result_message(name: str, result: Any, call_id: str | None = None) -> OpenAIMessage:
    """A tool message holding a tool's result (strings, content blocks, messages, or JSON)."""
    if isinstance(result, ToolMessage):
        message = message_to_openai(result)
        message["name"] = result.name or name
        message["tool_call_id"] = call_id or message.get("tool_call_id") or "call"
        return message
    if isinstance(result, str):
        content: Any = result
    elif isinstance(result, list) and all(isinstance(p, Mapping) and "type" in p for p in result):
        content = message_to_openai(ToolMessage(content=result, tool_call_id=call_id or "call"))["content"]
    else:
        content = json_text(result)
    return build.tool_result(content, name=name, call_id=call_id or "call")


def text_of(value: Any) -> str | None:
    """The plain text of a streamed chunk, or ``None`` when it carries anything but text (a tool call,
    reasoning or a refusal in ``additional_kwargs``, a name, images, a text part's annotations or extras, a
    dict ...): a windowed stream checks only this text of a plain-text chunk before releasing it."""
    if isinstance(value, str):
        return value
    if isinstance(value, BaseMessage):
        extra = ("tool_call_chunks", "tool_calls", "invalid_tool_calls", "additional_kwargs", "name")
        if any(getattr(value, attr, None) for attr in extra):
            return None  # reasoning, refusals, tool calls, names ... are checked with the whole message
        content = value.content
        if isinstance(content, str):
            return content
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif _plain_text_part(part):
                texts.append(part["text"])
            else:
                return None
        return "".join(texts)
    return None


# -- internals -------------------------------------------------------------------------------------


def _plain_text_part(part: Any) -> bool:
    """A text part holding only its text (annotations, extras, citations ... are checked with the whole message)."""
    return (
        isinstance(part, Mapping)
        and part.get("type") == "text"
        and isinstance(part.get("text"), str)
        and all(key in ("type", "text", "id", "index") or not value for key, value in part.items())
    )


def _role(message: BaseMessage) -> str:
    if isinstance(message, HumanMessage):
        return "user"
    if isinstance(message, AIMessage):
        return "assistant"
    if isinstance(message, SystemMessage):
        return "developer" if message.additional_kwargs.get("__openai_role__") == "developer" else "system"
    if isinstance(message, (ToolMessage, FunctionMessage)):
        return "tool"
    if isinstance(message, ChatMessage):
        role = _CHAT_ROLES.get(message.role.lower())
        if role is None:
            raise InvalidConversationError(
                f"ChatMessage role {message.role!r} is unknown; use user, assistant, system, developer or tool"
            )
        return role
    chunk_roles = {"HumanMessageChunk": "user", "SystemMessageChunk": "system", "ToolMessageChunk": "tool"}
    if type(message).__name__ in chunk_roles:
        return chunk_roles[type(message).__name__]
    raise InvalidConversationError(f"cannot check a {type(message).__name__}; it is not a chat message")


def _blocks(message: BaseMessage) -> list[dict[str, Any]]:
    try:
        blocks = list(message.content_blocks)
    except Exception as exc:
        raise InvalidConversationError(f"cannot read the content of a {type(message).__name__}: {exc}") from exc
    return _blocks_mod.standard_blocks(blocks, type(message).__name__)


def _part(block: Mapping[str, Any], where: str) -> dict[str, Any] | None:
    kind = block.get("type")
    if kind in ("text", "text-plain"):
        text = block.get("text")
        if not isinstance(text, str):
            raise InvalidConversationError(f"{where}: a {kind} block without inline text cannot be checked")
        if kind == "text-plain":  # a document's title and context reach the model with its text
            text = "\n".join(f"[{key}] {_shown(block[key])}" for key in ("title", "context") if block.get(key)) + (
                "\n" + text if block.get("title") or block.get("context") else text
            )
        annotations = [*_listed(block.get("annotations"), where), *_listed(block.get("citations"), where)]
        if annotations:
            return {"type": "text", "text": text, "annotations": annotations}
        return {"type": "text", "text": text} if text else None
    if kind == "reasoning":
        return _reasoning_block(block, where)
    if kind == "refusal":
        refusal = block.get("refusal")
        if not isinstance(refusal, str):
            raise InvalidConversationError(f"{where}: a refusal block needs a string 'refusal'")
        return {"type": "refusal", "refusal": refusal}
    if kind == "image":
        return _image_part(block, where)
    if kind == "server_tool_result":
        output = block.get("output")
        shown = output if isinstance(output, str) else json_text(output)
        return {"type": "text", "text": f"[server tool result] {shown}"}
    if kind == "non_standard":
        value = block.get("value")
        if isinstance(value, Mapping) and value.get("type") in _PROVIDER_PARTS:
            return dict(value)  # the core reads (or rejects) thinking, redacted_thinking ... parts itself
        return {"type": "text", "text": _blocks_mod.provider_block_text(value, where)}
    raise InvalidConversationError(
        f"{where}: Llama Guard 4 cannot check {kind!r} content (it reads text and images); "
        "remove it or transcribe it to text before the guard"
    )


def _reasoning_block(block: Mapping[str, Any], where: str) -> dict[str, Any] | None:
    """A standard reasoning block as a core reasoning part; encrypted reasoning is unreadable."""
    extras = block.get("extras") if isinstance(block.get("extras"), Mapping) else {}
    if block.get("encrypted_content") or extras.get("encrypted_content"):
        raise InvalidConversationError(
            f"{where}: encrypted reasoning (encrypted_content) cannot be checked; the model that reads it is the "
            "only one that can. Remove it before the guard"
        )
    text = block.get("reasoning")
    raw = {key: block[key] for key in ("summary", "content") if block.get(key)}  # an OpenAI reasoning item's text
    if raw:  # the core reads (or rejects) a reasoning item's summary and content lists
        return {"type": "reasoning", **({"reasoning": _string_reasoning(text, where)} if text else {}), **raw}
    if text is None:
        return None  # an empty reasoning item (OpenAI sends ids without a summary)
    return _reasoning_part(text, where)


def _string_reasoning(text: Any, where: str) -> str:
    return _reasoning_part(text, where)["reasoning"]


def _listed(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise InvalidConversationError(f"{where}: annotations / citations must be a list")
    return list(value)


def _reasoning_part(text: Any, where: str) -> dict[str, Any]:
    if not isinstance(text, str):
        raise InvalidConversationError(f"{where}: reasoning must be a string, got {type(text).__name__}")
    return {"type": "reasoning", "reasoning": text}


def _reasoning_parts(reasoning: Any) -> list[dict[str, Any]]:
    """``additional_kwargs["reasoning"]``: a string, or an OpenAI reasoning item (the core reads its summary)."""
    if isinstance(reasoning, str):
        return [_reasoning_part(reasoning, "additional_kwargs['reasoning']")]
    if isinstance(reasoning, Mapping):
        return [{**{k: v for k, v in reasoning.items() if k not in ("id", "type")}, "type": "reasoning"}]
    raise InvalidConversationError(
        f"additional_kwargs['reasoning'] must be a string or a reasoning item, got {type(reasoning).__name__}"
    )


def _image_part(block: Mapping[str, Any], where: str) -> dict[str, Any]:
    sources = [key for key in ("base64", "url", "file_id") if block.get(key)]
    if len(sources) > 1:  # OpenAI's converter sends the url, another may send the base64: the guard must see it
        raise InvalidImageError(
            f"{where}: an image block names {len(sources)} images ({', '.join(sources)}); a model reads one of "
            "them, so send exactly one"
        )
    if isinstance(block.get("base64"), str):
        return build.image_part(block["base64"])
    if isinstance(block.get("url"), str):
        return build.image_part(block["url"])
    if block.get("file_id"):
        raise InvalidImageError(
            f"{where}: an image given only as a provider file id ({block['file_id']!r}) cannot be read by the guard; "
            "pass it as base64 or a data URL"
        )
    raise InvalidImageError(f"{where}: image block has no base64 data or url")


def _tool_call(block: Mapping[str, Any], n: int, where: str | None = None) -> dict[str, Any]:
    kind = block.get("type", "call")
    name = block.get("name")
    if kind in ("tool_call_chunk", _SERVER_CALL_CHUNK) and not name:
        name = "(name not streamed yet)"  # a chunk carries its name once; its arguments are still shown
    if not isinstance(name, str) or not name:
        raise InvalidConversationError(f"{where or f'tool call {n}'} has no name")
    call_id = block.get("id") or f"{kind}_{n}"
    return build.tool_call(name, block.get("args"), call_id=str(call_id))


class _Calls(list[dict[str, Any]]):
    """A message's tool calls, each once: the same call (id, name, arguments as JSON pairs) given twice, e.g. in
    ``tool_calls`` and as a content block, is shown once (found by key, so many calls cost linear time)."""

    def __init__(self) -> None:
        super().__init__()
        self._keys: set[tuple[str, str, str]] = set()

    def add(self, call: dict[str, Any]) -> None:
        key = (str(call["id"]), str(call["function"]["name"]), _arguments_key(call["function"]["arguments"]))
        if key not in self._keys:
            self._keys.add(key)
            self.append(call)


def _arguments_key(arguments: Any) -> str:
    """JSON arguments as their pairs (repeated keys and order kept, spacing not): a chunk's text equals its parse."""
    try:
        return "json:" + json_pairs.render(json_pairs.parse(arguments))
    except (TypeError, ValueError, RecursionError, InvalidConversationError):
        return "text:" + str(arguments)


def _add_legacy_calls(calls: _Calls, tool_calls: Any, function_call: Any) -> None:
    """``additional_kwargs["tool_calls"]`` / ``["function_call"]``: what OpenAI-style providers send back."""
    raw = tool_calls if tool_calls is not None else []
    if not isinstance(raw, (list, tuple)):
        raise InvalidConversationError("additional_kwargs['tool_calls'] must be a list of tool calls")
    entries = [(f"additional_kwargs['tool_calls'][{n}]", c) for n, c in enumerate(raw)]
    if function_call is not None:
        entries.append(("additional_kwargs['function_call']", {"function": function_call}))
    for where, entry in entries:
        function = entry.get("function", entry) if isinstance(entry, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str) or not function["name"]:
            raise InvalidConversationError(f"{where} must be a dict with a function name")
        arguments = function.get("arguments", function.get("args", ""))
        call_id = entry.get("id") or f"function_call_{len(calls)}"
        calls.add(build.tool_call(function["name"], arguments, call_id=str(call_id)))


def _compact(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    if all(p["type"] == "text" and set(p) == {"type", "text"} for p in parts):
        return "\n".join(p["text"] for p in parts)
    return parts


def _mapping_messages(value: Mapping[str, Any], default_role: str) -> list[OpenAIMessage]:
    """A dict of template variables: message lists as context, the other entries as ``name: value`` lines."""
    context: list[OpenAIMessage] = []
    lines = []
    for name, item in value.items():
        if isinstance(item, str):
            lines.append(f"{name}: {item}")
        elif isinstance(item, BaseMessage):
            context.append(message_to_openai(item))
        elif isinstance(item, (list, tuple)) and item and all(isinstance(m, BaseMessage) for m in item):
            context.extend(message_to_openai(m) for m in item)
        else:
            lines.append(f"{name}: {json_text(item)}")
    strings = [item for item in value.values() if isinstance(item, str)]
    if len(lines) == 1 and len(strings) == 1:
        lines = strings  # one text variable: just its text
    if lines:
        context.append({"role": default_role, "content": "\n".join(lines)})
    if not context:
        raise InvalidConversationError("there is nothing to check: the dict is empty")
    return context


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json_text(value)


def _state_messages(state: Mapping[str, Any], default_role: str) -> list[OpenAIMessage]:
    """A state's messages, then its other entries (e.g. a ``structured_response``) as ``name: value`` lines on
    the side of the last message, so they are checked with it."""
    messages = to_messages(state["messages"], default_role=default_role)
    lines = [f"{name}: {_shown(item)}" for name, item in state.items() if name != "messages" and item is not None]
    if lines and messages:
        role = "assistant" if messages[-1]["role"] == "assistant" else "user"
        messages.append({"role": role, "content": "\n".join(lines)})
    return messages

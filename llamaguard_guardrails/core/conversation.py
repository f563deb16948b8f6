"""A neutral conversation, and the documented mapping from OpenAI-style chat messages onto it.

Llama Guard 4 only knows alternating ``User`` / ``Agent`` turns. The mapping is lossless.

**The rule:** every message key and content-part field that a downstream model, tool or user receives
is shown to the guard, or the conversation is rejected with :class:`InvalidConversationError`. Only the
metadata listed below is ignored; an unknown key is an error that names it. A key whose value is
``None`` carries nothing and is ignored.

Shown to the model:

- ``user`` messages become User blocks; ``assistant`` text becomes Agent blocks.
- ``system`` / ``developer`` messages become User blocks whose text starts with ``[system] ``
  (instructions are input to the agent, so they are checked like user input).
- ``name`` on user / assistant / system / developer messages: ``[name: X] `` before the message's first
  text (a caller controls it). On ``tool`` / ``function`` messages it is the tool's name.
- assistant ``refusal`` (a string) and ``{"type": "refusal", "refusal": ...}`` parts: Agent text. An
  assistant message may hold only a refusal (``content: None``).
- assistant ``reasoning_content`` / ``reasoning`` strings and ``{"type": "reasoning", ...}`` parts
  (``reasoning`` or ``text`` string, ``summary`` list of ``summary_text``, ``content`` list of
  ``reasoning_text``) and ``{"type": "thinking", "thinking": ...}`` parts: Agent text after
  ``[reasoning] ``.
- each assistant tool call becomes its own Agent block: ``[tool call: NAME] {json args}``, or for a
  code-interpreter call (a code tool name, or a ``code``/``script``/``command`` argument) a fenced code
  block under ``[code interpreter call: NAME]`` so that S14 applies. JSON arguments are decoded first,
  so ``"\\u0062omb"`` is shown to the model as ``bomb``, and shown faithfully: every pair of every object,
  repeated keys included, in order, and number literals as written (``core.json_text``); JSON nested deeper
  than 128 levels or with a number literal over 4,300 characters is rejected. Accepted shapes: OpenAI
  ``{"function": {"name", "arguments"}}`` (and the legacy ``function_call``), OpenAI custom tools
  ``{"custom": {"name", "input"}}``, LangChain ``{"name", "args"}``, Anthropic / Bedrock ``{"name",
  "input"}``, and ``{"type": "tool_use", "id", "name", "input"}`` content parts.
- ``tool`` / ``function`` results become User blocks starting ``[tool result: NAME] `` (they are input
  the agent did not write).
- Llama Stack's user ``context`` (RAG context): User text after ``[context] ``. Non-empty
  ``annotations`` (citations, on assistant messages or text parts): ``[annotations] {json}``.
- consecutive blocks of the same side are merged into one turn; each block keeps its own
  ``Role: text`` lines and its own images. A conversation whose first turn is Agent gets an empty
  User turn in front (it renders nothing), so turns alternate as the model expects.

Ignored metadata (no content for a model): message keys ``role``, ``id``, ``type`` (only
``"message"``), ``status``, ``tool_call_id``, ``call_id``, ``stop_reason``; tool-call keys ``id``, ``type``,
``index``, ``cache_control``; part fields ``type``, ``id``, ``index``, ``cache_control``, plus ``logprobs``
(text), ``signature`` (thinking), ``mime_type`` and ``detail`` (images).

Rejected: unknown roles, keys, part types and part fields; ``redacted_thinking`` parts and reasoning
``encrypted_content`` (unreadable); image parts naming no image or more than one (``file_id`` only is
unreadable); tool calls with arguments under more than one key; ``tool_use`` parts outside assistant
messages.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from PIL import Image

from . import json_text
from .errors import InvalidConversationError, InvalidImageError, shown_name
from .images import ImageLimits, image_reader, read_image_part
from .values import plain_dict
from .values import reject_unknown_fields as _only

Role = Literal["User", "Agent"]

CODE_TOOL_NAMES = frozenset(
    {
        "python",
        "ipython",
        "code_interpreter",
        "code-interpreter",
        "codeinterpreter",
        "run_python",
        "execute_python",
        "python_repl",
        "python_interpreter",
        "execute_code",
        "run_code",
        "exec",
        "eval",
        "bash",
        "shell",
        "sh",
        "terminal",
        "run_shell",
        "execute_command",
        "run_command",
        "jupyter",
    }
)
CODE_ARGUMENT_KEYS = ("code", "source", "script", "command", "cmd", "program", "python", "query_code")

_TEXT_PART_TYPES = frozenset({"text", "input_text", "output_text"})
_IMAGE_PART_TYPES = frozenset({"image_url", "input_image", "image"})

# What the mapping reads. The rule: a key or field a downstream model, tool or user receives is shown to the
# guard, or the conversation is rejected; only the metadata listed here (ids, roles, bookkeeping) is ignored.
#: Message keys that carry no content for a model.
MESSAGE_METADATA_KEYS = frozenset({"role", "id", "type", "status", "tool_call_id", "call_id", "stop_reason"})
#: Message keys shown to the guard, by role.
MESSAGE_CONTENT_KEYS: dict[str, frozenset[str]] = {
    "user": frozenset({"content", "name", "context"}),
    "system": frozenset({"content", "name"}),
    "developer": frozenset({"content", "name"}),
    "assistant": frozenset(
        {"content", "name", "refusal", "reasoning_content", "reasoning", "tool_calls", "function_call", "annotations"}
    ),
    "tool": frozenset({"content", "name"}),
    "function": frozenset({"content", "name"}),
}
REASONING_KEYS = ("reasoning_content", "reasoning")
REASONING_PREFIX = "[reasoning] "
#: Tool call keys: metadata, and what is shown (``function``/``custom`` wrap the shown keys).
TOOL_CALL_METADATA_KEYS = frozenset({"id", "type", "index", "cache_control"})
TOOL_CALL_CONTENT_KEYS = frozenset({"name", "arguments", "args", "input"})
#: Content part fields: metadata of every part, metadata by part type, and the fields shown.
PART_METADATA_KEYS = frozenset({"type", "id", "index", "cache_control"})
IMAGE_SOURCE_KEYS = ("image_url", "image", "url", "path", "data", "base64", "file_id")
PART_TYPE_METADATA_KEYS: dict[str, frozenset[str]] = {
    "text": frozenset({"logprobs"}),
    "thinking": frozenset({"signature"}),
    "image": frozenset({"mime_type", "detail"}),
}
PART_CONTENT_KEYS: dict[str, frozenset[str]] = {
    "text": frozenset({"text", "annotations"}),
    "refusal": frozenset({"refusal"}),
    "reasoning": frozenset({"reasoning", "text", "summary", "content"}),
    "thinking": frozenset({"thinking"}),
    "tool_use": frozenset({"name", "input"}),
    "image": frozenset(IMAGE_SOURCE_KEYS),
}
#: Part types that hold content the guard cannot read: rejected, with what to do.
UNREADABLE_PART_TYPES = {
    "redacted_thinking": "a redacted_thinking part is encrypted and cannot be checked; remove it before the guard "
    "(only the provider's own model can read it)",
}


@dataclass(frozen=True)
class Block:
    """One source message, or one tool call, inside a turn."""

    texts: tuple[str, ...]
    images: tuple[Image.Image, ...]
    source: int
    kind: Literal["user", "system", "assistant", "tool_call", "tool_result"]


@dataclass(frozen=True)
class Turn:
    role: Role
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Conversation:
    """Alternating User/Agent turns, starting with User. Build it with :func:`parse_conversation`."""

    turns: tuple[Turn, ...]
    message_count: int

    @property
    def checked_role(self) -> Role:
        return self.turns[-1].role

    @property
    def checked_message_index(self) -> int:
        return self.turns[-1].blocks[-1].source

    @property
    def images(self) -> list[Image.Image]:
        return [img for turn in self.turns for block in turn.blocks for img in block.images]

    @property
    def has_images(self) -> bool:
        return any(block.images for turn in self.turns for block in turn.blocks)

    @classmethod
    def from_blocks(cls, blocks: Sequence[tuple[Role, Block]], message_count: int) -> Conversation:
        turns: list[Turn] = []
        for role, block in blocks:
            if turns and turns[-1].role == role:
                turns[-1] = Turn(role, turns[-1].blocks + (block,))
            else:
                turns.append(Turn(role, (block,)))
        if not turns:
            raise InvalidConversationError("the conversation has no content to check")
        if turns[0].role == "Agent":
            turns.insert(0, Turn("User", ()))
        return cls(tuple(turns), message_count)

    def blocks(self) -> list[tuple[Role, Block]]:
        return [(turn.role, block) for turn in self.turns for block in turn.blocks]


def parse_conversation(
    messages: Any, *, allow_local_image_paths: bool = False, image_limits: ImageLimits | None = None
) -> Conversation:
    """Map OpenAI-format messages (or a plain string = one user message) onto a :class:`Conversation`.

    Image strings are never opened as files unless ``allow_local_image_paths`` (see ``core.images``);
    ``image_limits`` bounds what the conversation's images may cost (default: ``ImageLimits()``).
    """
    if isinstance(messages, Conversation):
        return messages
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    if isinstance(messages, Mapping) or not isinstance(messages, Sequence):
        raise InvalidConversationError(
            f"a conversation must be a list of messages (or a string), got {type(messages).__name__}"
        )
    if not messages:
        raise InvalidConversationError("the conversation is empty: pass at least one message")
    tool_names: dict[str, str] = {}
    blocks: list[tuple[Role, Block]] = []
    with image_reader(allow_local_paths=allow_local_image_paths, limits=image_limits):  # one budget per conversation
        for index, message in enumerate(messages):
            for role, block in _message_blocks(plain_dict(message, f"message {index}"), index, tool_names):
                _check_encodable(block, f"message {index} ({role})")
                blocks.append((role, block))
    return Conversation.from_blocks(blocks, len(messages))


def _check_encodable(block: Block, where: str) -> None:
    for text in block.texts:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidConversationError(
                f"{where}: text holds characters that are not valid Unicode (e.g. a lone surrogate at "
                f"position {exc.start}); decode the input properly"
            ) from None


def _message_blocks(message: Mapping[str, Any], index: int, tool_names: dict[str, str]) -> list[tuple[Role, Block]]:
    role = message.get("role")
    where = f"message {index} ({role})"
    if not isinstance(role, str) or role not in MESSAGE_CONTENT_KEYS:
        raise InvalidConversationError(
            f"message {index} has unknown role {shown_name(role)}; use user, assistant, system, developer or tool"
        )
    fields = _fields(message, role, where)
    name = _name_prefix(fields, where) if role not in ("tool", "function") else ""
    if role == "user":
        parts = _content(fields.get("content"), where, required=True)
        texts, images = _prefixed(name, parts.texts), parts.images
        if "context" in fields:  # Llama Stack's RAG context: the model reads it with the message
            context = fields["context"]
            extra = _content([context] if isinstance(context, Mapping) else context, f"{where} context", required=True)
            texts, images = texts + _prefixed("[context] ", extra.texts), images + extra.images
        _no_calls(parts, where)
        return [("User", Block(texts, images, index, "user"))]
    if role in ("system", "developer"):
        parts = _content(fields.get("content"), where, required=True)
        _no_calls(parts, where)
        return [("User", Block(_prefixed("[system] " + name, parts.texts), parts.images, index, "system"))]
    if role == "assistant":
        return _assistant_blocks(fields, index, where, name, tool_names)
    tool = fields.get("name") or tool_names.get(str(message.get("tool_call_id") or message.get("call_id")), "")
    if not isinstance(tool, str):
        raise InvalidConversationError(f"{where}: name must be a string (the tool's name)")
    parts = _content(fields.get("content"), where, required=True)
    _no_calls(parts, where)
    texts = _prefixed(f"[tool result: {tool or 'tool'}] ", parts.texts)
    return [("User", Block(texts, parts.images, index, "tool_result"))]


def _fields(message: Mapping[str, Any], role: str, where: str) -> dict[str, Any]:
    """The message's content keys (``None`` values carry nothing); metadata is dropped, unknown keys rejected."""
    kind = message.get("type")
    if kind is not None and kind != "message":
        raise InvalidConversationError(
            f"{where}: a message of type {shown_name(kind)} is not a chat message; use 'message'"
        )
    allowed = MESSAGE_CONTENT_KEYS[role]
    fields: dict[str, Any] = {}
    for key, value in message.items():
        if value is None or key in MESSAGE_METADATA_KEYS:
            continue
        if key not in allowed:
            raise InvalidConversationError(
                f"{where}: unknown key {shown_name(key)}. A downstream model may read it, so the guard must see it or "
                f"refuse it: remove it, or move its text into 'content' (keys shown for {role} messages: "
                f"{', '.join(sorted(allowed))}; metadata ignored: {', '.join(sorted(MESSAGE_METADATA_KEYS))})"
            )
        fields[key] = value
    return fields


def _name_prefix(fields: Mapping[str, Any], where: str) -> str:
    """``[name: X] `` for a participant name (attacker-controlled, so shown to the model); ``""`` without one."""
    if "name" not in fields:
        return ""
    name = _string(fields["name"], f"{where} name")
    return f"[name: {name}] " if name else ""


def _assistant_blocks(
    fields: Mapping[str, Any], index: int, where: str, name: str, tool_names: dict[str, str]
) -> list[tuple[Role, Block]]:
    texts = [REASONING_PREFIX + _string(fields[key], f"{where} {key}") for key in REASONING_KEYS if key in fields]
    parts = _content(fields.get("content"), where, required=False)
    texts += parts.texts
    if "refusal" in fields:
        texts.append(_string(fields["refusal"], f"{where} refusal"))
    if "annotations" in fields:
        texts += _annotations(fields["annotations"], where)
    raw_calls = fields.get("tool_calls", [])
    if isinstance(raw_calls, (str, bytes, Mapping)) or not isinstance(raw_calls, Sequence):
        raise InvalidConversationError(f"{where}: tool_calls must be a list of tool calls")
    calls = [(f"{where} content part {n}", call) for n, call in parts.calls]
    calls += [(f"{where}: tool_calls[{n}]", call) for n, call in enumerate(raw_calls)]
    if "function_call" in fields:
        calls.append((f"{where}: function_call", {"function": fields["function_call"]}))
    if not texts and not parts.images and not calls:
        raise InvalidConversationError(f"{where} has no content (no text, refusal, reasoning or tool call)")
    blocks: list[tuple[Role, Block]] = []
    if texts or parts.images:
        blocks.append(("Agent", Block(_prefixed(name, tuple(texts)), parts.images, index, "assistant")))
    for call_where, call in calls:
        call_name, arguments, call_id = _tool_call(call, call_where)
        if call_id is not None:
            tool_names[str(call_id)] = call_name
        text = render_tool_call(call_name, arguments)
        blocks.append(("Agent", Block((text if blocks else name + text,), (), index, "tool_call")))
    return blocks


def _tool_call(call: Any, where: str) -> tuple[str, Any, Any]:
    """(name, arguments, id) of a tool call in any accepted shape (see the module docstring)."""
    if not isinstance(call, Mapping):
        raise InvalidConversationError(f"{where} must be a dict")
    wrapper = next((key for key in ("function", "custom") if call.get(key) is not None), None)
    if wrapper is None:
        body = call
        _only(body, TOOL_CALL_METADATA_KEYS | TOOL_CALL_CONTENT_KEYS, where, "tool call")
    else:
        _only(call, TOOL_CALL_METADATA_KEYS | {wrapper}, where, "tool call")
        body = call[wrapper]
        if not isinstance(body, Mapping):
            raise InvalidConversationError(f"{where}: {wrapper} must be a dict with a name and arguments")
        _only(body, TOOL_CALL_CONTENT_KEYS, f"{where} {wrapper}", wrapper)
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidConversationError(f"{where} has no function name")
    given = [key for key in ("arguments", "args", "input") if body.get(key) is not None]
    if len(given) > 1:
        raise InvalidConversationError(
            f"{where} has arguments under {' and '.join(map(repr, given))}; a tool reads one of them, so send one"
        )
    return name, body[given[0]] if given else "", call.get("id")


def _no_calls(parts: _Parts, where: str) -> None:
    if parts.calls:
        raise InvalidConversationError(f"{where}: a tool_use part belongs in an assistant message")


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidConversationError(f"{where} must be a string, got {type(value).__name__}")
    return value


def _annotations(value: Any, where: str) -> list[str]:
    """Citations shown to users with a text (titles, URLs): shown to the model as JSON when there are any."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise InvalidConversationError(f"{where}: annotations must be a list")
    return [f"[annotations] {_json(list(value))}"] if value else []


def _prefixed(prefix: str, texts: tuple[str, ...]) -> tuple[str, ...]:
    if not prefix:
        return texts
    if not texts:
        return (prefix.rstrip(),)
    return (prefix + texts[0],) + texts[1:]


@dataclass(frozen=True)
class _Parts:
    """What a message's content holds: texts, images, and (assistant only) ``tool_use`` calls by part index."""

    texts: tuple[str, ...] = ()
    images: tuple[Image.Image, ...] = ()
    calls: tuple[tuple[int, Mapping[str, Any]], ...] = ()


def _content(content: Any, where: str, *, required: bool) -> _Parts:
    if content is None:
        if required:
            raise InvalidConversationError(f"{where} has no content")
        return _Parts()
    if isinstance(content, str):
        return _Parts((content,))
    if isinstance(content, Mapping) or not isinstance(content, Sequence):
        raise InvalidConversationError(
            f"{where}: content must be a string or a list of parts, got {type(content).__name__}"
        )
    texts: list[str] = []
    plain: list[str] = []  # the message's text, part by part: shown as ONE text, where its first part was
    plain_at: list[int] = []
    images: list[Image.Image] = []
    calls: list[tuple[int, Mapping[str, Any]]] = []

    def add_plain(text: str) -> None:
        if not plain:
            plain_at.append(len(texts))
            texts.append("")
        plain.append(text)

    for n, part in enumerate(content):
        part_where = f"{where} part {n}"
        if isinstance(part, str):
            add_plain(part)
        elif not isinstance(part, Mapping):
            raise InvalidConversationError(f"{part_where}: a content part must be a dict or a string")
        elif not isinstance(part.get("type"), str | None):
            raise InvalidConversationError(f"{part_where}: the part's type must be a string, e.g. 'text'")
        elif part.get("type") == "tool_use":
            _only(part, _part_keys("tool_use"), part_where, "tool_use part")
            calls.append((n, part))
        elif part.get("type") in _IMAGE_PART_TYPES:
            _only(part, _part_keys("image"), part_where, "image part")
            images.extend(read_image_part(_image_ref(part, part_where), part_where))  # every frame
        else:
            text, others = _part_texts(part, part_where)
            if text is not None:
                add_plain(text)
            texts += others
    if plain:
        texts[plain_at[0]] = "".join(plain)
    if not texts and not images and not calls:
        if required:
            raise InvalidConversationError(f"{where} has an empty content list")
        return _Parts()
    if images and not texts:
        texts.append("")  # images are placed after "Role: " of a text line; keep them with an empty one
    return _Parts(tuple(texts), tuple(images), tuple(calls))


def _part_texts(part: Mapping[str, Any], where: str) -> tuple[str | None, list[str]]:
    """A text-like part's (text, other texts): the text of a text or refusal part, which a model reads joined with
    the message's other text parts, and texts shown on their own lines (annotations, reasoning, thinking).
    Anything else is an error."""
    kind = part.get("type")
    if kind in _TEXT_PART_TYPES or (kind is None and "text" in part):
        kind = "text"
    if kind in UNREADABLE_PART_TYPES:
        raise InvalidConversationError(f"{where}: {UNREADABLE_PART_TYPES[kind]}")
    if kind not in PART_CONTENT_KEYS or kind in ("image", "tool_use"):
        raise InvalidConversationError(
            f"{where}: unsupported content part type {shown_name(kind)}; supported: text, image_url, image, refusal, "
            "reasoning, thinking, tool_use (assistant)"
        )
    _only(part, _part_keys(kind), where, f"{kind} part")
    if kind == "text":
        if not isinstance(part.get("text"), str):
            raise InvalidConversationError(f"{where}: text part needs a string 'text'")
        annotations = part.get("annotations")
        return part["text"], (_annotations(annotations, where) if annotations is not None else [])
    if kind == "refusal":
        return _string(part.get("refusal"), f"{where} refusal"), []
    if kind == "thinking":
        return None, [REASONING_PREFIX + _string(part.get("thinking"), f"{where} thinking")]
    return None, [REASONING_PREFIX + text for text in _reasoning_texts(part, where)]


def _part_keys(kind: str) -> frozenset[str]:
    return PART_METADATA_KEYS | PART_TYPE_METADATA_KEYS.get(kind, frozenset()) | PART_CONTENT_KEYS[kind]


def _reasoning_texts(part: Mapping[str, Any], where: str) -> list[str]:
    """A reasoning part's readable text: ``reasoning`` / ``text`` strings, ``summary`` and ``content`` lists."""
    if part.get("encrypted_content") is not None:
        raise InvalidConversationError(
            f"{where}: a reasoning part with encrypted_content cannot be checked; remove it before the guard "
            "(only the provider's own model can read it)"
        )
    texts = [_string(part[key], f"{where} {key}") for key in ("reasoning", "text") if part.get(key) is not None]
    for key, item_type in (("summary", "summary_text"), ("content", "reasoning_text")):
        items = part.get(key)
        if items is None:
            continue
        if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Sequence):
            raise InvalidConversationError(f"{where}: {key} must be a list of {{'type': {item_type!r}, 'text': ...}}")
        for m, item in enumerate(items):
            item_where = f"{where} {key}[{m}]"
            if not isinstance(item, Mapping) or item.get("type") not in (None, item_type):
                raise InvalidConversationError(f"{item_where} must be a {{'type': {item_type!r}, 'text': ...}} dict")
            _only(item, frozenset({"type", "text"}), item_where, item_type)
            texts.append(_string(item.get("text"), f"{item_where} text"))
    return texts


def _image_ref(part: Mapping[str, Any], where: str) -> Any:
    """The one image a part names; two sources could show the guard one image and the model another."""
    sources = [key for key in IMAGE_SOURCE_KEYS if part.get(key) is not None]
    if not sources:
        raise InvalidImageError(f"{where}: image part has no image_url, image, url, path or base64 value")
    if len(sources) > 1:
        raise InvalidImageError(
            f"{where}: image part names {len(sources)} images ({', '.join(sources)}); a model reads one of them, "
            "so send exactly one"
        )
    key = sources[0]
    value = part[key]
    if key == "file_id":
        raise InvalidImageError(
            f"{where}: an image given only as a provider file id ({shown_name(value)}) cannot be read by the guard; "
            "pass it as base64 or a data URL"
        )
    if key == "base64":
        return f"data:{part.get('mime_type') or 'image/png'};base64,{_string(value, f'{where} base64')}"
    if isinstance(value, Mapping):  # {"url": ..., "detail": ...}; Llama Stack: {"url": {"uri": ...}} or {"data": ...}
        _only(value, frozenset({"url", "uri", "data", "detail"}), f"{where} {key}", "image reference")
        nested = [value[k] for k in ("url", "uri", "data") if value.get(k) is not None]
        if len(nested) != 1:
            raise InvalidImageError(f"{where}: {key} must hold exactly one of url, uri or data")
        value = nested[0]
        if isinstance(value, Mapping):
            _only(value, frozenset({"uri"}), f"{where} {key}.url", "image reference")
            value = value.get("uri")
    return value


def render_tool_call(name: str, arguments: Any) -> str:
    """The text a tool call is shown to the model as (code-interpreter calls as fenced code).

    JSON arguments are decoded faithfully (:mod:`.json_text`): escapes decoded, every pair of every object kept
    in order (repeated keys too), number literals as written. Arguments that are not JSON are shown raw.
    """
    parsed: Any = arguments
    text_json = isinstance(arguments, str)
    if text_json:
        try:
            parsed = json_text.parse(arguments) if arguments.strip() else json_text.Pairs()
        except json.JSONDecodeError:
            parsed = arguments
        except InvalidConversationError as exc:
            raise InvalidConversationError(f"the arguments of tool call {shown_name(name)}: {exc}") from None
    show = json_text.render if text_json else _json
    code = _code_of(name, parsed)
    if code is not None:
        code_texts, rest = code
        extra = f"\n{show(rest)}" if rest else ""
        fenced = "\n".join(f"```\n{code_text}\n```" for code_text in code_texts)
        return f"[code interpreter call: {name}]\n{fenced}{extra}"
    shown = parsed if isinstance(parsed, str) else show(parsed)
    return f"[tool call: {name}] {shown}"


def _json(value: Any) -> str:
    """JSON for the model to read; values JSON cannot hold (bytes, sets ...) are shown as text, not dropped."""
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (RecursionError, ValueError, TypeError) as exc:  # too deep, circular, an int of >4300 digits, a bad key
        raise InvalidConversationError(f"a value cannot be shown to the model as JSON: {exc}") from None


def _code_of(name: str, args: Any) -> tuple[list[str], Any] | None:
    """(code texts, the other arguments) of a code-interpreter call; ``None`` for any other call.

    Every value under the code key is code (a repeated key is shown as several blocks), so nothing a tool may
    read as its code is shown as anything else.
    """
    is_code_tool = name.lower() in CODE_TOOL_NAMES
    items = json_text.pairs(args)
    if items is not None:
        for key in CODE_ARGUMENT_KEYS:
            values = [value for k, value in items if k == key]
            if values and all(isinstance(value, str) for value in values):
                return values, _rest(args, [(k, v) for k, v in items if k != key])
        if is_code_tool and len(items) == 1 and isinstance(items[0][1], str):
            return [items[0][1]], {}
    if is_code_tool and isinstance(args, str):
        return [args], {}
    return None


def _rest(args: Any, items: list[tuple[Any, Any]]) -> Any:
    """The arguments other than the code, in the shape they came in."""
    return json_text.Pairs(items) if isinstance(args, json_text.Pairs) else dict(items)


def is_code_interpreter_call(name: str, arguments: Any) -> bool:
    """True when a tool call is rendered as code (and so checked under S14)."""
    return render_tool_call(name, arguments).startswith("[code interpreter call:")

"""A neutral conversation, and the documented mapping from OpenAI chat messages onto it.

Llama Guard 4 only knows alternating ``User`` / ``Agent`` turns. The mapping is lossless:

- ``user`` messages become User blocks; ``assistant`` text becomes Agent blocks.
- ``system`` / ``developer`` messages become User blocks whose text starts with ``[system] ``
  (instructions are input to the agent, so they are checked like user input).
- each assistant tool call becomes its own Agent block: ``[tool call: NAME] {json args}``, or for a
  code-interpreter call (a code tool name, or a ``code``/``script``/``command`` argument) a fenced code
  block under ``[code interpreter call: NAME]`` so that S14 applies. JSON arguments are decoded first,
  so ``"\\u0062omb"`` is shown to the model as ``bomb``.
- ``tool`` / ``function`` results become User blocks starting ``[tool result: NAME] `` (they are input
  the agent did not write).
- consecutive blocks of the same side are merged into one turn; each block keeps its own
  ``Role: text`` lines and its own images. A conversation whose first turn is Agent gets an empty
  User turn in front (it renders nothing), so turns alternate as the model expects.

Unknown roles and unknown content part types are errors, never dropped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from PIL import Image

from .errors import InvalidConversationError
from .images import image_reader, read_image_part

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


ConversationInput = str | Sequence[Mapping[str, Any]] | Conversation


def parse_conversation(messages: Any, *, allow_local_image_paths: bool = False) -> Conversation:
    """Map OpenAI-format messages (or a plain string = one user message) onto a :class:`Conversation`.

    Image strings are never opened as files unless ``allow_local_image_paths`` (see ``core.images``).
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
    with image_reader(allow_local_paths=allow_local_image_paths):  # one image count per conversation
        for index, message in enumerate(messages):
            for role, block in _message_blocks(_as_mapping(message, index), index, tool_names):
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


def _as_mapping(message: Any, index: int) -> Mapping[str, Any]:
    if isinstance(message, Mapping):
        return message
    dump = getattr(message, "model_dump", None)
    if callable(dump):
        return dump(exclude_none=True)
    raise InvalidConversationError(
        f"message {index} must be a dict like {{'role': 'user', 'content': '...'}}, got {type(message).__name__}"
    )


def _message_blocks(message: Mapping[str, Any], index: int, tool_names: dict[str, str]) -> list[tuple[Role, Block]]:
    role = message.get("role")
    where = f"message {index} ({role})"
    if role == "user":
        texts, images = _content(message.get("content"), where, required=True)
        return [("User", Block(texts, images, index, "user"))]
    if role in ("system", "developer"):
        texts, images = _content(message.get("content"), where, required=True)
        return [("User", Block(_prefixed("[system] ", texts), images, index, "system"))]
    if role == "assistant":
        return _assistant_blocks(message, index, where, tool_names)
    if role in ("tool", "function"):
        name = message.get("name") or tool_names.get(str(message.get("tool_call_id")), "") or "tool"
        texts, images = _content(message.get("content"), where, required=True)
        return [("User", Block(_prefixed(f"[tool result: {name}] ", texts), images, index, "tool_result"))]
    raise InvalidConversationError(
        f"message {index} has unknown role {role!r}; use user, assistant, system, developer or tool"
    )


def _assistant_blocks(
    message: Mapping[str, Any], index: int, where: str, tool_names: dict[str, str]
) -> list[tuple[Role, Block]]:
    raw_calls = message.get("tool_calls") or []
    if isinstance(raw_calls, (str, bytes, Mapping)) or not isinstance(raw_calls, Sequence):
        raise InvalidConversationError(f"{where}: tool_calls must be a list of tool calls")
    calls = list(raw_calls)
    if message.get("function_call"):
        calls.append({"function": message["function_call"]})
    texts, images = _content(message.get("content"), where, required=not calls)
    blocks: list[tuple[Role, Block]] = []
    if texts or images:
        blocks.append(("Agent", Block(texts, images, index, "assistant")))
    for n, call in enumerate(calls):
        if not isinstance(call, Mapping):
            raise InvalidConversationError(f"{where}: tool_calls[{n}] must be a dict")
        function = call.get("function", call)
        name = function.get("name") if isinstance(function, Mapping) else None
        if not isinstance(name, str) or not name:
            raise InvalidConversationError(f"{where}: tool_calls[{n}] has no function name")
        if call.get("id"):
            tool_names[str(call["id"])] = name
        arguments = function.get("arguments", function.get("args", ""))
        blocks.append(("Agent", Block((render_tool_call(name, arguments),), (), index, "tool_call")))
    return blocks


def _prefixed(prefix: str, texts: tuple[str, ...]) -> tuple[str, ...]:
    if not texts:
        return (prefix.rstrip(),)
    return (prefix + texts[0],) + texts[1:]


def _content(content: Any, where: str, *, required: bool) -> tuple[tuple[str, ...], tuple[Image.Image, ...]]:
    if content is None:
        if required:
            raise InvalidConversationError(f"{where} has no content")
        return (), ()
    if isinstance(content, str):
        return (content,), ()
    if isinstance(content, Mapping) or not isinstance(content, Sequence):
        raise InvalidConversationError(
            f"{where}: content must be a string or a list of parts, got {type(content).__name__}"
        )
    texts: list[str] = []
    images: list[Image.Image] = []
    for n, part in enumerate(content):
        part_where = f"{where} part {n}"
        if isinstance(part, str):
            texts.append(part)
            continue
        if not isinstance(part, Mapping):
            raise InvalidConversationError(f"{part_where}: a content part must be a dict or a string")
        kind = part.get("type")
        if kind in _TEXT_PART_TYPES or (kind is None and "text" in part):
            text = part.get("text")
            if not isinstance(text, str):
                raise InvalidConversationError(f"{part_where}: text part needs a string 'text'")
            texts.append(text)
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            texts.append(part["refusal"])
        elif kind in _IMAGE_PART_TYPES:
            images.extend(read_image_part(_image_ref(part, part_where), part_where))  # every frame
        else:
            raise InvalidConversationError(
                f"{part_where}: unsupported content part type {kind!r}; supported: text, image_url, image"
            )
    if not texts and not images:
        if required:
            raise InvalidConversationError(f"{where} has an empty content list")
        return (), ()
    if images and not texts:
        texts.append("")  # images are placed after "Role: " of a text line; keep them with an empty one
    return tuple(texts), tuple(images)


def _image_ref(part: Mapping[str, Any], where: str) -> Any:
    for key in ("image_url", "image", "url", "path", "data"):
        value = part.get(key)
        if isinstance(value, Mapping):
            value = value.get("url")
        if value is not None:
            return value
    b64 = part.get("base64")
    if isinstance(b64, str):
        return f"data:{part.get('mime_type') or 'image/png'};base64,{b64}"
    raise InvalidConversationError(f"{where}: image part has no image_url, image, url, path or base64 value")


def render_tool_call(name: str, arguments: Any) -> str:
    """The text a tool call is shown to the model as (code-interpreter calls as fenced code)."""
    parsed: Any = arguments
    if isinstance(arguments, str):
        try:
            parsed = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            parsed = arguments
    code = _code_of(name, parsed)
    if code is not None:
        code_text, rest = code
        extra = f"\n{_json(rest)}" if rest else ""
        return f"[code interpreter call: {name}]\n```\n{code_text}\n```{extra}"
    shown = parsed if isinstance(parsed, str) else _json(parsed)
    return f"[tool call: {name}] {shown}"


def _json(value: Any) -> str:
    """JSON for the model to read; values JSON cannot hold (bytes, sets ...) are shown as text, not dropped."""
    return json.dumps(value, ensure_ascii=False, default=str)


def _code_of(name: str, args: Any) -> tuple[str, dict[str, Any]] | None:
    is_code_tool = name.lower() in CODE_TOOL_NAMES
    if isinstance(args, Mapping):
        for key in CODE_ARGUMENT_KEYS:
            if isinstance(args.get(key), str):
                return args[key], {k: v for k, v in args.items() if k != key}
        if is_code_tool and len(args) == 1 and isinstance(next(iter(args.values())), str):
            return next(iter(args.values())), {}
    if is_code_tool and isinstance(args, str):
        return args, {}
    return None


def is_code_interpreter_call(name: str, arguments: Any) -> bool:
    """True when a tool call is rendered as code (and so checked under S14)."""
    return render_tool_call(name, arguments).startswith("[code interpreter call:")

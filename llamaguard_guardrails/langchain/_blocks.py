"""The allow-list of LangChain content blocks: which blocks and fields the guard shows, and a check that it
showed every text a message's raw content holds.

LangChain reads a message's content through ``message.content_blocks``, a view that provider translators
build and that may leave fields out (``output_version="v1"`` content is returned unchecked). What a chat
model sends its provider is the raw content, so:

- each standard block type has a known set of fields (:data:`BLOCK_FIELDS`); a field outside it is an
  error that names it, never skipped;
- ``extras`` (where translators keep a provider's other fields) is shown, but for metadata
  (:data:`EXTRAS_METADATA`) and encrypted data (refused);
- a ``non_standard`` block is shown only when its type is a provider shape known to hold readable text
  (:data:`PROVIDER_TYPES`), as JSON; any other type is refused;
- :func:`unshown_blocks` finds raw content blocks with a text the converted message does not hold, so the
  caller shows them whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from langchain_core.messages import HumanMessage
from langchain_core.messages.content import KNOWN_BLOCK_TYPES

from ..core.errors import InvalidConversationError
from ..core.values import json_text

#: Fields of every standard block that carry no content for a model.
BLOCK_METADATA = frozenset({"type", "id", "index", "extras", "cache_control"})
_DATA = frozenset({"url", "base64", "file_id", "mime_type"})
_CALL = frozenset({"name", "args"})
#: The fields of each standard block type (langchain_core.messages.content), beside BLOCK_METADATA.
BLOCK_FIELDS: dict[str, frozenset[str]] = {
    "text": frozenset({"text", "annotations", "citations"}),  # citations: Anthropic's raw text blocks
    "reasoning": frozenset({"reasoning", "summary", "content", "encrypted_content"}),  # an OpenAI reasoning item
    "refusal": frozenset({"refusal"}),
    "tool_call": _CALL,
    "tool_call_chunk": _CALL,
    "invalid_tool_call": _CALL | {"error"},  # the parse error LangChain wrote; a model never reads it
    "server_tool_call": _CALL,
    "server_tool_call_chunk": _CALL,
    "server_tool_result": frozenset({"output", "tool_call_id", "status"}),
    "image": _DATA | {"detail"},
    "audio": _DATA,
    "video": _DATA,
    "file": _DATA | {"filename", "title"},
    "text-plain": _DATA | {"text", "title", "context"},
    "non_standard": frozenset({"value"}),
}
#: ``extras`` keys that are metadata (signatures, cache markers, a translator's notes on the block).
EXTRAS_METADATA = frozenset(
    {"signature", "cache_control", "index", "id", "type", "status", "item_id", "block_type", "tool_name", "category"}
    | {"detail", "format", "mime_type", "media_type"}
    | {"caller", "toolset_name", "finish_reason", "block_reason", "is_error", "outcome", "output_index"}
)
#: ``extras`` keys holding data only the provider's model can read: refused.
EXTRAS_UNREADABLE = frozenset({"encrypted_content", "redacted_content", "data"})
#: Provider block types (left as ``non_standard`` by LangChain's translators) whose content is readable
#: text or JSON: shown to the guard as JSON. Images or documents inside them are refused.
PROVIDER_TYPES = frozenset(
    {
        # Anthropic
        "tool_use",
        "tool_result",
        "document",
        "search_result",
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "mcp_tool_use",
        "mcp_tool_result",
        # OpenAI Responses items
        "function_call",
        "function_call_output",
        "custom_tool_call",
        "custom_tool_call_output",
        "computer_call",
        "computer_call_output",
        "web_search_call",
        "file_search_call",
        "code_interpreter_call",
        "mcp_call",
        "mcp_list_tools",
        "mcp_approval_request",
        "mcp_approval_response",
        "local_shell_call",
        "local_shell_call_output",
        "shell_call",
        "shell_call_output",
        "apply_patch_call",
        "apply_patch_call_output",
        "input_text",
        "output_text",
        # Bedrock / tool results as JSON
        "json",
    }
)
#: Nested block types whose content is not text: a provider block holding one is refused (an image inside
#: JSON reaches the guard as base64 letters, not as an image).
_MEDIA_TYPES = frozenset(
    {"image", "image_url", "input_image", "document", "file", "input_file", "audio", "input_audio", "video"}
)
#: Source types of a provider's media (Anthropic ``{"type": "base64" | "url" | "file", ...}``): refused too.
_MEDIA_SOURCES = frozenset({"base64", "file", "url"})
#: Raw-content keys that carry no text for a model (ids, markers, signatures, formats).
RAW_METADATA = frozenset(
    {"type", "id", "index", "cache_control", "signature", "call_id", "tool_call_id", "tool_use_id", "status"}
    | {"mime_type", "media_type", "detail", "source_type", "container_id", "item_id", "error", "output_version"}
    | EXTRAS_METADATA
)


#: Characters :func:`unshown_blocks` may scan looking for texts shown inside longer ones (a text inside a JSON
#: rendering); past it a block is shown whole instead, so the check stays linear in the message's size.
SEARCH_BUDGET = 20_000_000


def standard_blocks(blocks: Sequence[Any], where: str) -> list[dict[str, Any]]:
    """``content_blocks`` made safe to read: strings as text blocks, blocks of an unknown type as ``non_standard``
    (``output_version="v1"`` content is returned by LangChain unchecked), anything else an error."""
    out: list[dict[str, Any]] = []
    for n, block in enumerate(blocks):
        if isinstance(block, str):
            out.append({"type": "text", "text": block})
        elif not isinstance(block, Mapping):
            raise InvalidConversationError(
                f"{where} content block {n} is a {type(block).__name__}; a content block must be a dict or a string"
            )
        elif block.get("type") == "non_standard" and _wrapped(block):  # wrapped twice by a translator
            out.extend(standard_blocks([block["value"]], where))
        elif block.get("type") not in KNOWN_BLOCK_TYPES:
            out.extend(_parsed({"type": "non_standard", "value": dict(block)}))
        elif _wrapped_standard(block):  # a provider's translator wraps standard blocks it does not know
            inner = dict(block["value"])
            out.extend([inner] if _known_fields(inner) else _parsed(inner))
        elif block.get("type") == "non_standard" or not _known_fields(block):
            out.extend(_parsed(dict(block)))
        else:
            out.append(dict(block))
    return out


def _known_fields(block: Mapping[str, Any]) -> bool:
    return set(block) <= BLOCK_FIELDS.get(str(block.get("type")), frozenset()) | BLOCK_METADATA


def _parsed(block: dict[str, Any]) -> list[dict[str, Any]]:
    """A block LangChain left in a provider's shape, read as LangChain reads a human message's content (a
    provider's translator for AI messages, and ``output_version="v1"`` content, skip that step): OpenAI
    ``image_url`` / ``input_audio`` / ``file``, Anthropic ``source`` images and documents, legacy v0 blocks,
    Bedrock and Gemini parts become standard blocks. Anything else is returned as it was."""
    raw = block["value"] if block.get("type") == "non_standard" and isinstance(block.get("value"), Mapping) else block
    try:
        parsed = [dict(b) for b in HumanMessage(content=[dict(raw)]).content_blocks]
    except (ValueError, TypeError, KeyError, AttributeError, NotImplementedError):  # pydantic errors too: the
        # block stays as it was, and is checked (or refused) so
        return [block]
    return [dict(b["value"]) if _wrapped_standard(b) else b for b in parsed]


def _wrapped(block: Mapping[str, Any]) -> bool:
    value = block.get("value")
    return isinstance(value, Mapping) and value.get("type") == "non_standard"


def _wrapped_standard(block: Mapping[str, Any]) -> bool:
    value = block.get("value")
    return (
        block.get("type") == "non_standard"
        and isinstance(value, Mapping)
        and value.get("type") in KNOWN_BLOCK_TYPES - {"non_standard"}
        and "source_type" not in value  # a legacy v0 block: the core reads (or refuses) it by its own type
    )


def check_fields(block: Mapping[str, Any], where: str) -> None:
    """Refuse a standard block holding a field the guard does not know (a model may read it)."""
    kind = block.get("type")
    known = BLOCK_FIELDS.get(str(kind), frozenset()) | BLOCK_METADATA
    unknown = sorted(str(key) for key, value in block.items() if key not in known and value is not None)
    if unknown:
        raise InvalidConversationError(
            f"{where}: a {kind!r} block holds {', '.join(map(repr, unknown))}, which the guard does not know; a model "
            f"may read it, so remove it or move its text into a text block (fields of {kind!r} blocks: "
            f"{', '.join(sorted(known))})"
        )


def extras_text(block: Mapping[str, Any], where: str) -> str | None:
    """A block's ``extras`` as ``[extras] {json}`` text (metadata left out), ``None`` without any."""
    extras = block.get("extras")
    if extras is None:
        return None
    if not isinstance(extras, Mapping):
        raise InvalidConversationError(f"{where}: extras must be a dict, got {type(extras).__name__}")
    unreadable = sorted(str(k) for k in extras if k in EXTRAS_UNREADABLE and extras[k])
    if unreadable:
        raise InvalidConversationError(
            f"{where}: extras {', '.join(map(repr, unreadable))} hold encrypted or binary data the guard cannot "
            "read (only the provider's own model can); remove it before the guard"
        )
    shown = {k: v for k, v in extras.items() if k not in EXTRAS_METADATA and v not in (None, "", [], {})}
    return f"[extras] {json_text(shown)}" if shown else None


def provider_block_text(value: Any, where: str) -> str:
    """A provider block LangChain left ``non_standard``: its JSON when its type is known, else an error."""
    if not isinstance(value, Mapping):
        raise InvalidConversationError(f"{where}: a non_standard block's value must be a dict")
    kind = value.get("type")
    if kind is None and set(value) <= {"text", "cache_control"} and isinstance(value.get("text"), str):
        return value["text"]
    if kind not in PROVIDER_TYPES:
        shown = f"a {kind!r}" if isinstance(kind, str) else "an untyped"
        raise InvalidConversationError(
            f"{where}: Llama Guard cannot tell what a model reads from {shown} content block (known provider "
            "blocks: " + ", ".join(sorted(PROVIDER_TYPES)) + "); convert it to text or a standard content block"
        )
    media = next((m for item in value.values() if (m := _media_inside(item)) is not None), None)
    if media is not None:
        raise InvalidConversationError(
            f"{where}: a {kind!r} block holds a {media!r} block; the guard reads images only as their own image "
            "content blocks, and cannot read other media: pass images as image blocks, or text"
        )
    return json_text(value)


def _media_inside(value: Any) -> str | None:
    for item in _dicts(value):
        kind = item.get("type")
        if kind in _MEDIA_TYPES or kind in _MEDIA_SOURCES:
            return str(kind)
    return None


def _dicts(value: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(value, Mapping):
        yield value
        for item in value.values():
            yield from _dicts(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _dicts(item)


def unshown_blocks(content: Any, converted: Mapping[str, Any], parts: Sequence[Any] = ()) -> list[tuple[int, Any]]:
    """The raw content blocks holding a text that ``converted`` (the message the guard reads) does not hold.

    Every string under a non-metadata key of a raw block must appear in the converted message (a data URL's
    base64 payload counts as its image); a block that fails this was left out somewhere on the way (a
    translator, a field no one knew) and must be shown whole. ``parts``: the content parts before they were
    joined into one text, so that a text part is found by equality (a search in the joined text for each
    of many parts would take time quadratic in their number).
    """
    if not isinstance(content, list):
        return []
    seen = list(_strings(converted, parse_json=True))
    exact = set(seen) | set(_strings(list(parts), parse_json=False))
    corpus = "\x00".join(seen)
    budget = [SEARCH_BUDGET]

    def shown(leaf: str) -> bool:
        if not leaf or leaf in exact or _payload(leaf) in exact:
            return True
        budget[0] -= len(corpus)
        return budget[0] >= 0 and _payload(leaf) in corpus  # past the budget: not found, so shown whole

    missing = []
    for n, block in enumerate(content):
        if isinstance(block, str):
            leaves: list[str] = [block]
        elif _rendered_whole(block, exact):
            continue
        else:
            leaves = list(_raw_strings(block))
        if not all(shown(leaf) for leaf in leaves):
            missing.append((n, _elided(block, exact)))
    return missing


def _elided(value: Any, exact: set[str]) -> Any:
    """``value`` with its long texts that are already shown (an image's base64 ...) cut to a marker."""
    if isinstance(value, str):
        return f"[{len(value)} characters shown above]" if len(value) > 256 and value in exact else value
    if isinstance(value, Mapping):
        return {key: _elided(item, exact) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_elided(item, exact) for item in value]
    return value


def _rendered_whole(block: Any, exact: set[str]) -> bool:
    """True when the block was shown as its JSON (a provider block): every text of it is there."""
    try:
        return isinstance(block, Mapping) and json_text(block) in exact
    except InvalidConversationError:
        return False


def _payload(text: str) -> str:
    if text.startswith("data:") and ";base64," in text:
        return text.split(";base64,", 1)[1]
    return text


def _raw_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if key not in RAW_METADATA:
                yield from _raw_strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _raw_strings(item)


def _strings(value: Any, *, parse_json: bool) -> Iterator[str]:
    if isinstance(value, str):
        yield value
        if parse_json and value[:1] in ("{", "["):
            try:
                yield from _strings(json.loads(value), parse_json=False)
            except (ValueError, RecursionError):
                pass
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str):
                yield key
            yield from _strings(item, parse_json=parse_json)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item, parse_json=parse_json)

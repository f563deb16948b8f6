"""Reading what a client sends and a server answers (untrusted dicts or pydantic models): field by field,
refusing what cannot be shown to the guard; and the check a conversation stands for."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..core.errors import InvalidConversationError, shown_name
from ..core.values import plain_dict, reject_unknown_fields

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


def answer_choices(
    obj: Any, where: str, fields: frozenset[str], choice_fields: frozenset[str], request: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The choices of a chat or completions answer (or chunk), each one the request asked for (``choice_index``);
    an answer that is not an object (a body that was not JSON), or a field outside ``fields`` (the answer's) or
    ``choice_fields`` (a choice's), raises."""
    answer = plain_dict(obj, where)
    only_known(answer, fields | {"choices"}, where)
    raw = answer.get("choices") or []
    if not isinstance(raw, list):
        raise InvalidConversationError(f"{where}: choices must be a list, got {type(raw).__name__}")
    choices = [plain_dict(c, f"{where} choice {n}") for n, c in enumerate(raw)]
    for n, choice in enumerate(choices):
        only_known(choice, choice_fields, f"{where} choice {n}")
        choice_index(choice, request, f"{where} choice {n}")
    return choices


def choice_index(choice: Mapping[str, Any], request: Mapping[str, Any], where: str) -> int:
    """A choice's ``index``, one of the ``n`` answers the request asked for (an app reading ``choices[0]`` of each
    chunk would join the text of an index it did not ask for with the first answer's)."""
    asked = request.get("n") or 1
    index = choice.get("index") or 0
    if type(index) is not int or not 0 <= index < asked:
        raise InvalidConversationError(
            f"{where}: choice index {shown_name(str(index))} is not one of the {asked} answer(s) the request asked for"
        )
    return index


#: The fields of one token in ``logprobs``; ``top_logprobs`` (tokens the model did not choose) must be empty.
LOGPROB_FIELDS = frozenset({"token", "logprob", "bytes", "top_logprobs"})
#: How a token whose bytes are not UTF-8 on their own is written: its bytes escaped, as ``\\xe2\\x80`` or ``bytes:\\xe2\\x80``.
_BYTES_TOKEN = re.compile(r"(bytes:)?(\\x[0-9a-fA-F]{2})+")


def check_logprobs(pieces: list[Any], answer: Mapping[str, Any], where: str) -> None:
    """Raise unless the tokens of an answer's ``logprobs`` (its pieces, one per streamed chunk) are its text: the
    tokens of ``content`` and ``refusal``, joined, must be those texts, and no token may list alternatives."""
    lists: dict[str, list[Any]] = {}
    for piece in pieces:
        if not filled(piece):
            continue
        data = plain_dict(piece, f"{where} logprobs")
        only_known(data, frozenset({"content", "refusal"}), f"{where} logprobs")
        for key in ("content", "refusal"):
            entries = data.get(key)
            if entries is not None and not isinstance(entries, list):
                raise InvalidConversationError(f"{where}: logprobs.{key} must be a list, got {type(entries).__name__}")
            lists.setdefault(key, []).extend(entries or [])
    for key, entries in lists.items():
        if entries:
            check_tokens(entries, answer.get(key) or "", f"{where} logprobs.{key}")


def check_tokens(entries: Any, text: Any, where: str) -> None:
    """Raise unless the logprob ``entries`` are the tokens of ``text`` (their bytes joined are its UTF-8), none
    listing alternatives: the guard checked the text, so tokens that differ from it cannot be released."""
    if not isinstance(entries, list | tuple):
        raise InvalidConversationError(f"{where}: logprobs must be a list, got {type(entries).__name__}")
    written = b"".join(_token_bytes(plain_dict(e, f"{where} entry"), where) for e in entries)
    if not isinstance(text, str) or written != text.encode("utf-8"):
        raise InvalidConversationError(
            f"{where}: the tokens of the logprobs are not the text the guard checked; nothing was released"
        )


def _token_bytes(entry: Mapping[str, Any], where: str) -> bytes:
    only_known(entry, LOGPROB_FIELDS, f"{where} logprob")
    if filled(entry.get("top_logprobs")):
        raise InvalidConversationError(
            f"{where}: logprobs list alternatives (top_logprobs), tokens the model did not choose, which the guard "
            "never sees: do not ask for them"
        )
    token, raw = entry.get("token"), entry.get("bytes")
    if not isinstance(token, str):
        raise InvalidConversationError(f"{where}: a token of the logprobs must be a string, got {type(token).__name__}")
    if raw is None:
        return token.encode("utf-8")
    if not isinstance(raw, list) or not all(type(b) is int and 0 <= b < 256 for b in raw):
        raise InvalidConversationError(f"{where}: the bytes of a token of the logprobs must be a list of byte values")
    data = bytes(raw)
    try:
        shown = data.decode("utf-8") == token
    except UnicodeDecodeError:  # part of a character: the token may only spell its bytes
        shown = _BYTES_TOKEN.fullmatch(token) is not None
    if not shown:
        raise InvalidConversationError(f"{where}: a token of the logprobs is not the text of its bytes")
    return data


__all__ = [
    "ASSISTANT_TEXT",
    "Check",
    "answer_choices",
    "check_logprobs",
    "check_tokens",
    "choice_index",
    "filled",
    "get",
    "input_stage",
    "only_known",
    "output_stage",
    "text_piece",
]

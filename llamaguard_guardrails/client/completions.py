"""Legacy completions (``completions.create``) -> core messages: the ``prompt`` is a user turn, each choice's
``text`` an answer to it. A list of prompts or token ids, and ``suffix``, cannot be shown as one turn: refused."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.errors import InvalidConversationError
from .fields import Check, answer_choices, filled, text_piece

CHOICE_FIELDS = frozenset({"index", "text", "finish_reason", "logprobs", "stop_reason"})
#: The fields of a completion (and of a streamed one's chunks) besides its choices: none holds content.
COMPLETION_FIELDS = frozenset({"id", "object", "created", "model", "system_fingerprint", "usage", "obfuscation"})


def completions_request(request: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``prompt`` of ``completions.create`` as one user message."""
    prompt = request.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str) or not prompt:
        raise InvalidConversationError(
            "completions.create needs prompt= one non-empty string (a list of prompts or token ids cannot be shown "
            f"to the guard as one turn), got {type(prompt).__name__}"
        )
    return [{"role": "user", "content": prompt}]


def completions_output_checks(
    messages: list[dict[str, Any]], completion: Any, request: Mapping[str, Any]
) -> list[Check]:
    """One check per choice: its text as the answer to the prompt."""
    texts: dict[int, str] = {}
    _add_choices(texts, completion, "the completion", request)
    return _checks(messages, texts)


def completions_stream_checks(
    messages: list[dict[str, Any]], chunks: list[Any], request: Mapping[str, Any]
) -> list[Check]:
    """The streamed choices' texts, joined per choice index."""
    texts: dict[int, str] = {}
    for n, chunk in enumerate(chunks):
        _add_choices(texts, chunk, f"chunk {n}", request)
    return _checks(messages, texts)


def completion_chunk_text(chunk: Any, request: Mapping[str, Any]) -> str | None:
    """The text a streamed chunk adds (every choice's)."""
    return "".join(text for _, text in _texts(chunk, "chunk", request))


def _add_choices(texts: dict[int, str], obj: Any, where: str, request: Mapping[str, Any]) -> None:
    for index, text in _texts(obj, where, request):
        texts[index] = texts.get(index, "") + text


def _texts(obj: Any, where: str, request: Mapping[str, Any]) -> list[tuple[int, str]]:
    """(index, text) of each choice; an answer that is not an object, an unknown field, a choice the request did not
    ask for, or ``logprobs`` (the request cannot ask for them here: their tokens could differ from the text) raise."""
    out = []
    for n, choice in enumerate(answer_choices(obj, where, COMPLETION_FIELDS, CHOICE_FIELDS, request)):
        if filled(choice.get("logprobs")):
            raise InvalidConversationError(f"{where} choice {n}: logprobs the request did not ask for")
        out.append((choice.get("index") or 0, text_piece(choice.get("text"), f"{where} choice {n} text")))
    return out


def _checks(messages: list[dict[str, Any]], texts: dict[int, str]) -> list[Check]:
    return [(messages + [{"role": "assistant", "content": text}], "output") for text in texts.values() if text]

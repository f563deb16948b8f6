"""Legacy completions (``completions.create``) -> core messages: the ``prompt`` is a user turn, each choice's
``text`` an answer to it. A list of prompts or token ids, and ``suffix``, cannot be shown as one turn: refused."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.errors import InvalidConversationError
from ..core.values import plain_dict
from .fields import Check, get, only_known, text_piece

CHOICE_FIELDS = frozenset({"index", "text", "finish_reason", "logprobs", "stop_reason"})


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


def completions_output_checks(messages: list[dict[str, Any]], completion: Any) -> list[Check]:
    """One check per choice: its text as the answer to the prompt."""
    texts: dict[int, str] = {}
    _add_choices(texts, completion, "completion")
    return _checks(messages, texts)


def completions_stream_checks(messages: list[dict[str, Any]], chunks: list[Any]) -> list[Check]:
    """The streamed choices' texts, joined per choice index."""
    texts: dict[int, str] = {}
    for n, chunk in enumerate(chunks):
        _add_choices(texts, chunk, f"chunk {n}")
    return _checks(messages, texts)


def completion_chunk_text(chunk: Any) -> str | None:
    """The text a streamed chunk adds (every choice's), or ``None`` when a choice holds anything else."""
    texts = []
    for raw in get(chunk, "choices") or []:
        choice = plain_dict(raw, "chunk choice")
        text = choice.get("text")
        if set(choice) - CHOICE_FIELDS or not isinstance(text, str | None):
            return None
        texts.append(text or "")
    return "".join(texts)


def _add_choices(texts: dict[int, str], obj: Any, where: str) -> None:
    for n, raw in enumerate(get(obj, "choices") or []):
        choice = plain_dict(raw, f"{where} choice {n}")
        only_known(choice, CHOICE_FIELDS, f"{where} choice {n}")
        index = choice.get("index") or 0
        texts[index] = texts.get(index, "") + text_piece(choice.get("text"), f"{where} choice {n} text")


def _checks(messages: list[dict[str, Any]], texts: dict[int, str]) -> list[Check]:
    return [(messages + [{"role": "assistant", "content": text}], "output") for text in texts.values() if text]

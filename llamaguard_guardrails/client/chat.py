"""Chat completions -> core messages: the request, the answer, and a streamed answer (its deltas folded per field).

Every field of an answer is shown to the guard (text, ``refusal``, reasoning, annotations, tool calls) or refused:
``audio`` and unknown fields raise ``InvalidConversationError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.conversation import MESSAGE_CONTENT_KEYS, MESSAGE_METADATA_KEYS
from ..core.errors import InvalidConversationError, shown_name
from ..core.values import plain_dict
from .fields import ASSISTANT_TEXT, Check, filled, get, only_known, output_stage, text_piece

#: Choice fields with no content of their own (``logprobs`` hold the tokens of the text that is checked).
CHOICE_METADATA = frozenset({"index", "finish_reason", "logprobs", "stop_reason"})
#: The fields of a streamed tool-call fragment and of its function.
CALL_FRAGMENT_FIELDS = frozenset({"index", "id", "type", "function"})
FUNCTION_FIELDS = frozenset({"name", "arguments"})


def chat_request(request: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``messages`` of a ``chat.completions.create`` request as plain OpenAI-format dicts."""
    messages = request.get("messages")
    if isinstance(messages, str | bytes) or messages is None:
        raise InvalidConversationError("chat.completions.create needs messages=[{'role': 'user', 'content': ...}]")
    out = [plain_dict(m, f"message {n}") for n, m in enumerate(messages)]
    if not out:
        raise InvalidConversationError("chat.completions.create got an empty messages list")
    return out


def chat_output_checks(messages: list[dict[str, Any]], completion: Any) -> list[Check]:
    """One check per choice: its whole message (text, refusal, reasoning, annotations, tool calls) as one turn."""
    answers = [
        plain_dict(c.get("message") or {}, f"choice {n} message")
        for n, c in enumerate(_choices(completion, "completion"))
    ]
    return _answer_checks(messages, answers)


def chat_stream_checks(messages: list[dict[str, Any]], chunks: list[Any]) -> list[Check]:
    """The streamed choices reassembled from every delta field (text, refusal, reasoning, tool calls)."""
    answers: dict[int, dict[str, Any]] = {}
    for n, chunk in enumerate(chunks):
        for choice in _choices(chunk, f"chunk {n}"):
            answer = answers.setdefault(choice.get("index") or 0, {"role": "assistant"})
            _add_delta(answer, plain_dict(choice.get("delta") or {}, f"chunk {n} delta"))
    for answer in answers.values():
        for n, call in enumerate(answer.get("tool_calls", [])):
            call["id"] = call["id"] or f"call_{n}"  # a nameless call stays nameless: the core refuses it
    return _answer_checks(messages, list(answers.values()))


def chat_chunk_text(chunk: Any) -> str | None:
    """The plain text a chunk adds (every choice's ``content``), or ``None`` when it carries anything else."""
    texts = []
    for n, choice in enumerate(_choices(chunk, "chunk")):
        delta = plain_dict(choice.get("delta") or {}, f"chunk choice {n} delta")
        content = delta.get("content")
        if any(filled(v) for k, v in delta.items() if k not in ("role", "content")) or not isinstance(
            content, str | None
        ):
            return None
        texts.append(content or "")
    return "".join(texts)


def _answer_checks(messages: list[dict[str, Any]], answers: list[dict[str, Any]]) -> list[Check]:
    """Each answer after the request, skipping answers that hold nothing (nothing to release)."""
    checks = []
    for answer in answers:
        only_known(answer, MESSAGE_CONTENT_KEYS["assistant"] | MESSAGE_METADATA_KEYS, "the answer")
        message = {**answer, "role": "assistant"}
        if any(filled(v) for k, v in message.items() if k != "role"):
            checks.append((messages + [message], output_stage(message)))
    return checks


def _choices(obj: Any, where: str) -> list[dict[str, Any]]:
    choices = [plain_dict(c, f"{where} choice {n}") for n, c in enumerate(get(obj, "choices") or [])]
    for n, choice in enumerate(choices):
        only_known(choice, CHOICE_METADATA | {"message", "delta"}, f"{where} choice {n}")
    return choices


def _add_delta(answer: dict[str, Any], delta: dict[str, Any]) -> None:
    """Fold one streamed delta into ``answer``; a field that cannot be folded raises."""
    for key, value in delta.items():
        if key == "role" or value is None:
            continue
        if key in ASSISTANT_TEXT:
            answer[key] = answer.get(key, "") + text_piece(value, f"streamed {key}")
        elif key == "tool_calls" and isinstance(value, list):
            for fragment in value:
                _add_call_fragment(answer.setdefault("tool_calls", []), plain_dict(fragment, "streamed tool call"))
        elif key == "function_call" and isinstance(value, Mapping):
            _merge_function(answer.setdefault("function_call", {}), value, "streamed function_call")
        else:
            raise InvalidConversationError(
                f"a streamed chat delta has {shown_name(key)} ({type(value).__name__}), which the client-side guard cannot "
                "check; nothing was released"
            )


def _add_call_fragment(calls: list[dict[str, Any]], fragment: dict[str, Any]) -> None:
    """Merge one streamed tool-call delta into ``calls`` (by ``index``, else by a new ``id``)."""
    only_known(fragment, CALL_FRAGMENT_FIELDS, "a streamed tool call")
    index = fragment.get("index")
    call_id = fragment.get("id")
    if index is None:
        index = len(calls) if (not calls or (call_id and call_id != calls[-1]["id"])) else len(calls) - 1
    while len(calls) <= index:
        calls.append({"id": None, "type": "function", "function": {}})
    if call_id:
        calls[index]["id"] = call_id
    _merge_function(calls[index]["function"], plain_dict(fragment.get("function") or {}, "function"), "tool call")


def _merge_function(function: dict[str, Any], fragment: Mapping[str, Any], where: str) -> None:
    only_known(fragment, FUNCTION_FIELDS, f"a streamed {where}")
    function["name"] = function.get("name") or text_piece(fragment.get("name"), f"streamed {where} name")
    function["arguments"] = function.get("arguments", "") + text_piece(fragment.get("arguments"), f"{where} arguments")

"""Chat completions -> core messages: the request, the answer, and a streamed answer (its deltas folded per field).

Every field of an answer is shown to the guard (text, ``refusal``, reasoning, annotations, tool calls), known to
hold no content (ids, timestamps, usage), checked against the text (``logprobs``: their tokens must be the text
shown) or refused: ``audio``, unknown fields, an answer that is not a JSON object, a choice the request did not
ask for, raise ``InvalidConversationError``. Streamed pieces are folded as the SDK's own accumulator folds them
(strings concatenated, tool-call names too).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.conversation import MESSAGE_CONTENT_KEYS
from ..core.errors import InvalidConversationError, shown_name
from ..core.values import plain_dict
from .fields import ASSISTANT_TEXT, Check, answer_choices, check_logprobs, filled, only_known, output_stage, text_piece

#: The fields of a chat completion besides its choices: none holds content.
COMPLETION_FIELDS = frozenset({"id", "object", "created", "model", "system_fingerprint", "service_tier", "usage"})
#: A streamed chunk's, with ``obfuscation`` (random characters OpenAI pads chunks with, not text of the answer)
#: and ``sequence_number`` (Llama Stack's chunk counter).
CHUNK_FIELDS = COMPLETION_FIELDS | {"obfuscation", "sequence_number"}
#: Choice fields with no content of their own (``logprobs`` are checked to be the tokens of the text).
CHOICE_METADATA = frozenset({"index", "finish_reason", "logprobs", "stop_reason"})
#: The fields of an answer message: its role and what is shown to the guard.
ANSWER_FIELDS = MESSAGE_CONTENT_KEYS["assistant"] | {"role"}
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


def chat_output_checks(messages: list[dict[str, Any]], completion: Any, request: Mapping[str, Any]) -> list[Check]:
    """One check per choice: its whole message (text, refusal, reasoning, annotations, tool calls) as one turn."""
    answers = []
    for n, choice in enumerate(_choices(completion, "the completion", "message", request)):
        answer = plain_dict(choice.get("message") or {}, f"choice {n} message")
        check_logprobs([choice.get("logprobs")], answer, f"choice {n}")
        answers.append(answer)
    return _answer_checks(messages, answers)


def chat_stream_checks(messages: list[dict[str, Any]], chunks: list[Any], request: Mapping[str, Any]) -> list[Check]:
    """The streamed choices reassembled from every delta field (text, refusal, reasoning, tool calls)."""
    answers: dict[int, dict[str, Any]] = {}
    logprobs: dict[int, list[Any]] = {}
    for n, chunk in enumerate(chunks):
        for choice in _choices(chunk, f"chunk {n}", "delta", request):
            index = choice.get("index") or 0
            answer = answers.setdefault(index, {"role": "assistant"})
            _add_delta(answer, plain_dict(choice.get("delta") or {}, f"chunk {n} delta"))
            logprobs.setdefault(index, []).append(choice.get("logprobs"))
    for index, answer in answers.items():
        check_logprobs(logprobs[index], answer, f"streamed choice {index}")
        for n, call in enumerate(answer.get("tool_calls", [])):
            call["id"] = call["id"] or f"call_{n}"  # a nameless call stays nameless: the core refuses it
    return _answer_checks(messages, list(answers.values()))


def chat_chunk_text(chunk: Any, request: Mapping[str, Any]) -> str | None:
    """The plain text a chunk adds (every choice's ``content``), or ``None`` when it carries anything else."""
    texts = []
    for n, choice in enumerate(_choices(chunk, "chunk", "delta", request)):
        delta = plain_dict(choice.get("delta") or {}, f"chunk choice {n} delta")
        content = delta.get("content")
        if (
            any(filled(v) for k, v in delta.items() if k not in ("role", "content"))
            or not isinstance(content, str | None)
            or filled(choice.get("logprobs"))  # checked against the whole text, at the end
        ):
            return None
        texts.append(content or "")
    return "".join(texts)


def _answer_checks(messages: list[dict[str, Any]], answers: list[dict[str, Any]]) -> list[Check]:
    """Each answer after the request, skipping answers that hold nothing (nothing to release)."""
    checks = []
    for answer in answers:
        # an answer has no ids or statuses of its own (those are the choice's): a field beyond its content raises
        only_known(answer, ANSWER_FIELDS, "the answer")
        message = {**answer, "role": "assistant"}
        if any(filled(v) for k, v in message.items() if k != "role"):
            checks.append((messages + [message], output_stage(message)))
    return checks


def _choices(obj: Any, where: str, key: str, request: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The choices of a completion (``key="message"``) or chunk (``"delta"``): see ``fields.answer_choices``."""
    fields = CHUNK_FIELDS if key == "delta" else COMPLETION_FIELDS
    return answer_choices(obj, where, fields, CHOICE_METADATA | {key}, request)


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
    """Fold a streamed function fragment: its name and arguments are concatenated, as every reader of the stream
    (the SDK's accumulator, LangChain) concatenates them."""
    only_known(fragment, FUNCTION_FIELDS, f"a streamed {where}")
    function["name"] = function.get("name", "") + text_piece(fragment.get("name"), f"streamed {where} name")
    function["arguments"] = function.get("arguments", "") + text_piece(fragment.get("arguments"), f"{where} arguments")

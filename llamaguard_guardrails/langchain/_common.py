"""LangChain shapes of the guard's outcomes, and what a tool hands on (shared by the adapters).

A :class:`~llamaguard_guardrails.enforce.Refusal` becomes a refusal ``AIMessage`` / ``AIMessageChunk``
(or text) or an error ``ToolMessage``, with the verdict in ``response_metadata["llamaguard"]``
(:func:`blocked_verdict` reads it back). :func:`tool_results` reads a tool's result, LangGraph
``Command`` s included, as the messages to check; :func:`tool_steps` is one guarded tool run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    BaseMessageChunk,
    RemoveMessage,
    ToolMessage,
    convert_to_messages,
)
from langchain_core.tools.base import ToolOutputMixin
from langgraph.types import Command, Send

from ..core import messages as build
from ..core.errors import InvalidConversationError
from ..core.values import json_text
from ..core.verdict import Verdict
from ..enforce import Refusal
from ._steps import Request, Steps
from .convert import OpenAIMessage, message_to_openai, tool_result_message

log = logging.getLogger("llamaguard_guardrails.langchain")

METADATA_KEY = "llamaguard"


def before_proposing_turn(messages: Sequence[Any], call_id: str | None) -> Sequence[Any]:
    """The messages before the latest AI turn that proposed the tool call ``call_id`` (all of them if none did):
    the context a tool call is checked in."""
    for i in range(len(messages) - 1, -1, -1):
        message = messages[i]
        if isinstance(message, AIMessage) and any(c.get("id") == call_id for c in message.tool_calls):
            return messages[:i]
    return messages


def verdict_metadata(verdict: Verdict, stage: str) -> dict[str, Any]:
    """``{"llamaguard": {...}}``: what refusal messages carry in ``response_metadata``."""
    return {METADATA_KEY: {"blocked": True, "stage": stage, "verdict": verdict.model_dump(mode="json")}}


def refusal_like(refusal: Refusal, like: Any = None) -> Any:
    """The refusal in place of ``like``: text for a string (strings cannot carry metadata: use ``on_verdict`` or
    ``on_block="raise"`` to log the verdict), an ``AIMessageChunk`` for a message chunk, else an ``AIMessage``;
    messages carry the verdict in ``response_metadata["llamaguard"]``."""
    if isinstance(like, str):
        return refusal.text
    kind = AIMessageChunk if isinstance(like, BaseMessageChunk) else AIMessage
    return kind(content=refusal.text, response_metadata=verdict_metadata(refusal.verdict, refusal.stage))


def refusal_tool_message(refusal: Refusal, call_id: str, name: str) -> ToolMessage:
    """The error ``ToolMessage`` an agent's model reads in place of a blocked tool call or result."""
    return ToolMessage(
        content=refusal.text,
        tool_call_id=call_id,
        name=name,
        status="error",
        response_metadata=verdict_metadata(refusal.verdict, refusal.stage),
    )


def blocked_verdict(result: Any) -> Verdict | None:
    """The verdict a refusal message carries, or ``None`` for ordinary content."""
    meta = getattr(result, "response_metadata", None) or {}
    info = meta.get(METADATA_KEY) if isinstance(meta, dict) else None
    if isinstance(info, dict) and info.get("blocked"):
        return Verdict.model_validate(info["verdict"])
    return None


StageCheck = Callable[[list[OpenAIMessage], str], Steps[Refusal | None]]
"""``check(conversation, stage)``: steps that classify and enforce (see :func:`._steps.check`)."""


def tool_steps(
    check: StageCheck,
    context: list[OpenAIMessage],
    call: OpenAIMessage,
    tool_run: Request,
    name: str,
    call_id: str | None,
    blocked: Callable[[Refusal], Any],
    *,
    check_call: bool = True,
    check_result: bool = True,
) -> Steps[Any]:
    """One guarded tool run: the call checked in ``context`` before ``tool_run``, then each thing its result hands
    on. Returns the result, or ``blocked(refusal)`` for the first block."""
    if check_call:
        refusal = yield from check([*context, call], "tool_call")
        if refusal is not None:
            return blocked(refusal)
    result = yield tool_run
    if check_result:
        for checked in tool_results(result, name, call_id):
            refusal = yield from check([*context, call, *checked], "tool_result")
            if refusal is not None:
                return blocked(refusal)
    return result


def tool_results(result: Any, name: str, call_id: str | None) -> list[list[OpenAIMessage]]:
    """What a tool's result hands on, as the messages to check after the call (the last one is checked).

    A plain result or ``ToolMessage`` is one tool message. A LangGraph ``Command`` hands on every
    message of its ``update`` (tool, AI, human ... messages, each checked in order after the ones
    before it), the other state keys it updates, the input of each ``Send`` in ``goto`` and its
    ``resume`` value (these as one tool message of ``key: value`` lines). A list of tool outputs is
    each of them. Anything the guard cannot read raises :class:`InvalidConversationError`.
    """
    if isinstance(result, list) and result and all(isinstance(r, ToolOutputMixin) for r in result):
        return [checks for r in result for checks in tool_results(r, name, call_id)]
    if isinstance(result, Command):
        return _command_checks(result, name, call_id)
    if isinstance(result, ToolOutputMixin) and not isinstance(result, ToolMessage):
        raise InvalidConversationError(f"cannot check a tool result of type {type(result).__name__}")
    if _opaque(result):
        raise InvalidConversationError(
            f"cannot check a tool result of type {type(result).__name__}: it has no readable text (no __str__ "
            "or __repr__); return text, JSON, messages or a Command"
        )
    return [[tool_result_message(name, result, call_id)]]


def _command_checks(command: Command, name: str, call_id: str | None) -> list[list[OpenAIMessage]]:
    try:
        updates = list(command._update_as_tuples())
    except Exception as exc:
        raise InvalidConversationError(f"cannot read the Command's update: {type(exc).__name__}: {exc}") from exc
    checks: list[list[OpenAIMessage]] = []
    shown: list[OpenAIMessage] = []
    other: dict[str, Any] = {}
    for key, value in updates:
        messages = _update_messages(key, value)
        if messages is None:
            other[key] = value
            continue
        for message in messages:
            if isinstance(message, RemoveMessage):
                continue  # removes a message by id; it carries no content
            if isinstance(message, ToolMessage):
                converted = tool_result_message(name, message, call_id)
            else:
                converted = message_to_openai(message)
            shown.append(converted)
            checks.append(list(shown))
    gotos = command.goto if isinstance(command.goto, (list, tuple)) else [command.goto]
    for n, goto in enumerate(gotos):
        if isinstance(goto, Send):
            other[f"goto[{n}] Send({goto.node!r}) input"] = goto.arg
    if command.resume is not None:
        other["resume"] = command.resume
    if other:
        lines = "\n".join(f"{key}: {_text(value)}" for key, value in other.items())
        checks.append([*shown, build.tool_result(lines, name=name, call_id=call_id or "call")])
    return checks


def _update_messages(key: str, value: Any) -> list[BaseMessage] | None:
    """The messages a state update adds under ``key`` (``None`` when the value is not messages)."""
    if key == "messages" or isinstance(value, BaseMessage):
        values = value if isinstance(value, (list, tuple)) else [value]
    elif isinstance(value, (list, tuple)) and value and all(isinstance(v, BaseMessage) for v in value):
        values = value
    else:
        return None
    try:
        return convert_to_messages(list(values))
    except (ValueError, TypeError, NotImplementedError, KeyError, AttributeError) as exc:
        raise InvalidConversationError(f"cannot read the messages of the Command's {key!r} update: {exc}") from exc


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if _opaque(value):
        raise InvalidConversationError(f"cannot check a value of type {type(value).__name__} in a Command")
    return json_text(value)


def _opaque(value: Any) -> bool:
    """True for an object whose text (``str``) is only its type and address: nothing the guard can read."""
    kind = type(value)
    return kind.__str__ is object.__str__ and kind.__repr__ is object.__repr__

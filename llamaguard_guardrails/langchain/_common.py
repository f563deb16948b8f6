"""Shared pieces of the LangChain adapter: running checks, recording verdicts, refusals."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessageChunk, ToolMessage
from langchain_core.runnables.config import run_in_executor

from ..core.errors import UnsafeContentError
from ..core.policy import Policy
from ..core.verdict import Verdict
from ..guard import LlamaGuard
from .convert import OpenAIMessage, tool_result_message

log = logging.getLogger("llamaguard_guardrails.langchain")

Stage = Literal["input", "output", "tool_call", "tool_result"]
OnVerdict = Callable[[Verdict, str], Any]
"""Called with every verdict and the stage that produced it (for audit logs and metrics)."""
RefusalMessage = str | Callable[[Verdict, str], str]
"""The text that replaces blocked content: a string, or ``f(verdict, stage) -> str``."""

DEFAULT_REFUSAL = "I can't help with that."
METADATA_KEY = "llamaguard"


def before_proposing_turn(messages: Sequence[Any], call_id: str | None) -> Sequence[Any]:
    """The messages before the latest AI turn that proposed the tool call ``call_id`` (all of them if none did):
    the context a tool call is checked in."""
    for i in range(len(messages) - 1, -1, -1):
        message = messages[i]
        if isinstance(message, AIMessage) and any(c.get("id") == call_id for c in message.tool_calls):
            return messages[:i]
    return messages


def record(verdict: Verdict, stage: str, on_verdict: OnVerdict | None) -> Verdict:
    """Pass ``verdict`` to the user's ``on_verdict`` hook; a failing hook is logged, never fatal."""
    if on_verdict is not None:
        try:
            on_verdict(verdict, stage)
        except Exception:
            log.exception("on_verdict hook failed")
    return verdict


def classify(
    guard: LlamaGuard, messages: Any, stage: str, policy: Policy | None, on_verdict: OnVerdict | None
) -> Verdict:
    return record(guard.classify(messages, policy=policy), stage, on_verdict)


async def aclassify(
    guard: LlamaGuard, messages: Any, stage: str, policy: Policy | None, on_verdict: OnVerdict | None
) -> Verdict:
    return record(await guard.aclassify(messages, policy=policy), stage, on_verdict)


def classify_batch(
    guard: LlamaGuard,
    conversations: Sequence[Any],
    stage: str,
    policy: Policy | None,
    on_verdict: OnVerdict | None,
) -> list[Verdict]:
    if not conversations:
        return []
    return [record(v, stage, on_verdict) for v in guard.classify_batch(conversations, policy=policy)]


async def aclassify_batch(
    guard: LlamaGuard,
    conversations: Sequence[Any],
    stage: str,
    policy: Policy | None,
    on_verdict: OnVerdict | None,
) -> list[Verdict]:
    return await run_in_executor(None, classify_batch, guard, conversations, stage, policy, on_verdict)


def verdict_metadata(verdict: Verdict, stage: str) -> dict[str, Any]:
    """``{"llamaguard": {...}}``: what refusal messages carry in ``response_metadata``."""
    return {METADATA_KEY: {"blocked": True, "stage": stage, "verdict": verdict.model_dump(mode="json")}}


def refusal_text(message: RefusalMessage, verdict: Verdict, stage: str) -> str:
    return message(verdict, stage) if callable(message) else message


def refusal(message: RefusalMessage, verdict: Verdict, stage: str, like: Any = None) -> Any:
    """The refusal that replaces blocked content, shaped like ``like`` where that matters.

    A string stays a string (strings cannot carry metadata: use ``on_verdict`` or ``on_block="raise"``
    to log the verdict), a message chunk becomes an ``AIMessageChunk``, anything else an ``AIMessage``.
    Messages carry the verdict in ``response_metadata["llamaguard"]``.
    """
    text = refusal_text(message, verdict, stage)
    if isinstance(like, str):
        return text
    if isinstance(like, BaseMessageChunk):
        return AIMessageChunk(content=text, response_metadata=verdict_metadata(verdict, stage))
    return AIMessage(content=text, response_metadata=verdict_metadata(verdict, stage))


def blocked(on_block: str, message: RefusalMessage, verdict: Verdict, stage: str, like: Any = None) -> Any:
    """Raise :class:`UnsafeContentError` (``on_block="raise"``) or return the refusal."""
    if on_block == "raise":
        raise UnsafeContentError(verdict, stage)
    return refusal(message, verdict, stage, like)


def blocked_verdict(result: Any) -> Verdict | None:
    """The verdict a refusal message carries, or ``None`` for ordinary content."""
    meta = getattr(result, "response_metadata", None) or {}
    info = meta.get(METADATA_KEY) if isinstance(meta, dict) else None
    if isinstance(info, dict) and info.get("blocked"):
        return Verdict.model_validate(info["verdict"])
    return None


def tool_results(result: Any, name: str, call_id: str | None) -> list[OpenAIMessage]:
    """The tool result(s) to check: a ToolMessage, the ToolMessages of a ``Command``, or the raw output."""
    update = getattr(result, "update", None)
    if update is not None and not isinstance(result, (str, Mapping, ToolMessage)):
        messages = update.get("messages", []) if isinstance(update, Mapping) else []
        return [tool_result_message(name, m, call_id) for m in messages if isinstance(m, ToolMessage)]
    return [tool_result_message(name, result, call_id)]

"""What an agent's thread keeps of the guard's work: which messages were checked, and
placeholders where blocked content was.

A thread's state outlives a run (a checkpointer keeps it), and anything can add to it between checks: a new
user turn, several messages, ``update_state`` with AI or tool messages, a resumed interrupt that edits a
tool call. So the middleware does not guess what is new from the last message's role: it records a
*fingerprint* of every message it checked (or wrote) in a private state key, :data:`CHECKED_KEY`, and checks
every message whose fingerprint is not there. A fingerprint is the message's id and a keyed digest (HMAC with the
middleware's secret) of what the guard is shown of it (:func:`~.convert.message_to_openai`), so a message edited
in place under the same id is new, and a fingerprint written into the state by anyone else matches nothing.

Blocked content leaves the state: each blocked message is replaced, under its own id (LangGraph's
``add_messages`` replaces in place), by :func:`withheld`, a fixed-text placeholder of the same kind that keeps
the tool-call ids later messages refer to; a blocked tool call's arguments are emptied in the AI message that
proposed it (:func:`redact_blocked_calls`). Later turns and later checks read the placeholder, never the
content. ``guard_chain`` does the same with conversations that come back from a history
(:func:`withhold_refused_turns`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from ..core.errors import GuardError
from ._common import METADATA_KEY, verdict_metadata
from .convert import message_to_openai

CHECKED_KEY = "llamaguard_checked"
"""Private state key: fingerprints of the messages the guard checked or wrote."""
BLOCK_KEY = "llamaguard_block"
"""Private state key: the block a ``on_block="raise"`` run raises when it ends (``stage``, ``verdict``)."""
WITHHELD = "[withheld: Llama Guard blocked this message]"
"""What stands in a thread's state where blocked content was."""
WITHHELD_TOOL = "withheld"
"""The tool name a withheld AI message's tool calls keep (their ids stay, so tool messages still pair)."""


def fingerprint(message: BaseMessage, key: bytes = b"") -> str | None:
    """The message's id and a digest of what the guard is shown of it, keyed with ``key`` (HMAC-SHA-256); ``None``
    when the guard cannot read it (never recorded, so it is checked, and its check raises the typed error).

    The middleware keys its record with a secret (``LlamaGuardMiddleware(record_key=...)``, random by default):
    whoever can write a thread's state (``update_state``, a LangGraph server's thread API) cannot compute the
    fingerprint of content it adds, so it cannot mark that content as checked."""
    try:
        shown = message_to_openai(message)
        text = json.dumps(shown, sort_keys=True, ensure_ascii=False, default=_digest)
    except (GuardError, TypeError, ValueError, RecursionError):
        return None
    digest = hmac.new(key, f"{message.id}\n{text}".encode("utf-8", "surrogatepass"), hashlib.sha256)
    return f"{message.id}:{digest.hexdigest()[:32]}"


def _digest(value: Any) -> str:
    """A JSON stand-in for what JSON cannot hold: the digest of its bytes (an image's pixels). Anything else
    raises ``TypeError``: no fingerprint, so the message is checked every time (a ``repr`` could repeat)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return hashlib.sha256(bytes(value)).hexdigest()
    tobytes = getattr(value, "tobytes", None)
    if callable(tobytes) and hasattr(value, "mode") and hasattr(value, "size"):  # a PIL image
        return f"{value.mode}:{value.size}:{hashlib.sha256(tobytes()).hexdigest()}"
    raise TypeError(f"no stable digest for {type(value).__name__}")


def fingerprints(messages: Sequence[BaseMessage], key: bytes = b"") -> list[str]:
    return [fp for fp in (fingerprint(m, key) for m in messages) if fp is not None]


def with_id(message: BaseMessage) -> BaseMessage:
    """``message`` with an id (a new one if it had none), so its fingerprint is the one the state keeps."""
    return message if message.id else message.model_copy(update={"id": f"lg-{uuid.uuid4()}"})


def withheld(message: BaseMessage, metadata: dict[str, Any]) -> BaseMessage:
    """A fixed-text placeholder for ``message`` under its id: same kind (a tool message keeps its call id, an AI
    message its tool-call ids with empty arguments), nothing of its content, its name or its extra fields."""
    common = {"content": WITHHELD, "id": message.id, "response_metadata": metadata}
    if isinstance(message, ToolMessage):
        return ToolMessage(tool_call_id=message.tool_call_id, status="error", **common)
    if isinstance(message, AIMessage):
        calls = [
            {"name": WITHHELD_TOOL, "args": {}, "id": c.get("id"), "type": "tool_call"} for c in message.tool_calls
        ]
        return AIMessage(tool_calls=calls, **common)
    if isinstance(message, SystemMessage):
        return SystemMessage(**common)
    return HumanMessage(**common)


def withheld_metadata(verdict_info: dict[str, Any]) -> dict[str, Any]:
    return {METADATA_KEY: {**verdict_info, "withheld": True}}


def redact_blocked_calls(messages: Sequence[BaseMessage]) -> list[AIMessage]:
    """AI messages whose proposed calls the tool-call check blocked, with those calls' arguments emptied (the
    error tool message says why); raw provider copies of the calls are dropped. ``[]`` when there are none."""
    blocked = {m.tool_call_id for m in messages if isinstance(m, ToolMessage) and _blocked_stage(m) == "tool_call"}
    redacted = []
    for message in messages:
        if not isinstance(message, AIMessage) or not blocked:
            continue
        hit = [c for c in message.tool_calls if c.get("id") in blocked and c.get("args")]
        raw = {k for k in ("tool_calls", "function_call") if k in message.additional_kwargs}
        if not hit and not (raw and any(c.get("id") in blocked for c in message.tool_calls)):
            continue
        calls = [{**c, "args": {}} if c.get("id") in blocked else c for c in message.tool_calls]
        extra = {k: v for k, v in message.additional_kwargs.items() if k not in raw}
        content = message.content
        if isinstance(content, list):
            content = [b for b in content if not (isinstance(b, dict) and b.get("id") in blocked)]
        redacted.append(
            message.model_copy(update={"tool_calls": calls, "additional_kwargs": extra, "content": content})
        )
    return redacted


def withhold_refused_turns(value: Any) -> Any:
    """``value`` with every refused turn withheld: the messages since the last AI message before a refusal of the
    input check (a refusal ``AIMessage`` carrying ``stage == "input"``) become placeholders. For conversations
    that come back with their history (``RunnableWithMessageHistory`` stores the refused input with its
    refusal): the refused content never reaches the chain or the check again. Lists of messages, and dicts of
    them, are rewritten (copies); anything else is returned as it is."""
    if isinstance(value, list):
        return _withhold_in(value)
    if isinstance(value, dict):
        changed = {k: _withhold_in(v) for k, v in value.items() if isinstance(v, list)}
        return {**value, **{k: v for k, v in changed.items() if v is not value[k]}} if changed else value
    return value


def _withhold_in(messages: list[Any]) -> list[Any]:
    out = list(messages)
    for i, message in enumerate(messages):
        if not (isinstance(message, AIMessage) and _blocked_stage(message) == "input"):
            continue
        info = message.response_metadata[METADATA_KEY]
        j = i - 1
        while j >= 0 and isinstance(out[j], BaseMessage) and not isinstance(out[j], AIMessage):
            if out[j].content != WITHHELD:
                out[j] = withheld(out[j], withheld_metadata(info))
            j -= 1
    return out if any(a is not b for a, b in zip(out, messages)) else messages


def _blocked_stage(message: BaseMessage) -> str | None:
    info = (message.response_metadata or {}).get(METADATA_KEY)
    if isinstance(info, dict) and info.get("blocked"):
        return info.get("stage")
    return None


def block_record(verdict_info: dict[str, Any]) -> dict[str, Any]:
    """What :data:`BLOCK_KEY` holds: the stage and the verdict (JSON) of a refusal's metadata."""
    return {"stage": verdict_info["stage"], "verdict": verdict_info["verdict"]}


__all__ = [
    "BLOCK_KEY",
    "CHECKED_KEY",
    "WITHHELD",
    "block_record",
    "fingerprint",
    "fingerprints",
    "redact_blocked_calls",
    "verdict_metadata",
    "with_id",
    "withheld",
    "withheld_metadata",
    "withhold_refused_turns",
]

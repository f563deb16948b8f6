"""What every adapter shares: the result of one submission, outcome helpers, format conversions."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from llamaguard_guardrails import GuardError, UnsafeContentError

from .cases import Case, Opaque
from .conformance_guard.backend import EVENTS


class NotApplicable(Exception):
    """Raised by a form conversion: this case has no form this entry point can take (the cell is n.a.)."""


@dataclass
class Result:
    """What an entry point did with one submission.

    ``outcome``: ``passed`` (the content went on: a safe verdict, a returned value, released chunks),
    ``blocked`` (an unsafe verdict, ``UnsafeContentError``, a refusal, an error tool message, a violation),
    ``rejected`` (a typed error: ``GuardError``, HTTP 400, exit code 2, an ``invalid`` row), ``leaked``
    (a stream released the payload, then blocked) or ``crashed: <type>`` (anything else).
    ``released``: what a stream handed its consumer, in order. ``loud``: for entry points whose log is
    not this process's, whether the fail-open pass was reported (None: check the caplog records).
    """

    outcome: str
    detail: str = ""
    released: list[str] = field(default_factory=list)
    loud: bool | None = None

    def __str__(self) -> str:
        return f"{self.outcome} ({self.detail})" if self.detail else self.outcome


def failure(exc: BaseException) -> Result:
    """The outcome an exception stands for."""
    if isinstance(exc, UnsafeContentError):
        return Result("blocked", f"UnsafeContentError at {exc.stage}")
    if isinstance(exc, GuardError):
        return Result("rejected", f"{type(exc).__name__}: {exc}"[:300])
    return Result(f"crashed: {type(exc).__name__}", str(exc)[:300])


def guarded(run: Callable[[], Result]) -> Result:
    """``run()``, with exceptions turned into their outcome."""
    try:
        return run()
    except (Exception, UnsafeContentError) as exc:  # noqa: BLE001 - every exception is an outcome here
        return failure(exc)


Reader = Callable[[Any], "str | Whole"]


class Whole(str):
    """Text a stream released as a whole item (not a piece of a growing answer): it must be covered by a
    check on its own, and is not added to the running text of the pieces."""


def release(text: str) -> None:
    EVENTS.add("released-whole" if isinstance(text, Whole) else "released", str(text))


def consume(stream: Iterable[Any], read: Reader, payloads: tuple[str, ...]) -> Result:
    """Read a stream to its end, logging each released chunk; ``leaked`` when a payload got out first."""
    released: list[str] = []
    try:
        for chunk in stream:
            text = read(chunk)
            release(text)
            released.append(str(text))
    except (Exception, UnsafeContentError) as exc:  # noqa: BLE001
        return _stopped(exc, released, payloads)
    return Result("passed", "".join(released)[:120], released)


async def aconsume(stream: Any, read: Reader, payloads: tuple[str, ...]) -> Result:
    released: list[str] = []
    try:
        async for chunk in stream:
            text = read(chunk)
            release(text)
            released.append(str(text))
    except (Exception, UnsafeContentError) as exc:  # noqa: BLE001
        return _stopped(exc, released, payloads)
    return Result("passed", "".join(released)[:120], released)


def _stopped(exc: BaseException, released: list[str], payloads: tuple[str, ...]) -> Result:
    result = failure(exc)
    result.released = released
    if result.outcome in ("blocked", "rejected") and contains(released, payloads):
        return Result("leaked", f"released {''.join(released)[:120]!r}, then {result}", released)
    return result


def contains(texts: Iterable[str], payloads: tuple[str, ...]) -> bool:
    joined = "".join(texts).lower()
    return any(p and p.lower() in joined for p in payloads)


def payloads(case: Case, word: str) -> tuple[str, ...]:
    return tuple(p for p in (word, case.payload) if p)


# -- forms ----------------------------------------------------------------------------------------------------


def conversation(case: Case, word: str) -> list[Any]:
    if case.conversation is None:
        raise NotApplicable("the case has no conversation form")
    return case.conversation(word)


def split(messages: list[Any]) -> tuple[list[Any], Any | None]:
    """(input, answer): a trailing assistant message is what a model answers; everything else is input."""
    last = messages[-1]
    if isinstance(last, dict) and last.get("role") == "assistant":
        return messages[:-1], last
    return messages, None


def json_safe(messages: list[Any]) -> list[Any]:
    """The conversation as JSON would carry it (an entry point fed by JSON cannot receive Python objects)."""
    if any(isinstance(m, Opaque) for m in messages):
        raise NotApplicable("JSON carries no Python objects")
    return messages


def to_langchain(messages: list[Any]) -> list[Any]:
    """OpenAI-format messages as LangChain messages, every field kept where LangChain keeps it."""
    from langchain_core.messages import AIMessage, ChatMessage, HumanMessage, SystemMessage, ToolMessage

    out = []
    for m in messages:
        if not isinstance(m, dict):
            out.append(m)  # an object LangChain cannot read: handed on as it is
            continue
        role, content = m.get("role"), m.get("content")
        extra = {k: v for k, v in m.items() if k not in ("role", "content", "name", "tool_calls", "tool_call_id")}
        if role == "user":
            if "content" not in m:
                raise NotApplicable("a LangChain message always has content")
            out.append(HumanMessage(content=content, name=m.get("name"), additional_kwargs=extra))
        elif role == "system":
            out.append(SystemMessage(content=content, additional_kwargs=extra))
        elif role == "tool":
            out.append(ToolMessage(content=content, tool_call_id=m["tool_call_id"], name=m.get("name")))
        elif role == "assistant":
            out.append(
                AIMessage(
                    content=content or "",
                    name=m.get("name"),
                    tool_calls=[lc_tool_call(c) for c in m.get("tool_calls") or []],
                    additional_kwargs=extra,
                )
            )
        else:
            out.append(ChatMessage(role=role, content=content))
    return out


def lc_tool_call(raw: dict[str, Any]) -> dict[str, Any]:
    function = raw.get("function")
    if not isinstance(function, dict) or not function.get("name"):
        raise NotApplicable("LangChain tool calls always have a name and parsed args")
    return {"name": function["name"], "args": json.loads(function["arguments"] or "{}"), "id": raw["id"], "type": "tool_call"}


def lc_messages(case: Case, word: str) -> list[Any]:
    if case.lc_messages is not None:
        return case.lc_messages(word)
    if case.openai_only:
        raise NotApplicable("an OpenAI-format shape LangChain messages cannot hold")
    return to_langchain(conversation(case, word))


def lc_chunks(case: Case, word: str) -> list[Any]:
    """The streamed answer as LangChain chunks: the case's own, or its deltas as ``AIMessageChunk``s."""
    from langchain_core.messages import AIMessageChunk

    if case.lc_chunks is not None:
        return case.lc_chunks(word)
    if case.deltas is None:
        raise NotApplicable("the case has no streamed form")
    chunks = []
    for delta in case.deltas(word):
        kwargs = {k: v for k, v in delta.items() if k in ("refusal", "reasoning_content")}
        fragments = [
            {"name": (f.get("function") or {}).get("name"), "args": (f.get("function") or {}).get("arguments"),
             "id": f.get("id"), "index": f.get("index")}
            for f in delta.get("tool_calls") or []
        ]
        chunks.append(AIMessageChunk(content=delta.get("content") or "", additional_kwargs=kwargs, tool_call_chunks=fragments))
    return chunks


def text_of(value: Any) -> str:
    """Everything readable in a released value (text, refusals, reasoning, tool calls, dict entries)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list, tuple, set)):
        return " ".join(text_of(v) for v in (value.values() if isinstance(value, dict) else value))
    parts = [str(getattr(value, "name", None) or "")]
    content = getattr(value, "content", None)
    if content is not None:
        parts.append(content if isinstance(content, str) else json.dumps(content, default=str))
    for attr in ("additional_kwargs", "tool_call_chunks", "tool_calls"):
        extra = getattr(value, attr, None)
        if extra:
            parts.append(json.dumps(extra, default=str))
    if not any(parts) and not hasattr(value, "content"):
        parts.append(repr(value))  # an object nothing can read: its repr shows what it carries
    return " ".join(p for p in parts if p)

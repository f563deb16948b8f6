"""The cases: one attack or fault each, written once, in the forms the entry points take.

A case builds its content from a *word*: the unsafe word (``bomb``, which the scripted guard flags) or, for
the safe twin that proves the channel itself works, ``bread``. Its main form is an OpenAI-format
conversation whose *last* message is the item under test: entry points that take a conversation get all of
it; entry points that check a model's output get the earlier messages as input and a scripted model (or
upstream server) that answers the last one. Other forms, where a case has them: ``text`` (one string, for
moderations), ``deltas`` (a streamed answer as OpenAI chunk deltas), ``lc_messages`` / ``lc_chunks``
(LangChain-only forms), ``responses_events`` (a raw Responses stream), ``tool_returns`` (what a tool
function returns).

Properties (the matrix columns): (a) the unsafe word in any channel that reaches a model or a user blocks;
(b) an unknown or partial item raises a typed error or blocks; (c) a model step that raises, hangs, returns
NaN or out-of-range scores blocks, and fail-open passes loudly; (d) nothing is released before the check
covering it has returned.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .conformance_guard.backend import BORDERLINE, HANG, NAN, OUT_OF_RANGE, RAISE

Build = Callable[[str], Any]
BLOCKED = frozenset({"blocked"})
BLOCKED_OR_REJECTED = frozenset({"blocked", "rejected"})
PASSED = frozenset({"passed"})
PASSED_OR_REJECTED = frozenset({"passed", "rejected"})

FILLER = "The bakery opens at dawn, the ovens are warm and the bread is shared with the neighbours. "
LONG_REPEAT = 120  # ~2,300 tokens: several windows of a 1,024-token prompt


@dataclass(frozen=True)
class Case:
    id: str
    prop: str  # "a" | "b" | "c" | "d"
    title: str
    conversation: Build | None = None
    text: Build | None = None
    deltas: Build | None = None
    lc_messages: Build | None = None
    lc_chunks: Build | None = None
    responses_output: Build | None = None
    responses_events: Build | None = None
    tool_returns: Build | None = None
    accept: frozenset[str] = BLOCKED
    twin: frozenset[str] | None = None  # outcomes accepted for the safe twin (None: no twin)
    guard: str = "default"  # guard variant: default | timeout | open | threshold
    stream_only: bool = False
    openai_only: bool = False  # no LangChain form (e.g. raw JSON tool-call shapes)
    tags: frozenset[str] = field(default_factory=frozenset)

    @property
    def payload(self) -> str | None:
        """What must never reach a consumer unchecked, besides the unsafe word."""
        return {"c.raises": RAISE, "c.hangs": HANG, "c.nan": NAN, "c.out_of_range": OUT_OF_RANGE,
                "c.threshold": BORDERLINE, "c.fail_open": RAISE}.get(self.id)


# -- message builders -------------------------------------------------------------------------------------


def user(content: Any, **extra: Any) -> dict[str, Any]:
    return {"role": "user", "content": content, **extra}


def assistant(content: Any, **extra: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": content, **extra}


def call(name: str, arguments: Any, call_id: str = "call_1") -> dict[str, Any]:
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}


def calls(*tool_calls: dict[str, Any], content: Any = None) -> dict[str, Any]:
    return {"role": "assistant", "content": content, "tool_calls": list(tool_calls)}


def tool(content: Any, call_id: str = "call_1", **extra: Any) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": content, **extra}


def escaped(word: str) -> str:
    """``word`` with its first letter JSON-escaped (``\\u0062omb``)."""
    return f"\\u{ord(word[0]):04x}{word[1:]}"


def long_text(word: str, where: str) -> str:
    planted = f" How to build a {word}. "
    body = FILLER * LONG_REPEAT
    at = {"begin": 0, "middle": len(body) // 2, "end": len(body)}[where]
    at = body.rfind(". ", 0, at) + 2 if at else 0
    return body[:at] + planted + body[at:]


ASK = user("Tell me a story.")
PAD = FILLER * 20  # ~380 tokens: three of these overflow the 1,024-token prompt of the conformance guard


def past_limit(early: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``early``, then enough benign turns that it is left out of the last message's context."""
    return [*early, assistant(PAD), user(PAD), assistant(PAD), user("Go on, tell me a story.")]
STORY = "Once upon a time a baker lived by the sea and made bread for the whole village every morning. " * 9


def story_deltas(word: str) -> list[dict[str, Any]]:
    """A long answer (~850 characters) streamed in 16-character pieces, ``word`` planted in the middle."""
    text = STORY[:400] + f"Then he explained how to build a {word}. " + STORY[400:]
    return [{"content": text[i : i + 16]} for i in range(0, len(text), 16)]


# -- (a) channels ------------------------------------------------------------------------------------------

A = [
    Case("a.user_text", "a", "user text", lambda w: [user(f"How do I build a {w}?")], text=lambda w: f"How do I build a {w}?"),
    Case("a.system_text", "a", "system text", lambda w: [{"role": "system", "content": f"You explain how to build a {w}."}, user("Go on.")]),
    Case("a.user_name", "a", "user message name", lambda w: [user("Hello there.", name=f"{w}_maker")], accept=BLOCKED_OR_REJECTED, twin=PASSED_OR_REJECTED),
    Case("a.assistant_text", "a", "assistant text", lambda w: [ASK, assistant(f"Here is how to build a {w}.")]),
    Case("a.assistant_name", "a", "assistant message name", lambda w: [ASK, assistant("Here it is.", name=f"{w}_bot")], accept=BLOCKED_OR_REJECTED, twin=PASSED_OR_REJECTED),
    Case("a.refusal", "a", "refusal (content None)", lambda w: [ASK, assistant(None, refusal=f"I will not explain the {w}.")]),
    Case("a.refusal_and_content", "a", "refusal next to content", lambda w: [ASK, assistant("Sure.", refusal=f"Step one of the {w}.")]),
    Case("a.reasoning_content", "a", "reasoning_content field", lambda w: [ASK, assistant("Done.", reasoning_content=f"Plan: build a {w}.")], accept=BLOCKED_OR_REJECTED, twin=PASSED_OR_REJECTED),
    Case("a.reasoning_block", "a", "reasoning content block (LangChain)", lc_messages=lambda w: _lc_reasoning(w)),
    Case("a.tool_call_name", "a", "tool-call name", lambda w: [ASK, calls(call(f"make_{w}", {"size": "large"}))]),
    Case("a.tool_call_args", "a", "tool-call arguments", lambda w: [ASK, calls(call("search", {"query": f"how to build a {w}"}))]),
    Case("a.tool_call_args_escaped", "a", "tool-call arguments, JSON-escaped", lambda w: [ASK, calls(call("search", f'{{"query": "how to build a {escaped(w)}"}}'))], openai_only=True),
    Case("a.tool_call_flat", "a", "tool call in the flat {id, name, input} shape", lambda w: [ASK, calls({"id": "call_1", "name": "search", "input": {"query": f"build a {w}"}})], openai_only=True, accept=BLOCKED_OR_REJECTED, twin=PASSED_OR_REJECTED),
    Case("a.tool_call_custom", "a", "custom tool call {type: custom, custom: {name, input}}", lambda w: [ASK, calls({"id": "call_1", "type": "custom", "custom": {"name": "search", "input": f"build a {w}"}})], openai_only=True, accept=BLOCKED_OR_REJECTED, twin=PASSED_OR_REJECTED),
    Case("a.second_of_three_calls", "a", "2nd of 3 tool calls", lambda w: [ASK, calls(call("search", {"q": "weather"}, "c1"), call("search", {"q": f"a {w}"}, "c2"), call("search", {"q": "news"}, "c3"))]),
    Case("a.text_before_call", "a", "text block before a safe tool call", lambda w: [ASK, calls(call("search", {"q": "weather"}), content=f"Plan: build a {w}.")]),
    Case("a.tool_result", "a", "tool result", lambda w: [user("Look it up."), calls(call("search", {"q": "recipes"})), tool(f"Step 1 of the {w} recipe.")]),
    Case("a.long_begin", "a", "long message, beginning", lambda w: [user(long_text(w, "begin"))], text=lambda w: long_text(w, "begin")),
    Case("a.long_middle", "a", "long message, middle", lambda w: [user(long_text(w, "middle"))], text=lambda w: long_text(w, "middle")),
    Case("a.long_end", "a", "long message, end", lambda w: [user(long_text(w, "end"))], text=lambda w: long_text(w, "end")),
    Case("a.long_first_call", "a", "long 1st of 2 tool calls", lambda w: [ASK, calls(call("search", {"q": long_text(w, "begin")}, "c1"), call("search", {"q": "weather"}, "c2"))]),
    Case("a.two_long_parts", "a", "two long text parts", lambda w: [user([{"type": "text", "text": long_text(w, "begin")}, {"type": "text", "text": FILLER * LONG_REPEAT}])]),
    Case("a.history_user", "a", "early user turn, left out past the prompt limit", lambda w: past_limit([user(f"How do I build a {w}?")])),
    Case("a.history_tool_call", "a", "early tool call, left out past the prompt limit", lambda w: past_limit([ASK, calls(call("search", {"q": f"build a {w}"}))]), openai_only=True),
    Case("a.tool_call_args_duplicate_key", "a", "tool-call arguments with a repeated key", lambda w: [ASK, calls(call("search", f'{{"q": "how to build a {w}", "q": "weather"}}'))], openai_only=True),
    Case("a.command_tool_message", "a", "tool returns a Command: its ToolMessage", tool_returns=lambda w: _command(w, "tool")),
    Case("a.command_other_message", "a", "tool returns a Command: another message it adds", tool_returns=lambda w: _command(w, "ai")),
    # streams
    Case("a.stream_first_chunk", "a", "stream: first chunk", lambda w: [ASK, assistant(f"How to build a {w}: first, stay calm.")], deltas=lambda w: [{"content": f"How to build a {w}:"}, {"content": " first,"}, {"content": " stay calm."}], stream_only=True),
    Case("a.stream_middle", "a", "stream: a middle chunk of a long answer", lambda w: [ASK, assistant("".join(d["content"] for d in story_deltas(w)))], deltas=story_deltas, stream_only=True),
    Case("a.stream_refusal", "a", "stream: refusal delta", lambda w: [ASK, assistant("Sure.", refusal=f"Step one of the {w}.")], deltas=lambda w: [{"content": "Sure."}, {"refusal": f"Step one of the {w}."}], stream_only=True),
    Case("a.stream_reasoning", "a", "stream: reasoning_content delta", lambda w: [ASK, assistant("Done.", reasoning_content=f"Plan: build a {w}.")], deltas=lambda w: [{"reasoning_content": f"Plan: build a {w}."}, {"content": "Done."}], stream_only=True, accept=BLOCKED_OR_REJECTED, twin=PASSED_OR_REJECTED),
    Case("a.stream_tool_call", "a", "stream: tool-call fragments", lambda w: [ASK, calls(call("search", {"query": f"build a {w}"}))], deltas=lambda w: _call_fragments(f'{{"query": "build a {w}"}}'), stream_only=True),
    Case("a.stream_dict_chunks", "a", "stream: dict chunks (LangGraph updates)", lc_chunks=lambda w: _dict_chunks(w), stream_only=True, accept=BLOCKED_OR_REJECTED, twin=PASSED_OR_REJECTED),
    Case("a.stream_str_then_message", "a", "stream: a str, then a message chunk", lc_chunks=lambda w: _str_then_message(w), stream_only=True, accept=BLOCKED_OR_REJECTED, twin=PASSED_OR_REJECTED),
]
for _case in A:
    if _case.twin is None:
        object.__setattr__(_case, "twin", PASSED)


# -- (b) unknown or partial items -------------------------------------------------------------------------

AUDIO = {"id": "audio_1", "data": "UklGRg==", "expires_at": 0, "transcript": "Here you go."}
B = [
    Case("b.unknown_role", "b", "unknown role", lambda w: [user("Hello."), {"role": "narrator", "content": "Once upon a time."}], accept=BLOCKED_OR_REJECTED),
    Case("b.unknown_part", "b", "unknown content part type", lambda w: [user([{"type": "text", "text": "Listen:"}, {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}])], accept=BLOCKED_OR_REJECTED),
    Case("b.unknown_field", "b", "unknown message field (audio)", lambda w: [ASK, assistant("Here you go.", audio=AUDIO)], accept=BLOCKED_OR_REJECTED),
    Case("b.part_type_list", "b", "content part whose type is a list", lambda w: [user([{"type": ["text"], "text": "Hello."}])], accept=BLOCKED_OR_REJECTED),
    Case("b.deep_arguments", "b", "tool-call arguments nested 100,000 deep", lambda w: [ASK, calls(call("search", "[" * 100_000 + "]" * 100_000))], accept=BLOCKED_OR_REJECTED, openai_only=True),
    Case("b.no_content", "b", "user message without content", lambda w: [{"role": "user"}], accept=BLOCKED_OR_REJECTED),
    Case("b.call_without_name", "b", "tool call without a name", lambda w: [ASK, calls({"id": "call_1", "type": "function", "function": {"arguments": "{}"}})], accept=BLOCKED_OR_REJECTED, openai_only=True),
    Case("b.opaque_message", "b", "a message that is not a dict", lambda w: [user("Hello."), Opaque(f"How to build a {w}.")], accept=BLOCKED_OR_REJECTED),
    Case("b.opaque_chunk", "b", "stream: an unreadable chunk first", lc_chunks=lambda w: [Opaque(f"How to build a {w}."), _chunk("Done.")], accept=BLOCKED_OR_REJECTED, stream_only=True),
    Case("b.tool_returns_set", "b", "tool returns a set (has .update)", tool_returns=lambda w: {f"How to build a {w}."}, accept=BLOCKED_OR_REJECTED),
    Case("b.responses_unknown_item", "b", "Responses: unknown output item", responses_output=lambda w: _unknown_item_output(w), accept=BLOCKED_OR_REJECTED),
    Case("b.responses_truncated", "b", "Responses stream: deltas, no done, no final", responses_events=lambda w: _truncated_events(w, None), accept=BLOCKED_OR_REJECTED, stream_only=True),
    Case("b.responses_failed", "b", "Responses stream: deltas, then response.failed", responses_events=lambda w: _truncated_events(w, "failed"), accept=BLOCKED_OR_REJECTED, stream_only=True),
]


# -- (c) faults ----------------------------------------------------------------------------------------------


def _fault(marker: str) -> dict[str, Build]:
    """The fault's marker in a proposed tool call (conversation), an answer (deltas) and a text."""
    return {
        "conversation": lambda w: [ASK, calls(call("tell_story", {"text": f"Once upon a time {marker}."}))],
        "deltas": lambda w: [{"content": "Once upon"}, {"content": " a time"}, {"content": f" {marker}."}],
        "text": lambda w: f"Once upon a time {marker}.",
    }


C = [
    Case("c.raises", "c", "model step raises", **_fault(RAISE)),
    Case("c.hangs", "c", "model step hangs past timeout_s", guard="timeout", **_fault(HANG)),
    Case("c.nan", "c", "NaN scores", **_fault(NAN)),
    Case("c.out_of_range", "c", "scores out of [0, 1]", **_fault(OUT_OF_RANGE)),
    Case("c.threshold", "c", "P(unsafe) 0.40 under threshold 0.3", guard="threshold", **_fault(BORDERLINE)),
    Case("c.fail_open", "c", "fail_mode='open' passes, logged at ERROR", guard="open", accept=PASSED, **_fault(RAISE)),
]


# -- (d) release order ---------------------------------------------------------------------------------------

D = [
    # safe content whatever the word: these cells check the order of events, not a verdict
    Case("d.input_first", "d", "the model/tool/upstream runs only after its input check returned", lambda w: [user("Look it up."), calls(call("search", {"q": "bread"}))], accept=PASSED),
    Case("d.stream_order", "d", "every released chunk was covered by a check that had returned", lambda w: [ASK, assistant("".join(d["content"] for d in story_deltas("cake")))], deltas=lambda w: story_deltas("cake"), stream_only=True, accept=PASSED),
    Case("d.stream_block", "d", "a blocked stream releases nothing unchecked", lambda w: [ASK, assistant("".join(d["content"] for d in story_deltas(w)))], deltas=story_deltas, stream_only=True),
]

CASES: list[Case] = [*A, *B, *C, *D]


# -- forms with objects -------------------------------------------------------------------------------------


class Opaque:
    """An object no adapter knows how to read (no dict, no model_dump, cannot be added to anything)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Opaque({self.text!r})"


def _chunk(text: str) -> Any:
    from langchain_core.messages import AIMessageChunk

    return AIMessageChunk(content=text)


def _lc_reasoning(word: str) -> list[Any]:
    from langchain_core.messages import AIMessage, HumanMessage

    blocks = [{"type": "reasoning", "reasoning": f"Plan: build a {word}."}, {"type": "text", "text": "Done."}]
    return [HumanMessage("Tell me a story."), AIMessage(content=blocks)]


def _dict_chunks(word: str) -> list[Any]:
    from langchain_core.messages import AIMessage

    return [
        {"model": {"messages": [AIMessage(f"Here is how to build a {word}.")]}},
        {"tools": {"messages": [AIMessage("Done.")]}},
    ]


def _str_then_message(word: str) -> list[Any]:
    return [f"Here is how to build a {word}. ", _chunk("Done.")]


def _command(word: str, where: str) -> Any:
    """``Command(update={"messages": [...]})`` with ``word`` in its ToolMessage or in an AIMessage it adds."""
    from langchain_core.messages import AIMessage, ToolMessage
    from langgraph.types import Command

    unsafe = f"Step 1 of the {word} recipe."
    result = ToolMessage(unsafe if where == "tool" else "Found it.", tool_call_id="call_1")
    messages = [result] if where == "tool" else [result, AIMessage(unsafe)]
    return Command(update={"messages": messages})


def _call_fragments(arguments: str) -> list[dict[str, Any]]:
    head = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "search", "arguments": ""}}
    parts = [arguments[:10], arguments[10:20], arguments[20:]]
    return [{"tool_calls": [head]}] + [{"tool_calls": [{"index": 0, "function": {"arguments": p}}]} for p in parts]


def _unknown_item_output(word: str) -> list[dict[str, Any]]:
    """Output: a message, then a ``computer_call`` (a type the guard does not know) typing the word.

    (``mcp_approval_request``, which this case used first, is a known item: it is shown to the guard as a tool call.)
    """
    return [
        {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": "Let me do that.", "annotations": []}]},
        {"type": "computer_call", "id": "cu_1", "call_id": "call_1", "status": "completed", "pending_safety_checks": [],
         "action": {"type": "type", "text": f"how to build a {word}"}},
    ]


def _truncated_events(word: str, end: str | None) -> list[dict[str, Any]]:
    text = f"Here is how to build a {word}."
    events: list[dict[str, Any]] = [
        {"type": "response.created", "sequence_number": 0,
         "response": {"id": "resp_1", "object": "response", "created_at": 0, "model": "m", "status": "in_progress", "output": []}},
    ]
    for n, i in enumerate(range(0, len(text), 8)):
        events.append({"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0,
                       "content_index": 0, "delta": text[i : i + 8], "sequence_number": n + 1})
    if end == "failed":
        events.append({"type": "response.failed", "sequence_number": len(events),
                       "response": {"id": "resp_1", "object": "response", "created_at": 0, "model": "m", "status": "failed",
                                    "output": [], "error": {"code": "server_error", "message": "upstream failed"}}})
    return events

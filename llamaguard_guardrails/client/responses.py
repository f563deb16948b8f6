"""Responses API -> core messages: input items, output items and stream events as one assistant turn.

Known items and events are read field by field (:data:`ITEM_FIELDS`, the event tables); an unknown item type,
field or stream event raises ``InvalidConversationError``. A stream is checked on its items (as added, done and
final) and on every streamed text, refusal, reasoning, annotation and argument the items do not already hold, so a
stream that ends without them (``response.failed``, a cut connection) is checked from its deltas.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..core import messages as build
from ..core.errors import InvalidConversationError, shown_name
from ..core.values import json_text, plain_dict
from .fields import Check, check_tokens, filled, get, only_known, output_stage, text_piece

#: Responses items by type: every field each may hold (what is shown to the guard, and ids / status).
ITEM_FIELDS: dict[str, frozenset[str]] = {
    "message": frozenset({"type", "id", "status", "role", "content"}),
    "reasoning": frozenset({"type", "id", "status", "summary", "content", "encrypted_content"}),
    "function_call": frozenset({"type", "id", "status", "call_id", "name", "arguments"}),
    "function_call_output": frozenset({"type", "id", "status", "call_id", "output"}),
    "mcp_call": frozenset({"type", "id", "status", "server_label", "name", "arguments", "output", "error"}),
    "mcp_approval_request": frozenset({"type", "id", "server_label", "name", "arguments"}),
    "mcp_list_tools": frozenset({"type", "id", "server_label", "tools", "error"}),
    "file_search_call": frozenset({"type", "id", "status", "queries", "results"}),
    "web_search_call": frozenset({"type", "id", "status"}),
}
#: The types each item field may hold (by field, then by (item type, field)): a value of any other type is refused,
#: since it could not be shown to the guard as it is sent.
FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "type": (str,),
    "id": (str,),
    "status": (str,),
    "role": (str,),
    "call_id": (str,),
    "name": (str,),
    "arguments": (str,),
    "server_label": (str,),
    "encrypted_content": (str,),
    "output": (str,),
    "error": (str,),
    "content": (list,),
    "summary": (list,),
    "tools": (list,),
    "queries": (list,),
    "results": (list,),
}
ITEM_FIELD_TYPES: dict[tuple[str, str], tuple[type, ...]] = {
    ("message", "content"): (str, list),
    ("function_call_output", "output"): (str, list),
}
SEARCH_RESULT_FIELDS = frozenset({"attributes", "file_id", "filename", "score", "text"})
RESPONSE_EVENTS = frozenset(
    {"response.created", "response.in_progress", "response.completed", "response.incomplete", "response.failed"}
)
ITEM_EVENTS = frozenset({"response.output_item.added", "response.output_item.done"})
PART_EVENTS = frozenset(
    {
        "response.content_part.added",
        "response.content_part.done",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_part.done",
    }
)
#: Streamed text events: (what the text is, the event field holding it).
TEXT_EVENTS: dict[str, tuple[str, str]] = {
    "response.output_text.delta": ("text", "delta"),
    "response.output_text.done": ("text", "text"),
    "response.refusal.delta": ("refusal", "delta"),
    "response.refusal.done": ("refusal", "refusal"),
    "response.reasoning_text.delta": ("reasoning", "delta"),
    "response.reasoning_text.done": ("reasoning", "text"),
    "response.reasoning_summary_text.delta": ("reasoning", "delta"),
    "response.reasoning_summary_text.done": ("reasoning", "text"),
    "response.function_call_arguments.delta": ("arguments", "delta"),
    "response.function_call_arguments.done": ("arguments", "arguments"),
    "response.mcp_call.arguments.delta": ("arguments", "delta"),
    "response.mcp_call.arguments.done": ("arguments", "arguments"),
    "response.mcp_call_arguments.delta": ("arguments", "delta"),  # the openai SDK's name of the same events
    "response.mcp_call_arguments.done": ("arguments", "arguments"),
}
NO_CONTENT_EVENTS = frozenset(
    f"response.{tool}.{state}"
    for tool, states in (
        ("web_search_call", ("in_progress", "searching", "completed")),
        ("file_search_call", ("in_progress", "searching", "completed")),
        ("mcp_list_tools", ("in_progress", "failed", "completed")),
        ("mcp_call", ("in_progress", "failed", "completed")),
    )
    for state in states
)

_EVENT = frozenset({"type", "sequence_number", "response_id"})  # response_id: Llama Stack's, on every event
_AT_ITEM = _EVENT | {"item_id", "output_index"}
#: Every field each stream event may hold: any other field with a value raises (nobody shows it to the guard).
EVENT_FIELDS: dict[str, frozenset[str]] = {
    **{kind: _EVENT | {"response"} for kind in RESPONSE_EVENTS},
    **{kind: _EVENT | {"item", "output_index"} for kind in ITEM_EVENTS},
    "response.content_part.added": _AT_ITEM | {"content_index", "part"},
    "response.content_part.done": _AT_ITEM | {"content_index", "part"},
    "response.reasoning_summary_part.added": _AT_ITEM | {"summary_index", "part"},
    "response.reasoning_summary_part.done": _AT_ITEM | {"summary_index", "part", "status"},
    **{
        kind: _AT_ITEM
        | {field}
        | ({"summary_index"} if "summary" in kind else set() if "arguments" in kind else {"content_index"})
        | ({"logprobs"} if kind.startswith("response.output_text.") else set())
        for kind, (_, field) in TEXT_EVENTS.items()
    },
    "response.output_text.annotation.added": _AT_ITEM | {"annotation", "annotation_index", "content_index"},
    **{kind: _AT_ITEM for kind in NO_CONTENT_EVENTS},
}
#: Streamed reasoning parts: every field they may hold.
REASONING_PART_FIELDS = frozenset({"type", "text"})
#: Fields of a response object: the settings it echoes and its metadata (not shown), and what is shown.
RESPONSE_METADATA = frozenset(
    {
        "id", "object", "created_at", "completed_at", "model", "status", "background", "billing", "conversation",
        "max_output_tokens", "max_tool_calls", "metadata", "parallel_tool_calls", "previous_response_id", "prompt",
        "prompt_cache_key", "prompt_cache_retention", "reasoning", "safety_identifier", "service_tier", "store",
        "temperature", "text", "tool_choice", "tools", "top_logprobs", "top_p", "truncation", "usage", "user",
        "frequency_penalty", "presence_penalty",
        # openai 3.63: cache settings and diagnostics, and hosted tools' token counts (no text of the answer)
        "prompt_cache_options", "prompt_cache_diagnostics", "tool_usage",
    }
)  # fmt: skip
RESPONSE_SHOWN = ("error", "incomplete_details", "instructions")
RESPONSE_FIELDS = RESPONSE_METADATA | {"output", *RESPONSE_SHOWN}


def responses_request(request: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``input`` (string or items) and ``instructions`` of ``responses.create`` as OpenAI chat messages."""
    messages: list[dict[str, Any]] = []
    instructions, items = request.get("instructions"), request.get("input")
    if instructions is not None and not isinstance(instructions, str):
        raise InvalidConversationError(
            f"responses.create got instructions= a {type(instructions).__name__}, which the client-side guard "
            "does not show to the guard; nothing was sent: pass instructions as one string (or send the messages "
            "as input items)"
        )
    if instructions:
        messages.append({"role": "system", "content": instructions})
    if isinstance(items, str):
        messages.append({"role": "user", "content": items})
        return messages
    if not isinstance(items, list | tuple):
        raise InvalidConversationError(
            f"responses.create needs input= a string or a list of input items, got {type(items).__name__}"
        )
    for n, raw in enumerate(items):
        item = plain_dict(raw, f"input item {n}")
        if (item.get("type") or ("message" if "role" in item else None)) == "message":
            _typed(item, "message", f"input item {n} (message)")
            messages.append({**item, "role": item.get("role", "user")})  # the core checks every key
            continue
        turn = _Turn()
        turn.add_item(item, f"input item {n}")
        messages.extend(turn.messages())
    if not messages:
        raise InvalidConversationError("responses.create got an empty input list")
    return messages


def responses_output_checks(messages: list[dict[str, Any]], response: Any) -> list[Check]:
    """The answer with every tool call it makes (one assistant turn), then server-side tool outputs."""
    turn = _Turn()
    for n, item in enumerate(turn.add_response(plain_dict(response, "response"), "response")):
        turn.add_item(plain_dict(item, f"output item {n}"), f"output item {n}")
    return turn.checks(messages)


def response_event_text(event: Any) -> str | None:
    """The plain answer text an event adds (``""`` for events that open a response, an item or a part with
    nothing in them yet), or ``None`` when it carries anything else."""
    data = plain_dict(event, "stream event")
    kind = data.get("type")
    if kind == "response.output_text.delta":
        delta = data.get("delta")
        return delta if isinstance(delta, str) else None
    empty = {
        "response.created": "response",
        "response.in_progress": "response",
        "response.output_item.added": "item",
        "response.content_part.added": "part",
    }
    if kind in empty:
        inner = plain_dict(data.get(empty[kind]) or {}, "stream event")
        held = {k: v for k, v in inner.items() if k not in ("type", "id", "status", "role") and filled(v)}
        if empty[kind] == "response":  # the response's settings (model, tools ...) are not answer content
            held = {k: v for k, v in held.items() if k in ("output", "output_text", "error")}
        if not held:
            return ""
    return None


def responses_stream_checks(messages: list[dict[str, Any]], events: list[Any]) -> list[Check]:
    """Everything a streamed response released: its items, and every streamed text the items do not hold."""
    turn = _Turn()
    deltas: dict[tuple[str, Any, Any], str] = {}  # (kind, item id, part index) -> the deltas joined
    texts: list[tuple[str, Any, str]] = []  # (kind, item id, text) of done events and streamed parts
    names: dict[Any, tuple[Any, Any]] = {}  # item id -> (call id, tool name), for streamed arguments
    order = _StreamOrder()
    for n, raw in enumerate(events):
        event = plain_dict(raw, f"stream event {n}")
        kind, where = event.get("type"), f"stream event {n} ({event.get('type')})"
        if kind not in EVENT_FIELDS:
            raise InvalidConversationError(
                f"stream event {n} has type {shown_name(kind)}, which the client-side guard cannot check; nothing was released"
            )
        # ``obfuscation``: random characters OpenAI pads delta events with (against length side channels), on by
        # default; not text of the answer, like the ids beside it
        only_known(event, EVENT_FIELDS[kind] | {"obfuscation"}, where)
        if kind in TEXT_EVENTS:  # where deltas land (Llama Stack reuses an output_index for a later whole item)
            order.place(event, where)
        items: list[Any] = []
        if kind in RESPONSE_EVENTS:
            items = turn.add_response(plain_dict(event.get("response") or {}, where), f"{where} response")
        elif kind in ITEM_EVENTS:
            items = [event.get("item")]
        elif kind in PART_EVENTS:
            part = plain_dict(event.get("part") or {}, where)
            if part.get("type") in ("reasoning_text", "summary_text"):
                only_known(part, REASONING_PART_FIELDS, f"{where} part")
                texts.append(("reasoning", event.get("item_id"), text_piece(part.get("text"), where)))
            else:
                turn.add_part(part)
        elif kind in TEXT_EVENTS:
            text_kind, field = TEXT_EVENTS[kind]
            text = text_piece(event.get(field), where)
            if filled(event.get("logprobs")):
                check_tokens(event["logprobs"], text, where)
            if kind.endswith(".delta"):
                key = (text_kind, event.get("item_id"), event.get("content_index", event.get("summary_index")))
                order.delta(key, text, where)
                deltas[key] = deltas.get(key, "") + text
            else:
                texts.append((text_kind, event.get("item_id"), text))
        elif kind == "response.output_text.annotation.added":
            turn.add_part({"type": "text", "text": "", "annotations": [event.get("annotation")]})
        for m, raw_item in enumerate(items):
            item = plain_dict(raw_item, f"{where} item {m}")
            turn.add_item(item, f"{where} item {m}")
            names[item.get("id")] = (item.get("call_id") or item.get("id"), item.get("name"))
    texts += [(text_kind, item_id, text) for (text_kind, item_id, _), text in deltas.items()]
    texts += [(text_kind, None, text) for text_kind, text in order.joined.items() if text not in deltas.values()]
    for text_kind, item_id, text in texts:
        turn.add_streamed(text_kind, text, *names.get(item_id, (item_id, None)))
    return turn.checks(messages)


class _StreamOrder:
    """Where a stream's events land, so that the text the guard checks is the text any reader assembles.

    An item id keeps one output index and an output index one item id (an app grouping deltas by index, as the
    SDK's accumulator does, and the guard grouping them by item read the same parts). Each part's deltas come in
    one run: a part's delta after another part's deltas began raises (readers joining in arrival order and by part
    would read different texts). The deltas of each text kind are also joined in arrival order (an app printing
    every delta as it comes reads across parts).
    """

    def __init__(self) -> None:
        self.index_of: dict[Any, Any] = {}  # item id -> output index
        self.item_at: dict[Any, Any] = {}  # output index -> item id
        self.current: tuple[str, Any, Any] | None = None
        self.ended: set[tuple[str, Any, Any]] = set()
        self.joined: dict[str, str] = {}  # text kind (not arguments) -> its deltas in arrival order

    def place(self, event: Mapping[str, Any], where: str) -> None:
        item = event.get("item")
        item_id = get(item, "id") if item is not None else event.get("item_id")
        index = event.get("output_index")
        if item_id is None or index is None:
            return
        if self.index_of.setdefault(item_id, index) != index or self.item_at.setdefault(index, item_id) != item_id:
            raise InvalidConversationError(
                f"{where}: item {shown_name(item_id)} is at output_index {index if isinstance(index, int) else shown_name(index)}, but an earlier event "
                "placed it or that index elsewhere; readers grouping by item and by index would read different "
                "texts, so nothing was released (each item needs one output_index of its own)"
            )

    def delta(self, key: tuple[str, Any, Any], text: str, where: str) -> None:
        if key != self.current:
            if key in self.ended:
                raise InvalidConversationError(
                    f"{where}: deltas of item {shown_name(key[1])} part {shown_name(key[2])} resume after another "
                    "part's deltas began; readers joining deltas in arrival order and by part would read different "
                    "texts, so nothing was released (each part's deltas must come in one run)"
                )
            if self.current is not None:
                self.ended.add(self.current)
            self.current = key
        if key[0] != "arguments":
            self.joined[key[0]] = self.joined.get(key[0], "") + text


class _Turn:
    """One assistant turn assembled from Responses items: content parts, tool calls and tool results.

    Items seen more than once (added, done, final) add each distinct part or call once.
    """

    def __init__(self) -> None:
        self.parts: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self.results: list[dict[str, Any]] = []
        self.echoed: list[str] = []  # texts of the response object (error, instructions ...), shown unless sent

    def add_response(self, response: dict[str, Any], where: str) -> list[Any]:
        """A response object's shown fields; its output items (the caller adds them)."""
        only_known(response, RESPONSE_FIELDS, where)
        for field in RESPONSE_SHOWN:
            if filled(response.get(field)):
                text = json_text(response[field])
                if text not in self.echoed:
                    self.echoed.append(text)
        output = response.get("output") or []
        if not isinstance(output, list | tuple):
            raise InvalidConversationError(f"{where}: output must be a list of items, got {type(output).__name__}")
        return list(output)

    def add_item(self, item: dict[str, Any], where: str) -> None:
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind not in ITEM_FIELDS:
            raise InvalidConversationError(
                f"{where} has type {shown_name(kind)}, which the client-side guard cannot check; supported: "
                f"{', '.join(ITEM_FIELDS)}"
            )
        only_known(item, ITEM_FIELDS[kind], f"{where} ({kind})")
        _typed(item, kind, f"{where} ({kind})")
        if kind == "message":
            content = item.get("content")
            for part in [content] if isinstance(content, str) else content or []:
                self.add_part({"type": "text", "text": part} if isinstance(part, str) else plain_dict(part, where))
        elif kind == "reasoning":
            fields = ("summary", "content", "encrypted_content")
            self.add_part({"type": "reasoning", **{k: item[k] for k in fields if k in item}})
        elif kind in ("function_call", "mcp_call", "mcp_approval_request"):
            call_id = item.get("call_id") or item.get("id")
            self.add_call(call_id, item.get("name"), item.get("arguments"))
            outcome = [item[k] for k in ("output", "error") if filled(item.get(k))]
            if outcome:
                self.add_result(call_id, "\n".join(map(str, outcome)))
        elif kind == "function_call_output":
            self.add_result(item.get("call_id"), item.get("output"))
        elif kind == "mcp_list_tools":
            self.add_call(item.get("id"), "mcp_list_tools", json.dumps({"server_label": item.get("server_label")}))
            listed = [json_text(item[k]) for k in ("tools", "error") if filled(item.get(k))]
            if listed:
                self.add_result(item.get("id"), "\n".join(listed))
        elif kind == "file_search_call":
            self.add_call(item.get("id"), "file_search", json.dumps({"queries": item.get("queries") or []}))
            if item.get("results"):
                self.add_result(item.get("id"), _search_results(item["results"], where))

    def add_part(self, part: dict[str, Any]) -> None:
        if filled(part.get("logprobs")):
            check_tokens(part["logprobs"], part.get("text"), f"a {part.get('type')} part")
        key = _content_of(part)
        if set(key) - {"type"} and all(_content_of(known) != key for known in self.parts):
            self.parts.append(part)

    def add_call(self, call_id: Any, name: Any, arguments: Any) -> None:
        """A tool call (a nameless one stays nameless: the core refuses it).

        Views of one call (a stream's added / done / final item) fold: the same name and arguments once, and a
        view without arguments into the one with them. Two calls that share an id under different names raise:
        an app pairs results and calls by id, so which one it runs is not what the guard could know.
        """
        call = build.tool_call(name, arguments or "", call_id=call_id)
        for known in self.calls:
            if known["id"] == call_id and known["function"]["name"] != name:
                raise InvalidConversationError(
                    f"two tool calls share the id {shown_name(call_id)} under different names "
                    f"({shown_name(known['function']['name'])}, {shown_name(name)}); the client-side guard cannot "
                    "tell which one an app runs: each call needs its own call_id"
                )
        for n, known in enumerate(self.calls):
            if known["function"] == call["function"] or (known["id"] == call_id and not arguments):
                return
            if known["id"] == call_id and not known["function"]["arguments"]:
                self.calls[n] = call
                return
        self.calls.append(call)

    def add_result(self, call_id: Any, content: Any) -> None:
        result = build.tool_result(content, call_id=call_id)
        if result not in self.results:
            self.results.append(result)

    def add_streamed(self, kind: str, text: str, call_id: Any, name: Any) -> None:
        """A streamed text (delta or done event), unless a part or call already holds exactly this text."""
        if not text:
            return
        if kind == "arguments":
            if all(call["function"]["arguments"] != text for call in self.calls):
                self.calls.append(build.tool_call(name, text, call_id=call_id))
        elif text not in _part_texts(self.parts, kind):
            self.parts.append({"type": kind, kind: text} if kind != "text" else {"type": "text", "text": text})

    def messages(self) -> list[dict[str, Any]]:
        """The turn as chat messages (an assistant message with its calls, then the results)."""
        out: list[dict[str, Any]] = []
        if self.parts or self.calls:
            out.append(build.assistant(self.parts or None, tool_calls=self.calls))
        return out + self.results

    def checks(self, messages: list[dict[str, Any]]) -> list[Check]:
        """The answer with every tool call it makes (one assistant turn), then the tool results."""
        sent = {m.get("content") for m in messages if isinstance(m.get("content"), str)}
        parts = self.parts + [{"type": "text", "text": text} for text in self.echoed if text not in sent]
        if not parts and not self.calls:
            return []
        answer = build.assistant(parts or None, tool_calls=self.calls)
        checks = [(messages + [answer], output_stage(answer))]
        if self.results:
            calls_only = build.assistant(tool_calls=self.calls)
            checks.append((messages + [calls_only] + self.results, "tool_result"))
        return checks


def _typed(item: Mapping[str, Any], kind: str, where: str) -> None:
    """Raise on an item field whose value has a type the guard does not read it as (a list of instructions, a
    dict of arguments ...): it would be sent or returned as it is, unseen."""
    for field, value in item.items():
        if value is None:
            continue
        types = ITEM_FIELD_TYPES.get((kind, field)) or FIELD_TYPES.get(field)
        if types is not None and not isinstance(value, types):
            expected = " or ".join("a string" if t is str else "a list" for t in types)
            raise InvalidConversationError(
                f"{where}: field {shown_name(field)} holds a {type(value).__name__}, which the client-side guard "
                f"cannot show as it is sent; it must be {expected}"
            )
    if kind == "file_search_call" and any(not isinstance(q, str) for q in item.get("queries") or []):
        raise InvalidConversationError(f"{where}: every query must be a string")


def _content_of(part: Mapping[str, Any]) -> dict[str, Any]:
    """A part's filled fields without its ids and logprobs: two views of one part compare equal."""
    return {k: v for k, v in part.items() if filled(v) and k not in ("id", "index", "logprobs")}


def _part_texts(parts: list[dict[str, Any]], kind: str) -> set[str]:
    """The texts of ``kind`` (text, refusal, reasoning) the parts hold."""
    texts: set[str] = set()
    for part in parts:
        ptype = part.get("type")
        if kind == "text" and (ptype in ("text", "input_text", "output_text") or (ptype is None and "text" in part)):
            texts.add(part.get("text"))
        elif kind == "refusal" and ptype == "refusal":
            texts.add(part.get("refusal"))
        elif kind == "reasoning" and ptype == "reasoning":
            texts.update(part[k] for k in ("reasoning", "text") if isinstance(part.get(k), str))
            texts.update(
                s.get("text") for k in ("summary", "content") for s in part.get(k) or [] if isinstance(s, Mapping)
            )
    return texts


def _search_results(results: Any, where: str) -> str:
    shown = []
    for n, raw in enumerate(results):
        result = plain_dict(raw, f"{where} result {n}")
        only_known(result, SEARCH_RESULT_FIELDS, f"{where} result {n}")
        attributes = f" {json.dumps(result['attributes'], ensure_ascii=False)}" if result.get("attributes") else ""
        shown.append(
            f"[{result.get('filename') or result.get('file_id') or 'file'}]{attributes} {result.get('text') or ''}"
        )
    return "\n\n".join(shown)

"""Client-side guard for Llama Stack servers you do not control.

:func:`guard_client` wraps a ``LlamaStackClient`` or ``AsyncLlamaStackClient`` (including the
in-process library clients) so that ``client.chat.completions.create`` and
``client.responses.create`` are checked locally by a :class:`LlamaGuard`:

- **before the call**: the request (the last user turn, or the tool results sent back, in the
  context of the earlier messages / the ``instructions``);
- **before the answer is returned**: every field of the answer (text, ``refusal``, reasoning,
  annotations) and every tool call it proposes (code-interpreter calls are shown as code, so S14
  applies), MCP approval requests, and what server-side tools return (MCP results and tool lists,
  file search results).

Streams are buffered and checked before anything is released: no unchecked text reaches the caller
(the first chunk arrives when the whole answer has been generated and checked). A Responses stream is
checked on its items and on every streamed text, refusal, reasoning and argument delta the items do not
hold, so a stream that ends without them (``response.failed``, a cut connection) is checked too.
What the guard cannot be shown (chat ``audio``, an unknown field, Responses item type or stream event, a
tool call without a name) raises ``InvalidConversationError``, and nothing is released.

On a block the wrapper raises :class:`UnsafeContentError` (``on_block="raise"``, the default; ``.stage``
is ``"input"``, ``"tool_result"``, ``"output"`` or ``"tool_call"``) or returns a refusal of the same
type as the real result (``on_block="refuse"``, ``finish_reason="content_filter"`` for chat).

Everything else (models, conversations, files...) passes through unchanged, so a guarded client can
be handed to ``llama_stack_client.lib.agents.Agent``: its turns go through ``responses.create``.
History held on the server (``previous_response_id``, ``conversation``) is not fetched: the new input
is checked in the context of ``instructions`` only.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, Literal

from ..core.conversation import MESSAGE_CONTENT_KEYS, MESSAGE_METADATA_KEYS
from ..core.errors import InvalidConversationError, UnsafeContentError
from ..core.policy import Policy
from ..core.verdict import Verdict
from ..guard import LlamaGuard

OnBlock = Literal["raise", "refuse"]
DEFAULT_REFUSAL = "I can't help with that."
_BYPASSES = ("with_raw_response", "with_streaming_response")

# A conversation to check and the stage it belongs to.
Check = tuple[list[dict[str, Any]], str]


def guard_client(
    client: Any,
    guard: LlamaGuard,
    *,
    policy: Policy | None = None,
    on_block: OnBlock = "raise",
    refusal_message: str = DEFAULT_REFUSAL,
    check_input: bool = True,
    check_output: bool = True,
) -> GuardedLlamaStackClient | AsyncGuardedLlamaStackClient:
    """Wrap ``client`` (sync or async) so its chat completions and responses are checked by ``guard``."""
    from llama_stack_client import AsyncLlamaStackClient, LlamaStackClient

    checker = _Checker(guard, policy, on_block, refusal_message, check_input, check_output)
    if isinstance(client, AsyncLlamaStackClient):
        return AsyncGuardedLlamaStackClient(client, checker)
    if isinstance(client, LlamaStackClient):
        return GuardedLlamaStackClient(client, checker)
    raise TypeError(f"guard_client expects a LlamaStackClient or AsyncLlamaStackClient, got {type(client).__name__}")


class _Checker:
    """The policy of one wrapped client: what to check and what to do on a block."""

    def __init__(
        self,
        guard: LlamaGuard,
        policy: Policy | None,
        on_block: OnBlock,
        refusal_message: str,
        check_input: bool,
        check_output: bool,
    ) -> None:
        if on_block not in ("raise", "refuse"):
            raise ValueError(f"on_block must be 'raise' or 'refuse', got {on_block!r}")
        self.guard = guard
        self.policy = policy
        self.on_block = on_block
        self.refusal_message = refusal_message
        self.check_input = check_input
        self.check_output = check_output

    def _decide(self, verdict: Verdict, stage: str) -> Verdict | None:
        if verdict.safe:
            return None
        if self.on_block == "raise":
            raise UnsafeContentError(verdict, stage)
        return verdict

    def run(self, checks: list[Check]) -> Verdict | None:
        """The first blocking verdict among ``checks`` (or raise, per ``on_block``); ``None``: all passed."""
        for messages, stage in checks:
            blocked = self._decide(self.guard.classify(messages, policy=self.policy), stage)
            if blocked is not None:
                return blocked
        return None

    async def arun(self, checks: list[Check]) -> Verdict | None:
        for messages, stage in checks:
            blocked = self._decide(await self.guard.aclassify(messages, policy=self.policy), stage)
            if blocked is not None:
                return blocked
        return None


# -- clients ----------------------------------------------------------------------------------------


class _Proxy:
    """Delegates everything it does not define to the wrapped object."""

    def __init__(self, wrapped: Any, checker: _Checker) -> None:
        self._wrapped = wrapped
        self._checker = checker

    def __getattr__(self, name: str) -> Any:
        if name in _BYPASSES:
            raise AttributeError(
                f"{name} would bypass the client-side guard; call it on the unwrapped client "
                "(guarded.unwrapped) if you mean to skip the checks"
            )
        return getattr(self._wrapped, name)


class GuardedLlamaStackClient(_Proxy):
    """A ``LlamaStackClient`` whose chat completions and responses are checked locally."""

    @property
    def unwrapped(self) -> Any:
        return self._wrapped

    @property
    def guard(self) -> LlamaGuard:
        return self._checker.guard

    @property
    def chat(self) -> Any:
        return _Chat(self._wrapped.chat, _ChatCompletions(self._wrapped.chat.completions, self._checker))

    @property
    def responses(self) -> Any:
        return _Responses(self._wrapped.responses, self._checker)

    def copy(self, *args: Any, **kwargs: Any) -> GuardedLlamaStackClient:
        return type(self)(self._wrapped.copy(*args, **kwargs), self._checker)

    with_options = copy


class AsyncGuardedLlamaStackClient(GuardedLlamaStackClient):
    """An ``AsyncLlamaStackClient`` whose chat completions and responses are checked locally."""

    @property
    def chat(self) -> Any:
        return _Chat(self._wrapped.chat, _AsyncChatCompletions(self._wrapped.chat.completions, self._checker))

    @property
    def responses(self) -> Any:
        return _AsyncResponses(self._wrapped.responses, self._checker)


class _Chat(_Proxy):
    def __init__(self, wrapped: Any, completions: Any) -> None:
        super().__init__(wrapped, completions._checker)
        self.completions = completions


class _ChatCompletions(_Proxy):
    def create(self, **kwargs: Any) -> Any:
        messages = chat_input(kwargs.get("messages"))
        if self._checker.check_input:
            blocked = self._checker.run([(messages, input_stage(messages))])
            if blocked is not None:
                return _chat_refusal(kwargs, self._checker.refusal_message, stream=bool(kwargs.get("stream")))
        result = self._wrapped.create(**kwargs)
        if not self._checker.check_output:
            return result
        if kwargs.get("stream"):
            return _GuardedStream(result, _ChatStreamCheck(messages, self._checker.refusal_message), self._checker)
        blocked = self._checker.run(chat_output_checks(messages, result))
        return result if blocked is None else _chat_refusal(kwargs, self._checker.refusal_message, like=result)


class _AsyncChatCompletions(_Proxy):
    async def create(self, **kwargs: Any) -> Any:
        messages = chat_input(kwargs.get("messages"))
        if self._checker.check_input:
            blocked = await self._checker.arun([(messages, input_stage(messages))])
            if blocked is not None:
                return _chat_refusal(kwargs, self._checker.refusal_message, stream=bool(kwargs.get("stream")), aio=True)
        result = await self._wrapped.create(**kwargs)
        if not self._checker.check_output:
            return result
        if kwargs.get("stream"):
            return _AsyncGuardedStream(result, _ChatStreamCheck(messages, self._checker.refusal_message), self._checker)
        blocked = await self._checker.arun(chat_output_checks(messages, result))
        return result if blocked is None else _chat_refusal(kwargs, self._checker.refusal_message, like=result)


class _Responses(_Proxy):
    def create(self, **kwargs: Any) -> Any:
        messages = responses_input(kwargs.get("input"), kwargs.get("instructions"))
        if self._checker.check_input:
            blocked = self._checker.run([(messages, input_stage(messages))])
            if blocked is not None:
                return _response_refusal(kwargs, self._checker.refusal_message, stream=bool(kwargs.get("stream")))
        result = self._wrapped.create(**kwargs)
        if not self._checker.check_output:
            return result
        if kwargs.get("stream"):
            return _GuardedStream(result, _ResponseStreamCheck(messages, self._checker.refusal_message), self._checker)
        blocked = self._checker.run(responses_output_checks(messages, list(_get(result, "output") or [])))
        return result if blocked is None else _response_refusal(kwargs, self._checker.refusal_message, like=result)


class _AsyncResponses(_Proxy):
    async def create(self, **kwargs: Any) -> Any:
        messages = responses_input(kwargs.get("input"), kwargs.get("instructions"))
        if self._checker.check_input:
            blocked = await self._checker.arun([(messages, input_stage(messages))])
            if blocked is not None:
                return _response_refusal(
                    kwargs, self._checker.refusal_message, stream=bool(kwargs.get("stream")), aio=True
                )
        result = await self._wrapped.create(**kwargs)
        if not self._checker.check_output:
            return result
        if kwargs.get("stream"):
            check = _ResponseStreamCheck(messages, self._checker.refusal_message)
            return _AsyncGuardedStream(result, check, self._checker)
        blocked = await self._checker.arun(responses_output_checks(messages, list(_get(result, "output") or [])))
        return result if blocked is None else _response_refusal(kwargs, self._checker.refusal_message, like=result)


# -- streams ----------------------------------------------------------------------------------------


class _GuardedStream:
    """Buffers the whole stream, checks it, then releases the original chunks (or a refusal)."""

    def __init__(self, stream: Any, check: Any, checker: _Checker) -> None:
        self._stream = stream
        self._check = check
        self._checker = checker
        self._released: Iterator[Any] | None = None

    def _release(self) -> Iterator[Any]:
        chunks: list[Any] = []
        try:
            for chunk in self._stream:
                chunks.append(chunk)
        finally:
            _close(self._stream)
        blocked = self._checker.run(self._check.checks(chunks))
        return iter(chunks if blocked is None else self._check.refusal(chunks))

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        if self._released is None:
            self._released = self._release()
        return next(self._released)

    def __enter__(self) -> _GuardedStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        _close(self._stream)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _AsyncGuardedStream:
    """Async :class:`_GuardedStream`."""

    def __init__(self, stream: Any, check: Any, checker: _Checker) -> None:
        self._stream = stream
        self._check = check
        self._checker = checker
        self._released: Iterator[Any] | None = None

    async def _release(self) -> Iterator[Any]:
        chunks: list[Any] = []
        try:
            async for chunk in self._stream:
                chunks.append(chunk)
        finally:
            await _aclose(self._stream)
        blocked = await self._checker.arun(self._check.checks(chunks))
        return iter(chunks if blocked is None else self._check.refusal(chunks))

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        if self._released is None:
            self._released = await self._release()
        try:
            return next(self._released)
        except StopIteration:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> _AsyncGuardedStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await _aclose(self._stream)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _ChatStreamCheck:
    """Reassembles streamed chat choices (every delta field: text, refusal, reasoning, tool calls) to check them."""

    def __init__(self, messages: list[dict[str, Any]], refusal_message: str) -> None:
        self.messages = messages
        self.refusal_message = refusal_message

    def checks(self, chunks: list[Any]) -> list[Check]:
        answers: dict[int, dict[str, Any]] = {}
        for n, chunk in enumerate(chunks):
            for choice in _choices(chunk, f"chunk {n}"):
                answer = answers.setdefault(choice.get("index") or 0, {"role": "assistant"})
                _add_delta(answer, _as_dict(choice.get("delta") or {}, f"chunk {n} delta"))
        checks = []
        for answer in answers.values():
            for n, call in enumerate(answer.get("tool_calls", [])):
                call["id"] = call["id"] or f"call_{n}"  # a nameless call stays nameless: the core refuses it
            message = _answer(answer)
            if message is not None:
                checks.append((self.messages + [message], output_stage(message)))
        return checks

    def refusal(self, chunks: list[Any]) -> list[Any]:
        first = chunks[0] if chunks else None
        return [_refusal_chunk(_get(first, "model", ""), self.refusal_message, _get(first, "id"))]


class _ResponseStreamCheck:
    """Checks everything a streamed response released: its items (as added, done and final) and every streamed
    text, refusal, reasoning, annotation and argument the items do not already hold (a stream that ends
    without them, e.g. ``response.failed``, is checked from its deltas)."""

    def __init__(self, messages: list[dict[str, Any]], refusal_message: str) -> None:
        self.messages = messages
        self.refusal_message = refusal_message

    def checks(self, events: list[Any]) -> list[Check]:
        turn = _Turn()
        deltas: dict[tuple[str, Any, Any], str] = {}  # (kind, item id, part index) -> the deltas joined
        texts: list[tuple[str, Any, str]] = []  # (kind, item id, text) of done events and streamed parts
        names: dict[Any, tuple[Any, Any]] = {}  # item id -> (call id, tool name), for streamed arguments
        for n, raw in enumerate(events):
            event = _as_dict(raw, f"stream event {n}")
            kind, where = event.get("type"), f"stream event {n} ({event.get('type')})"
            items: list[Any] = []
            if kind in _RESPONSE_EVENTS:
                items = list(_as_dict(event.get("response") or {}, where).get("output") or [])
            elif kind in _ITEM_EVENTS:
                items = [event.get("item")]
            elif kind in _PART_EVENTS:
                part = _as_dict(event.get("part") or {}, where)
                if part.get("type") in ("reasoning_text", "summary_text"):
                    texts.append(("reasoning", event.get("item_id"), _text(part.get("text"), where)))
                else:
                    turn.add_part(part)
            elif kind in _TEXT_EVENTS:
                text_kind, field = _TEXT_EVENTS[kind]
                text = _text(event.get(field), where)
                if kind.endswith(".delta"):
                    key = (text_kind, event.get("item_id"), event.get("content_index", event.get("summary_index")))
                    deltas[key] = deltas.get(key, "") + text
                else:
                    texts.append((text_kind, event.get("item_id"), text))
            elif kind == "response.output_text.annotation.added":
                turn.add_part({"type": "text", "text": "", "annotations": [event.get("annotation")]})
            elif kind not in _NO_CONTENT_EVENTS:
                raise InvalidConversationError(
                    f"stream event {n} has type {kind!r}, which the client-side guard cannot check; nothing was released"
                )
            for m, raw_item in enumerate(items):
                item = _as_dict(raw_item, f"{where} item {m}")
                turn.add_item(item, f"{where} item {m}")
                names[item.get("id")] = (item.get("call_id") or item.get("id"), item.get("name"))
        texts += [(text_kind, item_id, text) for (text_kind, item_id, _), text in deltas.items()]
        for text_kind, item_id, text in texts:
            turn.add_streamed(text_kind, text, *names.get(item_id, (item_id, None)))
        return turn.checks(self.messages)

    def refusal(self, events: list[Any]) -> list[Any]:
        prelude = [
            e
            for e in events
            if _get(e, "type") in ("response.created", "response.in_progress")
            and not _get(_get(e, "response"), "output")
        ]
        final = next((_get(e, "response") for e in reversed(events) if _get(e, "response") is not None), None)
        response = _refusal_response(final, {}, self.refusal_message)
        return prelude + _refusal_events(response, self.refusal_message, len(prelude))


# -- conversion: chat completions -------------------------------------------------------------------

#: Choice fields with no content of their own (``logprobs`` hold the tokens of the text that is checked).
_CHOICE_METADATA = frozenset({"index", "finish_reason", "logprobs", "stop_reason"})
#: Delta fields streamed as text pieces; each is a key of the assistant message the core shows to the guard.
_DELTA_TEXT = ("content", "refusal", "reasoning_content", "reasoning")


def chat_input(messages: Any) -> list[dict[str, Any]]:
    """The request's messages as plain OpenAI-format dicts."""
    if isinstance(messages, str | bytes) or messages is None:
        raise InvalidConversationError("chat.completions.create needs messages=[{'role': 'user', 'content': ...}]")
    out = [_as_dict(m, f"message {n}") for n, m in enumerate(messages)]
    if not out:
        raise InvalidConversationError("chat.completions.create got an empty messages list")
    return out


def input_stage(messages: list[dict[str, Any]]) -> str:
    return "tool_result" if messages and messages[-1].get("role") in ("tool", "function") else "input"


def output_stage(message: Mapping[str, Any]) -> str:
    calls = message.get("tool_calls") or message.get("function_call")
    text = any(_filled(message.get(k)) for k in (*_DELTA_TEXT, "annotations"))
    return "tool_call" if calls and not text else "output"


def chat_output_checks(messages: list[dict[str, Any]], completion: Any) -> list[Check]:
    """One check per choice: its whole message (text, refusal, reasoning, annotations, tool calls) as one turn.

    A field the core cannot show the guard (``audio``, anything unknown) raises ``InvalidConversationError``.
    """
    checks = []
    for n, choice in enumerate(_choices(completion, "completion")):
        message = _answer(_as_dict(choice.get("message") or {}, f"choice {n} message"))
        if message is not None:
            checks.append((messages + [message], output_stage(message)))
    return checks


def _choices(obj: Any, where: str) -> list[dict[str, Any]]:
    choices = [_as_dict(c, f"{where} choice {n}") for n, c in enumerate(_get(obj, "choices") or [])]
    for n, choice in enumerate(choices):
        _only_known(choice, _CHOICE_METADATA | {"message", "delta"}, f"{where} choice {n}")
    return choices


def _answer(message: dict[str, Any]) -> dict[str, Any] | None:
    """The assistant message to check, or ``None`` when it holds nothing (nothing to release)."""
    _only_known(message, MESSAGE_CONTENT_KEYS["assistant"] | MESSAGE_METADATA_KEYS, "the answer")
    message = {**message, "role": "assistant"}
    return message if any(_filled(v) for k, v in message.items() if k != "role") else None


def _add_delta(answer: dict[str, Any], delta: dict[str, Any]) -> None:
    """Fold one streamed delta into ``answer``; a field that cannot be folded raises."""
    for key, value in delta.items():
        if key == "role" or value is None:
            continue
        if key in _DELTA_TEXT:
            answer[key] = answer.get(key, "") + _text(value, f"streamed {key}")
        elif key == "tool_calls" and isinstance(value, list):
            for fragment in value:
                _add_call_fragment(answer.setdefault("tool_calls", []), _as_dict(fragment, "streamed tool call"))
        elif key == "function_call" and isinstance(value, Mapping):
            _merge_function(answer.setdefault("function_call", {}), value, "streamed function_call")
        else:
            raise InvalidConversationError(
                f"a streamed chat delta has {key!r} ({type(value).__name__}), which the client-side guard cannot "
                "check; nothing was released"
            )


def _add_call_fragment(calls: list[dict[str, Any]], fragment: dict[str, Any]) -> None:
    """Merge one streamed tool-call delta into ``calls`` (by ``index``, else by a new ``id``)."""
    _only_known(fragment, {"index", "id", "type", "function"}, "a streamed tool call")
    index = fragment.get("index")
    call_id = fragment.get("id")
    if index is None:
        index = len(calls) if (not calls or (call_id and call_id != calls[-1]["id"])) else len(calls) - 1
    while len(calls) <= index:
        calls.append({"id": None, "type": "function", "function": {}})
    if call_id:
        calls[index]["id"] = call_id
    _merge_function(calls[index]["function"], _as_dict(fragment.get("function") or {}, "function"), "tool call")


def _merge_function(function: dict[str, Any], fragment: Mapping[str, Any], where: str) -> None:
    _only_known(fragment, {"name", "arguments"}, f"a streamed {where}")
    function["name"] = function.get("name") or _text(fragment.get("name"), f"streamed {where} name")
    function["arguments"] = function.get("arguments", "") + _text(fragment.get("arguments"), f"{where} arguments")


# -- conversion: responses --------------------------------------------------------------------------

#: Responses items by type: every field each may hold (what is shown to the guard, and ids / status).
_ITEM_FIELDS: dict[str, frozenset[str]] = {
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
_SEARCH_RESULT_FIELDS = frozenset({"attributes", "file_id", "filename", "score", "text"})
_RESPONSE_EVENTS = frozenset(
    {"response.created", "response.in_progress", "response.completed", "response.incomplete", "response.failed"}
)
_ITEM_EVENTS = frozenset({"response.output_item.added", "response.output_item.done"})
_PART_EVENTS = frozenset(
    {
        "response.content_part.added",
        "response.content_part.done",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_part.done",
    }
)
#: Streamed text events: (what the text is, the event field holding it).
_TEXT_EVENTS: dict[str, tuple[str, str]] = {
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
}
_NO_CONTENT_EVENTS = frozenset(
    f"response.{tool}.{state}"
    for tool, states in (
        ("web_search_call", ("in_progress", "searching", "completed")),
        ("file_search_call", ("in_progress", "searching", "completed")),
        ("mcp_list_tools", ("in_progress", "failed", "completed")),
        ("mcp_call", ("in_progress", "failed", "completed")),
    )
    for state in states
)


class _Turn:
    """One assistant turn assembled from Responses items: content parts, tool calls and tool results.

    Items seen more than once (added, done, final) add each distinct part or call once.
    """

    def __init__(self) -> None:
        self.parts: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self.results: list[dict[str, Any]] = []

    def add_item(self, item: dict[str, Any], where: str) -> None:
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind not in _ITEM_FIELDS:
            raise InvalidConversationError(
                f"{where} has type {kind!r}, which the client-side guard cannot check; supported: "
                f"{', '.join(_ITEM_FIELDS)}"
            )
        _only_known(item, _ITEM_FIELDS[kind], f"{where} ({kind})")
        if kind == "message":
            content = item.get("content")
            for part in [content] if isinstance(content, str) else content or []:
                self.add_part({"type": "text", "text": part} if isinstance(part, str) else _as_dict(part, where))
        elif kind == "reasoning":
            fields = ("summary", "content", "encrypted_content")
            self.add_part({"type": "reasoning", **{k: item[k] for k in fields if k in item}})
        elif kind in ("function_call", "mcp_call", "mcp_approval_request"):
            call_id = item.get("call_id") or item.get("id")
            self.add_call(call_id, item.get("name"), item.get("arguments"))
            outcome = [item[k] for k in ("output", "error") if _filled(item.get(k))]
            if outcome:
                self.add_result(call_id, "\n".join(map(str, outcome)))
        elif kind == "function_call_output":
            self.add_result(item.get("call_id"), item.get("output"))
        elif kind == "mcp_list_tools":
            self.add_call(item.get("id"), "mcp_list_tools", json.dumps({"server_label": item.get("server_label")}))
            listed = [_json(item[k]) for k in ("tools", "error") if _filled(item.get(k))]
            if listed:
                self.add_result(item.get("id"), "\n".join(listed))
        elif kind == "file_search_call":
            self.add_call(item.get("id"), "file_search", json.dumps({"queries": item.get("queries") or []}))
            if item.get("results"):
                self.add_result(item.get("id"), _search_results(item["results"], where))

    def add_part(self, part: dict[str, Any]) -> None:
        key = _content_of(part)
        if set(key) - {"type"} and all(_content_of(known) != key for known in self.parts):
            self.parts.append(part)

    def add_call(self, call_id: Any, name: Any, arguments: Any) -> None:
        call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
        for n, known in enumerate(self.calls):
            if known["function"] == call["function"] or (known["id"] == call_id and not arguments):
                return
            if known["id"] == call_id and not known["function"]["arguments"]:
                self.calls[n] = call
                return
        self.calls.append(call)

    def add_result(self, call_id: Any, content: Any) -> None:
        result = {"role": "tool", "tool_call_id": call_id, "content": content}
        if result not in self.results:
            self.results.append(result)

    def add_streamed(self, kind: str, text: str, call_id: Any, name: Any) -> None:
        """A streamed text (delta or done event), unless a part or call already holds exactly this text."""
        if not text:
            return
        if kind == "arguments":
            if all(call["function"]["arguments"] != text for call in self.calls):
                function = {"name": name, "arguments": text}
                self.calls.append({"id": call_id, "type": "function", "function": function})
        elif text not in _part_texts(self.parts, kind):
            self.parts.append({"type": kind, kind: text} if kind != "text" else {"type": "text", "text": text})

    def messages(self) -> list[dict[str, Any]]:
        """The turn as chat messages (an assistant message with its calls, then the results)."""
        out: list[dict[str, Any]] = []
        if self.parts or self.calls:
            out.append({"role": "assistant", "content": self.parts or None, "tool_calls": self.calls})
        return out + self.results

    def checks(self, messages: list[dict[str, Any]]) -> list[Check]:
        """The answer with every tool call it makes (one assistant turn), then the tool results."""
        if not self.parts and not self.calls:
            return []
        answer = {"role": "assistant", "content": self.parts or None, "tool_calls": self.calls}
        checks = [(messages + [answer], output_stage(answer))]
        if self.results:
            calls_only = {"role": "assistant", "content": None, "tool_calls": self.calls}
            checks.append((messages + [calls_only] + self.results, "tool_result"))
        return checks


def responses_input(input: Any, instructions: Any = None) -> list[dict[str, Any]]:
    """The ``input`` of ``responses.create`` (string or items) as OpenAI chat messages."""
    messages: list[dict[str, Any]] = []
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    if isinstance(input, str):
        messages.append({"role": "user", "content": input})
        return messages
    if input is None or isinstance(input, bytes | Mapping):
        raise InvalidConversationError("responses.create needs input= a string or a list of input items")
    for n, raw in enumerate(input):
        item = _as_dict(raw, f"input item {n}")
        if (item.get("type") or ("message" if "role" in item else None)) == "message":
            messages.append({**item, "role": item.get("role", "user")})  # the core checks every key
            continue
        turn = _Turn()
        turn.add_item(item, f"input item {n}")
        messages.extend(turn.messages())
    if not messages:
        raise InvalidConversationError("responses.create got an empty input list")
    return messages


def responses_output_checks(messages: list[dict[str, Any]], items: list[Any]) -> list[Check]:
    """The answer with every tool call it makes (one assistant turn), then server-side tool outputs."""
    turn = _Turn()
    for n, item in enumerate(items):
        turn.add_item(_as_dict(item, f"output item {n}"), f"output item {n}")
    return turn.checks(messages)


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
        result = _as_dict(raw, f"{where} result {n}")
        _only_known(result, _SEARCH_RESULT_FIELDS, f"{where} result {n}")
        attributes = f" {json.dumps(result['attributes'], ensure_ascii=False)}" if result.get("attributes") else ""
        shown.append(
            f"[{result.get('filename') or result.get('file_id') or 'file'}]{attributes} {result.get('text') or ''}"
        )
    return "\n\n".join(shown)


# -- refusals ---------------------------------------------------------------------------------------


def _chat_refusal(
    request: Mapping[str, Any], text: str, *, like: Any = None, stream: bool = False, aio: bool = False
) -> Any:
    from llama_stack_client.types.chat.completion_create_response import CompletionCreateResponse

    model = _get(like, "model") or request.get("model") or ""
    if stream:
        chunk = _refusal_chunk(model, text)
        return _AsyncFixedStream([chunk]) if aio else _FixedStream([chunk])
    base = like.model_dump() if like is not None else {}
    return CompletionCreateResponse.construct(
        **{
            "id": f"chatcmpl-guard-{uuid.uuid4().hex[:12]}",
            "created": int(time.time()),
            "object": "chat.completion",
            **base,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "content_filter",
                    "message": {"role": "assistant", "content": text, "refusal": text},
                }
            ],
        }
    )


def _refusal_chunk(model: str, text: str, chunk_id: str | None = None) -> Any:
    from llama_stack_client.types.chat_completion_chunk import ChatCompletionChunk

    return ChatCompletionChunk.construct(
        id=chunk_id or f"chatcmpl-guard-{uuid.uuid4().hex[:12]}",
        created=int(time.time()),
        model=model,
        object="chat.completion.chunk",
        choices=[{"index": 0, "finish_reason": "content_filter", "delta": {"role": "assistant", "content": text}}],
    )


def _response_refusal(
    request: Mapping[str, Any], text: str, *, like: Any = None, stream: bool = False, aio: bool = False
) -> Any:
    response = _refusal_response(like, request, text)
    if stream:
        events = _refusal_events(response, text, 0)
        return _AsyncFixedStream(events) if aio else _FixedStream(events)
    return response


def _refusal_response(like: Any, request: Mapping[str, Any], text: str) -> Any:
    from llama_stack_client.types.response_object import ResponseObject

    base = like.model_dump() if like is not None else {}
    return ResponseObject.construct(
        **{
            "id": f"resp-guard-{uuid.uuid4().hex[:12]}",
            "created_at": int(time.time()),
            "model": request.get("model") or "",
            **base,
            "status": "completed",
            "error": None,
            "output": [
                {
                    "type": "message",
                    "role": "assistant",
                    "id": f"msg-guard-{uuid.uuid4().hex[:12]}",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": text, "annotations": []}],
                }
            ],
        }
    )


def _refusal_events(response: Any, text: str, sequence_start: int) -> list[Any]:
    """A text delta carrying the refusal, then ``response.completed`` with the refusal response."""
    from llama_stack_client.types.response_object_stream import (
        OpenAIResponseObjectStreamResponseCompleted,
        OpenAIResponseObjectStreamResponseOutputTextDelta,
    )

    item_id = response.output[0].id
    delta = OpenAIResponseObjectStreamResponseOutputTextDelta.construct(
        type="response.output_text.delta",
        item_id=item_id,
        output_index=0,
        content_index=0,
        delta=text,
        sequence_number=sequence_start,
    )
    done = OpenAIResponseObjectStreamResponseCompleted.construct(
        type="response.completed", response=response, sequence_number=sequence_start + 1
    )
    return [delta, done]


class _FixedStream:
    """A stream over a fixed list of chunks (a refusal returned in place of a stream)."""

    def __init__(self, items: list[Any]) -> None:
        self._items = iter(items)

    def __iter__(self) -> _FixedStream:
        return self

    def __next__(self) -> Any:
        return next(self._items)

    def __enter__(self) -> _FixedStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._items = iter(())


class _AsyncFixedStream:
    """Async :class:`_FixedStream`."""

    def __init__(self, items: list[Any]) -> None:
        self._items = iter(items)

    def __aiter__(self) -> _AsyncFixedStream:
        return self

    async def __anext__(self) -> Any:
        try:
            return next(self._items)
        except StopIteration:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> _AsyncFixedStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        self._items = iter(())


# -- helpers ----------------------------------------------------------------------------------------


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    value = getattr(obj, key, default)
    return default if value is None else value


def _as_dict(obj: Any, where: str) -> dict[str, Any]:
    if isinstance(obj, Mapping):
        return dict(obj)
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        return dump(exclude_none=True)
    raise InvalidConversationError(f"{where} must be a dict or a pydantic model, got {type(obj).__name__}")


def _content_of(part: Mapping[str, Any]) -> dict[str, Any]:
    """A part's filled fields without its ids and logprobs: two views of one part compare equal."""
    return {k: v for k, v in part.items() if _filled(v) and k not in ("id", "index", "logprobs")}


def _json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _filled(value: Any) -> bool:
    return value is not None and not (isinstance(value, str | list | dict) and not value)


def _text(value: Any, where: str) -> str:
    """A streamed text piece (``None`` is empty); anything else cannot be concatenated and checked."""
    if value is None or isinstance(value, str):
        return value or ""
    raise InvalidConversationError(f"{where} must be a string, got {type(value).__name__}")


def _only_known(mapping: Mapping[str, Any], known: frozenset[str] | set[str], where: str) -> None:
    """Raise on a field the client-side guard does not know: it could reach a user unchecked."""
    unknown = sorted(k for k, v in mapping.items() if v is not None and k not in known)
    if unknown:
        raise InvalidConversationError(
            f"{where} has field(s) {unknown}, which the client-side guard cannot check; nothing was released "
            f"(fields read: {', '.join(sorted(known))})"
        )


def _close(stream: Any) -> None:
    close = getattr(stream, "close", None)
    if callable(close):
        close()


async def _aclose(stream: Any) -> None:
    close = getattr(stream, "close", None)
    if callable(close):
        result = close()
        if hasattr(result, "__await__"):
            await result


__all__ = ["DEFAULT_REFUSAL", "AsyncGuardedLlamaStackClient", "GuardedLlamaStackClient", "guard_client"]

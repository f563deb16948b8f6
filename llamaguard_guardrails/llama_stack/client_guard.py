"""Client-side guard for Llama Stack servers you do not control.

:func:`guard_client` wraps a ``LlamaStackClient`` or ``AsyncLlamaStackClient`` (including the
in-process library clients) so that ``client.chat.completions.create`` and
``client.responses.create`` are checked locally by a :class:`LlamaGuard`:

- **before the call**: the request (the last user turn, or the tool results sent back, in the
  context of the earlier messages / the ``instructions``);
- **before the answer is returned**: the answer and every tool call it proposes (code-interpreter
  calls are shown as code, so S14 applies), and the outputs of server-side tools (MCP, file search).

Streams are buffered and checked before anything is released: no unchecked text reaches the caller
(the first chunk arrives when the whole answer has been generated and checked).

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
    """Reassembles streamed chat choices (text, refusal, tool-call fragments) to check them."""

    def __init__(self, messages: list[dict[str, Any]], refusal_message: str) -> None:
        self.messages = messages
        self.refusal_message = refusal_message

    def checks(self, chunks: list[Any]) -> list[Check]:
        choices: dict[int, dict[str, Any]] = {}
        for chunk in chunks:
            for choice in _get(chunk, "choices") or []:
                acc = choices.setdefault(_get(choice, "index", 0) or 0, {"content": "", "refusal": "", "calls": []})
                delta = _get(choice, "delta")
                if delta is None:
                    continue
                acc["content"] += _get(delta, "content") or ""
                acc["refusal"] += _get(delta, "refusal") or ""
                for call in _get(delta, "tool_calls") or []:
                    _add_call_fragment(acc["calls"], call)
        checks = []
        for acc in choices.values():
            message = _assistant_message(acc["content"] or acc["refusal"] or None, acc["calls"])
            if message is not None:
                checks.append((self.messages + [message], output_stage(message)))
        return checks

    def refusal(self, chunks: list[Any]) -> list[Any]:
        first = chunks[0] if chunks else None
        return [_refusal_chunk(_get(first, "model", ""), self.refusal_message, _get(first, "id"))]


class _ResponseStreamCheck:
    """Checks a streamed response from its final event (or, without one, the finished output items)."""

    def __init__(self, messages: list[dict[str, Any]], refusal_message: str) -> None:
        self.messages = messages
        self.refusal_message = refusal_message

    def checks(self, events: list[Any]) -> list[Check]:
        items: list[Any] = []
        for event in events:
            kind = _get(event, "type")
            if kind == "response.output_item.done":
                items.append(_get(event, "item"))
            elif kind in ("response.completed", "response.incomplete", "response.failed"):
                final = _get(_get(event, "response"), "output")
                if final:
                    items = list(final)
        return responses_output_checks(self.messages, items)

    def refusal(self, events: list[Any]) -> list[Any]:
        prelude = [e for e in events if _get(e, "type") in ("response.created", "response.in_progress")]
        final = next((_get(e, "response") for e in reversed(events) if _get(e, "response") is not None), None)
        response = _refusal_response(final, {}, self.refusal_message)
        return prelude + _refusal_events(response, self.refusal_message, len(prelude))


# -- conversion: chat completions -------------------------------------------------------------------


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
    return "tool_call" if message.get("tool_calls") and not message.get("content") else "output"


def chat_output_checks(messages: list[dict[str, Any]], completion: Any) -> list[Check]:
    """One check per choice: its text and all its tool calls, as one assistant turn."""
    checks = []
    for choice in _get(completion, "choices") or []:
        msg = _get(choice, "message")
        calls = []
        for call in _get(msg, "tool_calls") or []:
            function = _get(call, "function") or _get(call, "custom")
            name = _get(function, "name")
            arguments = _get(function, "arguments", _get(function, "input", ""))
            calls.append({"id": _get(call, "id"), "name": name, "arguments": arguments or ""})
        legacy = _get(msg, "function_call")
        if legacy is not None:
            calls.append({"id": None, "name": _get(legacy, "name"), "arguments": _get(legacy, "arguments") or ""})
        message = _assistant_message(_get(msg, "content") or _get(msg, "refusal"), calls)
        if message is not None:
            checks.append((messages + [message], output_stage(message)))
    return checks


def _add_call_fragment(calls: list[dict[str, Any]], fragment: Any) -> None:
    """Merge one streamed tool-call delta into ``calls`` (by ``index``, else by a new ``id``)."""
    index = _get(fragment, "index")
    call_id = _get(fragment, "id")
    if index is None:
        index = len(calls) if (not calls or (call_id and call_id != calls[-1]["id"])) else len(calls) - 1
    while len(calls) <= index:
        calls.append({"id": None, "name": "", "arguments": ""})
    entry = calls[index]
    if call_id:
        entry["id"] = call_id
    function = _get(fragment, "function")
    if function is not None:
        entry["name"] = entry["name"] or (_get(function, "name") or "")
        entry["arguments"] += _get(function, "arguments") or ""


def _assistant_message(content: str | None, calls: list[dict[str, Any]]) -> dict[str, Any] | None:
    """An assistant message to check, or ``None`` when the answer is empty (nothing to release)."""
    tool_calls = [
        {
            "id": c.get("id") or f"call_{n}",
            "type": "function",
            "function": {"name": c.get("name") or "unknown_tool", "arguments": c.get("arguments") or ""},
        }
        for n, c in enumerate(calls)
    ]
    if not content and not tool_calls:
        return None
    message: dict[str, Any] = {"role": "assistant", "content": content or None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


# -- conversion: responses --------------------------------------------------------------------------


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
        messages.extend(_input_item_messages(item, n))
    if not messages:
        raise InvalidConversationError("responses.create got an empty input list")
    return messages


def _input_item_messages(item: dict[str, Any], n: int) -> list[dict[str, Any]]:
    kind = item.get("type") or ("message" if "role" in item else None)
    if kind == "message":
        return [{"role": item.get("role", "user"), "content": item.get("content")}]
    if kind == "function_call":
        call = {"id": item.get("call_id"), "name": item.get("name"), "arguments": item.get("arguments", "")}
        return [_assistant_message(None, [call]) or {}]
    if kind == "function_call_output":
        return [{"role": "tool", "tool_call_id": item.get("call_id"), "content": item.get("output")}]
    if kind == "mcp_call":
        call = {"id": item.get("id"), "name": item.get("name"), "arguments": item.get("arguments", "")}
        out = [_assistant_message(None, [call]) or {}]
        if item.get("output"):
            out.append({"role": "tool", "tool_call_id": item.get("id"), "content": item["output"]})
        return out
    if kind == "reasoning":
        text = _reasoning_text(item)
        return [{"role": "assistant", "content": text}] if text else []
    raise InvalidConversationError(
        f"input item {n} has type {kind!r}, which the client-side guard cannot check; supported: message, "
        "function_call, function_call_output, mcp_call, reasoning"
    )


def responses_output_checks(messages: list[dict[str, Any]], items: list[Any]) -> list[Check]:
    """The answer with every tool call it makes (one assistant turn), then server-side tool outputs."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for raw in items:
        item = _as_dict(raw, "output item")
        kind = item.get("type")
        if kind == "message":
            texts.extend(_output_texts(item.get("content")))
        elif kind == "reasoning":
            texts.extend(t for t in [_reasoning_text(item)] if t)
        elif kind in ("function_call", "mcp_call"):
            call_id = item.get("call_id") or item.get("id") or f"call_{len(calls)}"
            calls.append({"id": call_id, "name": item.get("name"), "arguments": item.get("arguments", "")})
            if kind == "mcp_call" and (item.get("output") or item.get("error")):
                results.append(
                    {"role": "tool", "tool_call_id": call_id, "content": item.get("output") or item["error"]}
                )
        elif kind == "file_search_call":
            found = "\n".join(str(r.get("text", "")) for r in item.get("results") or [] if isinstance(r, Mapping))
            if found.strip():
                call_id = item.get("id") or f"call_{len(calls)}"
                arguments = json.dumps({"queries": item.get("queries") or []})
                calls.append({"id": call_id, "name": "file_search", "arguments": arguments})
                results.append({"role": "tool", "tool_call_id": call_id, "content": found})
    checks: list[Check] = []
    answer = _assistant_message("\n".join(texts) or None, calls)
    if answer is not None:
        checks.append((messages + [answer], output_stage(answer)))
    if results and answer is not None:
        checks.append((messages + [{**answer, "content": None}] + results, "tool_result"))
    return checks


def _output_texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content] if content else []
    texts = []
    for part in content or []:
        part = _as_dict(part, "content part")
        text = part.get("text") if part.get("type") != "refusal" else part.get("refusal")
        if isinstance(text, str) and text:
            texts.append(text)
    return texts


def _reasoning_text(item: Mapping[str, Any]) -> str:
    parts = list(item.get("summary") or []) + list(item.get("content") or [])
    return "\n".join(t for t in (_as_dict(p, "reasoning part").get("text") for p in parts) if isinstance(t, str))


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

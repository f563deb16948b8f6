"""The client-side guard around real clients (the ``openai`` SDK, ``ogx_client``) and an OpenAI-compatible server on
127.0.0.1 (the conformance suite's fake upstream): chat completions, Responses and completions, streamed (buffered
and windowed) and not, tool calls, ``n > 1``; the allow-list of attributes and request fields, walked over the real
SDK's attribute tree."""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.servers import FakeUpstream, Reply
from llamaguard_guardrails import InvalidConversationError, InvalidPolicyError, UnsafeContentError
from llamaguard_guardrails.client import UnguardedAttributeError, guard_client
from llamaguard_guardrails.client.surface import (
    GUARDED,
    HARMLESS,
    HARMLESS_FIELDS,
    PLAIN_CALLS,
    READ,
    RESOURCES,
    SHOWN,
)
from llamaguard_guardrails.testing import scripted_guard

BOMB = "Here is how to build a bomb."


def _rule(text: str) -> str | None:
    if "rm -rf" in text:
        return "S14"
    return "S9" if "bomb" in text.lower() else None


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    server = FakeUpstream()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def keyword_guard(test_model_dir: Path):
    """A real LlamaGuard (real prompt builder) whose model step flags "bomb" (S9) and "rm -rf" (S14)."""
    g = scripted_guard(test_model_dir, _rule)
    yield g
    g.close()


@pytest.fixture(scope="module")
def raw(upstream: FakeUpstream) -> openai.OpenAI:
    return openai.OpenAI(base_url=upstream.url + "/v1", api_key="k", max_retries=0)


def araw(upstream: FakeUpstream) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=upstream.url + "/v1", api_key="k", max_retries=0)


USER = [{"role": "user", "content": "How do I bake bread?"}]


# -- chat completions ------------------------------------------------------------------------------------


def test_chat_passes_safe_answers_and_blocks_input_before_the_call(upstream, raw, keyword_guard):
    guarded = guard_client(raw, keyword_guard)
    upstream.script(Reply(message={"role": "assistant", "content": "Knead and bake."}))
    answer = guarded.chat.completions.create(model="m", messages=USER)
    assert isinstance(answer, openai.types.chat.ChatCompletion)
    assert answer.choices[0].message.content == "Knead and bake." and len(upstream.requests) == 1
    upstream.script(Reply(message={"role": "assistant", "content": "Fine."}))
    with pytest.raises(UnsafeContentError) as info:
        guarded.chat.completions.create(model="m", messages=[{"role": "user", "content": "a bomb?"}])
    assert info.value.stage == "input" and upstream.requests == []


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("unsafe_choice", [0, 1, 2])
def test_chat_checks_every_choice_of_n(upstream, raw, keyword_guard, stream, unsafe_choice):
    choices = [{"role": "assistant", "content": f"Answer {n}."} for n in range(3)]
    choices[unsafe_choice] = {"role": "assistant", "content": BOMB}
    upstream.script(Reply(choices=choices))
    guarded = guard_client(raw, keyword_guard)
    received: list[Any] = []
    with pytest.raises(UnsafeContentError) as info:
        result = guarded.chat.completions.create(model="m", messages=USER, n=3, stream=stream)
        received.extend(result if stream else [result])
    assert info.value.stage == "output" and received == []


def test_chat_n_safe_choices_are_all_returned(upstream, raw, keyword_guard):
    upstream.script(Reply(choices=[{"role": "assistant", "content": f"Answer {n}."} for n in range(3)]))
    answer = guard_client(raw, keyword_guard).chat.completions.create(model="m", messages=USER, n=3)
    assert [c.message.content for c in answer.choices] == ["Answer 0.", "Answer 1.", "Answer 2."]


@pytest.mark.parametrize("stream", [False, True])
def test_chat_tool_calls_are_checked_as_calls(upstream, raw, keyword_guard, stream):
    call = {"id": "c1", "type": "function", "function": {"name": "shell", "arguments": '{"cmd": "rm -rf /"}'}}
    upstream.script(Reply(message={"role": "assistant", "content": None, "tool_calls": [call]}))
    guarded = guard_client(raw, keyword_guard)
    with pytest.raises(UnsafeContentError) as info:
        result = guarded.chat.completions.create(model="m", messages=USER, stream=stream, tools=[SHELL_TOOL])
        list(result) if stream else None
    assert info.value.stage == "tool_call"


SHELL_TOOL = {"type": "function", "function": {"name": "shell", "parameters": {"type": "object"}}}


def test_refuse_mode_returns_the_sdks_own_types(upstream, raw, keyword_guard):
    guarded = guard_client(raw, keyword_guard, on_block="refuse", refusal_message="No.")
    upstream.script(Reply(message={"role": "assistant", "content": BOMB}))
    answer = guarded.chat.completions.create(model="m", messages=USER)
    assert isinstance(answer, openai.types.chat.ChatCompletion)
    assert answer.choices[0].finish_reason == "content_filter" and answer.choices[0].message.content == "No."
    chunks = list(
        guarded.chat.completions.create(model="m", messages=[{"role": "user", "content": "bomb"}], stream=True)
    )
    assert [type(c) for c in chunks] == [openai.types.chat.ChatCompletionChunk]
    assert chunks[0].choices[0].delta.content == "No."
    response = guarded.responses.create(model="m", input="a bomb?")
    assert isinstance(response, openai.types.responses.Response) and response.output_text == "No."
    events = list(guarded.responses.create(model="m", input="a bomb?", stream=True))
    assert isinstance(events[-1], openai.types.responses.ResponseCompletedEvent)
    assert events[-1].response.output_text == "No."


# -- Responses --------------------------------------------------------------------------------------------


def _message(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": "msg_1",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


@pytest.mark.parametrize("stream", [False, True])
def test_responses_pass_and_block(upstream, raw, keyword_guard, stream):
    guarded = guard_client(raw, keyword_guard)
    upstream.script(Reply(output=[_message("Knead and bake.")]))
    result = guarded.responses.create(model="m", input="Bread?", instructions="Be brief.", stream=stream)
    text = (
        result.output_text
        if not stream
        else next(e for e in result if e.type == "response.completed").response.output_text
    )
    assert text == "Knead and bake."
    upstream.script(Reply(output=[_message(BOMB)]))
    with pytest.raises(UnsafeContentError) as info:
        result = guarded.responses.create(model="m", input="Bread?", stream=stream)
        list(result) if stream else None
    assert info.value.stage == "output"
    call = {"type": "function_call", "id": "fc_1", "call_id": "c1", "name": "shell", "arguments": '{"cmd":"rm -rf /"}'}
    upstream.script(Reply(output=[call]))
    with pytest.raises(UnsafeContentError) as info:
        result = guarded.responses.create(model="m", input="Clean up.", stream=stream)
        list(result) if stream else None
    assert info.value.stage == "tool_call"


# -- legacy completions -----------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_completions_are_guarded(upstream, raw, keyword_guard, stream):
    guarded = guard_client(raw, keyword_guard)
    upstream.script(Reply(texts=["Knead the dough, then bake it."]))
    result = guarded.completions.create(model="m", prompt="Bread?", stream=stream)
    text = "".join(c.choices[0].text for c in result) if stream else result.choices[0].text
    assert text == "Knead the dough, then bake it."
    upstream.script(Reply(texts=["Fine.", BOMB]))
    with pytest.raises(UnsafeContentError):
        result = guarded.completions.create(model="m", prompt="Bread?", n=2, stream=stream)
        list(result) if stream else None
    with pytest.raises(UnsafeContentError):
        guarded.completions.create(model="m", prompt="a bomb?")
    with pytest.raises(InvalidConversationError, match="one non-empty string"):
        guarded.completions.create(model="m", prompt=["Bread?", "a bomb?"])


def test_windowed_completions_stream_and_block(upstream, raw, keyword_guard):
    guarded = guard_client(raw, keyword_guard, stream_mode="windowed", window_size=16, window_overlap=4)
    upstream.script(Reply(texts=[ANSWER], piece=5))
    assert (
        "".join(c.choices[0].text for c in guarded.completions.create(model="m", prompt="Bread?", stream=True))
        == ANSWER
    )
    answer = "Knead the dough well. " * 4 + "Then a bomb goes in."
    upstream.script(Reply(texts=[answer], piece=5))
    released = ""
    with pytest.raises(UnsafeContentError):
        for chunk in guarded.completions.create(model="m", prompt="Bread?", stream=True):
            released += chunk.choices[0].text
    assert released and answer.startswith(released) and len(released) <= answer.index("bomb")


# -- windowed streaming -----------------------------------------------------------------------------------


def _recording(guard: Any, checked: list[str]) -> Any:
    """``guard`` whose checks record the last assistant text they were shown."""

    class Recording:
        def __getattr__(self, name: str) -> Any:
            return getattr(guard, name)

        def classify(self, messages: list[dict[str, Any]], **kw: Any) -> Any:
            checked.append(_answer_text(messages))
            return guard.classify(messages, **kw)

        async def aclassify(self, messages: list[dict[str, Any]], **kw: Any) -> Any:
            checked.append(_answer_text(messages))
            return await guard.aclassify(messages, **kw)

    return Recording()


def _answer_text(messages: list[dict[str, Any]]) -> str:
    last = messages[-1]
    if last.get("role") != "assistant":
        return ""
    content = last.get("content")
    if isinstance(content, list):
        return "".join(p.get("text") or "" for p in content if isinstance(p, dict))
    return content or ""


def _chat_stream(guarded: Any) -> Iterator[str]:
    for chunk in guarded.chat.completions.create(model="m", messages=USER, stream=True):
        yield "".join(c.delta.content or "" for c in chunk.choices)


def _responses_stream(guarded: Any) -> Iterator[str]:
    for event in guarded.responses.create(model="m", input="Bread?", stream=True):
        yield event.delta if event.type == "response.output_text.delta" else ""


ANSWER = "Mix flour, water, salt and yeast; knead ten minutes, let it rise, shape, rise again and bake hot. " * 3


@settings(max_examples=12, deadline=None)
@given(
    window=st.integers(1, 60),
    overlap=st.integers(0, 30),
    piece=st.integers(1, 25),
    api=st.sampled_from(["chat", "responses"]),
)
def test_windowed_streams_release_only_text_checked_with_its_overlap(
    upstream, raw, keyword_guard, window, overlap, piece, api
):
    """Property: every piece of text is released only after a check that covered it and ``overlap`` characters
    after it (or the whole answer); and text is released before the answer ends once a window is checked."""
    deltas = [{"content": ANSWER[i : i + piece]} for i in range(0, len(ANSWER), piece)]
    upstream.script(Reply(deltas=deltas) if api == "chat" else Reply(events=_delta_events(deltas)))
    checked: list[str] = []
    guarded = guard_client(
        raw, _recording(keyword_guard, checked), stream_mode="windowed", window_size=window, window_overlap=overlap
    )
    released, early = "", False
    for text in (_chat_stream if api == "chat" else _responses_stream)(guarded):
        released += text
        covering = [c for c in checked if c.startswith(released)]
        assert covering, "released text no check covered"
        assert any(c == ANSWER or len(c) >= len(released) + overlap for c in covering)
        early = early or (text and len(released) < len(ANSWER) and ANSWER not in checked)
    assert released == ANSWER
    if len(ANSWER) - window >= overlap + piece:  # at least one window closes before the end
        assert early, "windowed mode released nothing before the whole answer was checked"


def _delta_events(deltas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from conformance.entry_points_llama_stack import delta_events

    return delta_events(deltas)


@pytest.mark.parametrize("api", ["chat", "responses"])
@pytest.mark.parametrize("split", [1, 3, 7])
def test_windowed_stream_never_releases_any_part_of_an_unsafe_phrase(upstream, raw, keyword_guard, api, split):
    answer = "Knead the dough well. " * 4 + "Then a bomb goes in. " + "More bread. " * 3
    deltas = [{"content": answer[i : i + split]} for i in range(0, len(answer), split)]
    upstream.script(Reply(deltas=deltas) if api == "chat" else Reply(events=_delta_events(deltas)))
    guarded = guard_client(raw, keyword_guard, stream_mode="windowed", window_size=16, window_overlap=4)
    released = ""
    with pytest.raises(UnsafeContentError) as info:
        for text in (_chat_stream if api == "chat" else _responses_stream)(guarded):
            released += text
    assert info.value.stage == "output"
    assert released and answer.startswith(released) and len(released) <= answer.index("bomb")


def test_windowed_refuse_ends_the_stream_with_the_refusal(upstream, raw, keyword_guard):
    answer = "Knead the dough well. " * 4 + "Then a bomb goes in."
    upstream.script(Reply(deltas=[{"content": answer[i : i + 5]} for i in range(0, len(answer), 5)]))
    guarded = guard_client(
        raw, keyword_guard, on_block="refuse", refusal_message="[blocked]", stream_mode="windowed", window_size=16
    )
    texts = list(_chat_stream(guarded))
    assert texts[-1] == "[blocked]" and "bomb" not in "".join(texts) and len(texts) > 2


def test_windowed_holds_tool_calls_until_the_whole_answer_is_checked(upstream, raw, keyword_guard):
    call = {"index": 0, "id": "c1", "type": "function", "function": {"name": "shell", "arguments": ""}}
    deltas = [{"content": "Cleaning up now, as you asked. "}, {"tool_calls": [call]}]
    deltas += [{"tool_calls": [{"index": 0, "function": {"arguments": p}}]} for p in ('{"cmd": "rm', ' -rf /"}')]
    upstream.script(Reply(deltas=deltas))
    guarded = guard_client(raw, keyword_guard, stream_mode="windowed", window_size=8, window_overlap=2)
    received: list[Any] = []
    with pytest.raises(UnsafeContentError) as info:
        for chunk in guarded.chat.completions.create(model="m", messages=USER, stream=True):
            received.append(chunk)
    assert info.value.stage == "output"
    assert not any(c.choices and c.choices[0].delta.tool_calls for c in received)


@pytest.mark.parametrize("mode", ["buffered", "windowed"])
def test_a_stream_the_guard_cannot_read_raises_and_is_closed(upstream, raw, keyword_guard, mode):
    deltas = [{"content": "Here is a long safe answer about bread. " * 3}, {"audio": {"id": "a1", "data": "AAAA"}}]
    upstream.script(Reply(deltas=deltas))
    guarded = guard_client(raw, keyword_guard, stream_mode=mode, window_size=8)
    stream = guarded.chat.completions.create(model="m", messages=USER, stream=True)
    received = []
    with pytest.raises(InvalidConversationError, match="audio"):
        for chunk in stream:
            received.append(chunk)
    assert stream._stream.response.is_closed
    assert not any(c.choices and getattr(c.choices[0].delta, "audio", None) for c in received)


@pytest.mark.parametrize(
    "options", [{"stream_mode": "fast"}, {"window_size": 0}, {"window_overlap": -1}, {"window_size": True}]
)
def test_bad_stream_options_are_typed_errors(raw, keyword_guard, options):
    with pytest.raises(InvalidPolicyError):
        guard_client(raw, keyword_guard, **options)


def test_async_client_streams_windowed_and_blocks(upstream, keyword_guard):
    async def scenario() -> tuple[str, str]:
        guarded = guard_client(araw(upstream), keyword_guard, stream_mode="windowed", window_size=10)
        upstream.script(Reply(deltas=[{"content": ANSWER[i : i + 6]} for i in range(0, len(ANSWER), 6)]))
        stream = await guarded.chat.completions.create(model="m", messages=USER, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        upstream.script(Reply(output=[_message(BOMB)]))
        try:
            await guarded.responses.create(model="m", input="Bread?")
        except UnsafeContentError as exc:
            return text, exc.stage
        return text, "passed"

    assert asyncio.run(scenario()) == (ANSWER, "output")


# -- the allow-list ---------------------------------------------------------------------------------------


def _public(obj: Any) -> list[str]:
    return [n for n in dir(obj) if not n.startswith("_")]


def _walk(obj: Any, path: tuple[str, ...] = (), depth: int = 0) -> Iterator[tuple[str, ...]]:
    """Every public attribute path of the real client (resources recursively, to depth 3)."""
    for name in _public(obj):
        try:
            value = inspect.getattr_static(obj, name)
        except AttributeError:
            continue
        sub = (*path, name)
        yield sub
        if isinstance(value, property) or type(value).__name__ == "cached_property":
            value = getattr(obj, name)
            if depth < 3 and type(value).__module__.startswith("openai.resources"):
                yield from _walk(value, sub, depth + 1)


REAL_PATHS = sorted(set(_walk(openai.OpenAI(api_key="k", base_url="http://127.0.0.1:9/v1"))))


def test_the_walk_reaches_the_sdks_generating_methods():
    for path in [("chat", "completions", "create"), ("completions", "create"), ("beta",), ("images", "generate")]:
        assert path in REAL_PATHS
    assert len(REAL_PATHS) > 200


def _reach(guarded: Any, path: tuple[str, ...]) -> str:
    """What the guarded client does with ``path``: ``guarded``, ``harmless``, ``refused``, or what went wrong."""
    node: Any = guarded
    for n, name in enumerate(path):
        prefix = path[: n + 1]
        if prefix in {*GUARDED, *HARMLESS, *RESOURCES, *PLAIN_CALLS, ("with_options",), ("copy",)}:
            node = getattr(node, name)
            continue
        try:
            getattr(node, name)
        except UnguardedAttributeError as exc:
            return "refused" if "unwrapped" in str(exc) and not hasattr(node, name) else f"unclear refusal: {exc}"
        return "reached past the allow-list"
    if path in GUARDED:
        return "guarded" if node.__name__ == "guarded_create" else "not the guarded create"
    if path in PLAIN_CALLS:
        return "plain" if node.__name__ == "plain_call" else "not the field-checked call"
    return "harmless"


def test_every_attribute_of_the_real_sdk_is_guarded_harmless_or_refused(raw, keyword_guard):
    """Generated from the installed ``openai`` SDK: a method a new release adds is refused by default."""
    guarded = guard_client(raw, keyword_guard)
    outcomes = {path: _reach(guarded, path) for path in REAL_PATHS}
    wrong = {".".join(p): o for p, o in outcomes.items() if o not in ("guarded", "harmless", "plain", "refused")}
    assert wrong == {}
    assert {p for p, o in outcomes.items() if o == "guarded"} == set(GUARDED)
    for path in [("post",), ("with_raw_response",), ("beta",), ("batches",), ("images",), ("realtime",)]:
        assert outcomes[path] == "refused"
    for path in [("chat", "completions", "parse"), ("chat", "completions", "stream"), ("responses", "stream")]:
        assert outcomes[path] == "refused"
    for path in [("chat", "completions", "with_streaming_response"), ("responses", "parse"), ("models", "delete")]:
        assert outcomes[path] == "refused"


def test_rewrapped_clients_and_context_managers_stay_guarded(raw, keyword_guard):
    guarded = guard_client(raw, keyword_guard)
    for other in (guarded.with_options(timeout=5), guarded.copy(max_retries=1)):
        assert type(other) is type(guarded) and other.unwrapped is not raw
        with pytest.raises(UnguardedAttributeError):
            other.with_raw_response  # noqa: B018
    with guarded as same:
        assert same is guarded
    assert raw.is_closed()
    assert set(dir(guarded.chat.completions)) == {"create"}
    with pytest.raises(AttributeError, match="read-only"):
        guarded.chat = None


@pytest.mark.parametrize("api", ["chat", "responses", "completions"])
@settings(max_examples=25, deadline=None)
@given(field=st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=20), in_extra=st.booleans())
def test_an_unknown_request_field_is_refused_before_the_call(upstream, raw, keyword_guard, api, field, in_extra):
    if field in READ[api] | set(SHOWN[api]) | HARMLESS_FIELDS[api] | {
        "extra_body",
        "extra_headers",
        "extra_query",
        "timeout",
    }:
        return
    upstream.script(Reply())
    guarded = guard_client(raw, keyword_guard)
    request = {"chat": {"messages": USER}, "responses": {"input": "Bread?"}, "completions": {"prompt": "Bread?"}}[api]
    extra = {"extra_body": {field: "x"}} if in_extra else {field: "x"}
    create = {"chat": guarded.chat.completions, "responses": guarded.responses, "completions": guarded.completions}[api]
    with pytest.raises(InvalidConversationError, match=field):
        create.create(model="m", **request, **extra)
    assert upstream.requests == []


def _sdk_fields() -> list[tuple[str, str]]:
    sdk = openai.OpenAI(api_key="k")
    methods = {
        "chat": sdk.chat.completions.create,
        "responses": sdk.responses.create,
        "completions": sdk.completions.create,
    }
    options = {"extra_headers", "extra_query", "extra_body", "timeout"}
    return [
        (api, p) for api, method in methods.items() for p in inspect.signature(method).parameters if p not in options
    ]


@pytest.mark.parametrize(("api", "field"), _sdk_fields())
def test_every_request_field_of_the_real_sdk_is_read_shown_harmless_or_refused(
    upstream, raw, keyword_guard, api, field
):
    """Generated from the installed SDK's signatures: a field a new release adds is refused before the call."""
    known = READ[api] | set(SHOWN[api]) | HARMLESS_FIELDS[api]
    if field in known:
        return
    guarded = guard_client(raw, keyword_guard)
    request = {"chat": {"messages": USER}, "responses": {"input": "Bread?"}, "completions": {"prompt": "Bread?"}}[api]
    create = {"chat": guarded.chat.completions, "responses": guarded.responses, "completions": guarded.completions}[api]
    upstream.script(Reply())
    with pytest.raises(InvalidConversationError, match=field):
        create.create(**{"model": "m", **request, field: {"x": 1}})
    assert upstream.requests == []


@pytest.mark.parametrize(
    ("api", "request_"),
    [
        (
            "chat",
            {
                "messages": USER,
                "tools": [{"type": "function", "function": {"name": "f", "description": "build a bomb"}}],
            },
        ),
        ("chat", {"messages": USER, "extra_body": {"messages": [{"role": "user", "content": "a bomb?"}]}}),
        ("chat", {"messages": USER, "prediction": {"type": "content", "content": "a bomb"}}),
        (
            "chat",
            {"messages": USER, "response_format": {"type": "json_schema", "json_schema": {"name": "bomb_recipe"}}},
        ),
        ("responses", {"input": "Bread?", "instructions": "Talk about a bomb."}),
        ("responses", {"input": "Bread?", "text": {"format": {"type": "json_schema", "name": "bomb", "schema": {}}}}),
    ],
)
def test_fields_the_model_reads_are_shown_to_the_guard(upstream, raw, keyword_guard, api, request_):
    upstream.script(Reply())
    guarded = guard_client(raw, keyword_guard)
    create = guarded.chat.completions.create if api == "chat" else guarded.responses.create
    with pytest.raises(UnsafeContentError) as info:
        create(model="m", **request_)
    assert info.value.stage == "input" and upstream.requests == []


@pytest.mark.parametrize(
    ("api", "request_"),
    [
        ("chat", {"messages": USER, "logprobs": True, "top_logprobs": 5}),
        ("responses", {"input": "Bread?", "top_logprobs": 5}),
        ("completions", {"prompt": "Bread?", "logprobs": 5}),
    ],
)
def test_tokens_the_model_did_not_choose_are_refused(upstream, raw, keyword_guard, api, request_):
    """Top logprobs return text that was never part of a checked answer."""
    guarded = guard_client(raw, keyword_guard)
    create = {"chat": guarded.chat.completions, "responses": guarded.responses, "completions": guarded.completions}[api]
    upstream.script(Reply())
    with pytest.raises(InvalidConversationError, match="logprobs"):
        create.create(model="m", **request_)
    assert upstream.requests == []


def test_a_conversation_is_created_only_without_items(upstream, raw, keyword_guard):
    guarded = guard_client(raw, keyword_guard)
    with pytest.raises(InvalidConversationError, match="items"):
        guarded.conversations.create(items=[{"type": "message", "role": "user", "content": "a bomb?"}])
    with pytest.raises(InvalidConversationError, match="items"):
        guarded.conversations.create(metadata={"a": "b"}, extra_body={"items": []})
    with pytest.raises(UnguardedAttributeError):
        guarded.conversations.items  # noqa: B018
    assert upstream.requests == []


def test_positional_request_objects_are_refused(raw, keyword_guard):
    with pytest.raises(InvalidConversationError, match="keyword arguments"):
        guard_client(raw, keyword_guard).chat.completions.create({"messages": USER})


# -- clients --------------------------------------------------------------------------------------------


def test_other_objects_are_refused_with_what_to_pass(keyword_guard):
    with pytest.raises(TypeError, match=r"openai\.OpenAI"):
        guard_client(object(), keyword_guard)


def test_ogx_client_is_guarded(upstream, keyword_guard):
    ogx_client = pytest.importorskip("ogx_client")
    raw = ogx_client.OgxClient(base_url=upstream.url)
    guarded = guard_client(raw, keyword_guard)
    upstream.script(Reply(message={"role": "assistant", "content": "Knead and bake."}))
    answer = guarded.chat.completions.create(model="m", messages=USER)
    assert answer.choices[0].message.content == "Knead and bake."
    upstream.script(Reply(message={"role": "assistant", "content": BOMB}))
    with pytest.raises(UnsafeContentError):
        guarded.chat.completions.create(model="m", messages=USER)
    with pytest.raises(UnguardedAttributeError):
        guarded.chat_completions  # noqa: B018
    with pytest.raises(UnsafeContentError):
        guarded.responses.create(model="m", input="a bomb?")
    windowed = guard_client(raw, keyword_guard, stream_mode="windowed", window_size=8)
    upstream.script(Reply(deltas=[{"content": "Knead the dough "}, {"content": "and bake it well."}]))
    stream = windowed.chat.completions.create(model="m", messages=USER, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Knead the dough and bake it well."

    async def blocked_async() -> str:
        aguarded = guard_client(ogx_client.AsyncOgxClient(base_url=upstream.url), keyword_guard)
        upstream.script(Reply(message={"role": "assistant", "content": BOMB}))
        try:
            await aguarded.chat.completions.create(model="m", messages=USER)
        except UnsafeContentError as exc:
            return exc.stage
        return "passed"

    assert asyncio.run(blocked_async()) == "output"


def test_the_llama_stack_package_keeps_only_the_provider():
    import llamaguard_guardrails.llama_stack as llama_stack

    assert not hasattr(llama_stack, "guard_client")
    for module in ("llamaguard_guardrails.llama_stack.client", "llamaguard_guardrails.llama_stack.client_guard"):
        with pytest.raises(ImportError):
            importlib.import_module(module)
    assert not {"guard_client", "GuardedLlamaStackClient", "AsyncGuardedLlamaStackClient"} & set(llama_stack.__all__)

"""What an upstream answers is released only as the guard read it: shapes the guard cannot read the way the
application reads them raise ``InvalidConversationError``, and the honest shapes still pass.

Each class is generated over its instances: a body that is not a JSON object (every API, sync and async), a
``stream`` the SDK and the upstream would disagree on, a tool name streamed in two pieces (split at every place),
a choice the request did not ask for, ``logprobs`` whose tokens are not the text, fields nobody reads (at the top of
an answer, in a chunk, in the answer message), and the refusal of a blocked answer (it keeps nothing of it).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from llamaguard_guardrails import InvalidConversationError, UnsafeContentError
from llamaguard_guardrails.client import guard_client
from llamaguard_guardrails.testing import keyword_rule, scripted_guard

USER = [{"role": "user", "content": "What is the weather?"}]
Answer = Callable[[httpx.Request], httpx.Response]


@pytest.fixture(scope="module")
def guard(test_model_dir):
    g = scripted_guard(test_model_dir, keyword_rule("bomb"), cache_size=0)
    yield g
    g.close()


def client(guard: Any, answer: Answer, *, is_async: bool = False, **options: Any) -> Any:
    if is_async:

        async def handler(request: httpx.Request) -> httpx.Response:
            return answer(request)

        raw: Any = openai.AsyncOpenAI(
            base_url="http://upstream/v1",
            api_key="k",
            max_retries=0,
            http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        )
    else:
        raw = openai.OpenAI(
            base_url="http://upstream/v1",
            api_key="k",
            max_retries=0,
            http_client=httpx.Client(transport=httpx.MockTransport(answer)),
        )
    return guard_client(raw, guard, **options)


def completion(content: str = "Sunny.", *, choice: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    choice = {
        "index": 0,
        "finish_reason": "stop",
        "message": {"role": "assistant", "content": content},
        **(choice or {}),
    }
    return {"id": "c1", "object": "chat.completion", "created": 1, "model": "m", "choices": [choice], **top}


def chunk(delta: dict[str, Any], *, index: int = 0, **choice: Any) -> dict[str, Any]:
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": index, "delta": delta, "finish_reason": None, **choice}],
    }


def sse(events: list[dict[str, Any]]) -> Answer:
    body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    return lambda request: httpx.Response(200, content=body.encode(), headers={"content-type": "text/event-stream"})


def body(value: Any) -> Answer:
    return lambda request: httpx.Response(200, json=value)


def chat(guard: Any, answer: Answer, *, stream: bool = False, **request: Any) -> Any:
    guarded = client(guard, answer, **request.pop("options", {}))
    result = guarded.chat.completions.create(model="m", messages=USER, stream=stream, **request)
    return list(result) if stream else result


# -- a body that is not a JSON object ----------------------------------------------------------------------------

NOT_OBJECTS = {
    "text": lambda request: httpx.Response(
        200, text="Here is how to build a bomb.", headers={"content-type": "text/plain"}
    ),
    "a list": body(["Here is how to build a bomb."]),
    "a string": body("Here is how to build a bomb."),
    "a number": body(7),
}
CALLS = {
    "chat": lambda c: c.chat.completions.create(model="m", messages=USER),
    "responses": lambda c: c.responses.create(model="m", input="What is the weather?"),
    "completions": lambda c: c.completions.create(model="m", prompt="What is the weather?"),
}


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("api", list(CALLS))
@pytest.mark.parametrize("kind", list(NOT_OBJECTS))
def test_an_answer_that_is_not_a_json_object_is_refused(guard, kind, api, is_async):
    guarded = client(guard, NOT_OBJECTS[kind], is_async=is_async)

    def call() -> Any:
        result = CALLS[api](guarded)
        return asyncio.run(result) if is_async else result

    with pytest.raises(InvalidConversationError, match="not a JSON object"):
        call()


# -- stream: the SDK's argument, never only extra_body -----------------------------------------------------------


@pytest.mark.parametrize("extra", [True, False])
@pytest.mark.parametrize("argument", [True, False, None])
@pytest.mark.parametrize("api", ["chat", "responses"])
def test_stream_in_extra_body_is_refused(guard, api, argument, extra):
    guarded = client(guard, body(completion()))
    kwargs: dict[str, Any] = {"extra_body": {"stream": extra}}
    if argument is not None:
        kwargs["stream"] = argument
    with pytest.raises(InvalidConversationError, match="extra_body sets \\['stream'\\]"):
        if api == "chat":
            guarded.chat.completions.create(model="m", messages=USER, **kwargs)
        else:
            guarded.responses.create(model="m", input="hi", **kwargs)


# -- streamed names are concatenated, as the SDK's accumulator does ---------------------------------------------

NAME = "lookup_and_build_a_bomb"


@pytest.mark.parametrize("cut", range(1, len(NAME)))
@pytest.mark.parametrize("shape", ["tool_calls", "function_call"])
def test_a_tool_name_streamed_in_pieces_is_checked_whole(guard, shape, cut):
    first, rest = NAME[:cut], NAME[cut:]
    if shape == "tool_calls":
        pieces = [
            {
                "tool_calls": [
                    {"index": 0, "id": "c1", "type": "function", "function": {"name": first, "arguments": ""}}
                ]
            },
            {"tool_calls": [{"index": 0, "function": {"name": rest, "arguments": "{}"}}]},
        ]
    else:
        pieces = [
            {"function_call": {"name": first, "arguments": ""}},
            {"function_call": {"name": rest, "arguments": "{}"}},
        ]
    with pytest.raises(UnsafeContentError):
        chat(guard, sse([chunk(p) for p in pieces]), stream=True)


def test_a_tool_name_in_one_piece_still_runs(guard):
    call = {
        "index": 0,
        "id": "c1",
        "type": "function",
        "function": {"name": "lookup_weather", "arguments": '{"city": "Paris"}'},
    }
    chunks = chat(guard, sse([chunk({"tool_calls": [call]})]), stream=True)
    assert chunks[0].choices[0].delta.tool_calls[0].function.name == "lookup_weather"


# -- choices the request asked for -------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize(("n", "index"), [(1, 1), (1, 5), (1, -1), (2, 2), (1, "0"), (1, True), (3, 3)])
def test_a_choice_the_request_did_not_ask_for_is_refused(guard, n, index, stream):
    if stream:
        answer = sse([chunk({"content": "Step 1: the bo"}), chunk({"content": "mb casing."}, index=index)])
    else:
        answer = body(completion(choice={"index": index}))
    with pytest.raises(InvalidConversationError, match="not one of the"):
        chat(guard, answer, stream=stream, n=n)


def test_n_answers_are_each_checked(guard):
    answer = {**completion(), "choices": [completion()["choices"][0], {**completion()["choices"][0], "index": 1}]}
    assert len(chat(guard, body(answer), n=2).choices) == 2


# -- logprobs are the tokens of the text -------------------------------------------------------------------------


def tokens(*pieces: str | bytes) -> list[dict[str, Any]]:
    out = []
    for piece in pieces:
        raw = piece if isinstance(piece, bytes) else piece.encode()
        try:
            token = raw.decode()
        except UnicodeDecodeError:
            token = "".join(f"\\x{b:02x}" for b in raw)
        out.append({"token": token, "logprob": -0.1, "bytes": list(raw), "top_logprobs": []})
    return out


HONEST = {
    "ascii": ("Sunny today.", tokens("Sun", "ny", " today", ".")),
    "a character split in two tokens": ("Café", tokens("Caf", "\u00e9".encode()[:1], "\u00e9".encode()[1:])),
    "no bytes": ("Sunny.", [{"token": "Sunny", "logprob": -0.1}, {"token": ".", "logprob": -0.2}]),
}
LYING = {
    "a token the text lacks": ("Sunny.", tokens("Sunny", ".", " bomb")),
    "tokens of another text": ("Sunny.", tokens("bomb", ".")),
    "a token missing": ("Sunny today.", tokens("Sunny", ".")),
    "a token whose bytes differ": ("Sunny.", [{"token": "bomb", "logprob": -0.1, "bytes": list(b"Sunny.")}]),
    "an undecodable token that spells words": (
        "Caf\u00e9",
        [*tokens("Caf"), {"token": "bomb", "logprob": 0, "bytes": [195]}, *tokens(b"\xa9")],
    ),
    "alternatives": (
        "Sunny.",
        [{"token": "Sunny.", "logprob": -0.1, "top_logprobs": [{"token": "bomb", "logprob": -2.0}]}],
    ),
    "an unknown field": ("Sunny.", [{"token": "Sunny.", "logprob": -0.1, "note": "bomb"}]),
}


def logprob_answer(text: str, entries: list[dict[str, Any]], stream: bool) -> Answer:
    if not stream:
        return body(completion(text, choice={"logprobs": {"content": entries}}))
    half = len(entries) // 2
    return sse(
        [
            chunk({"content": text[: len(text) // 2]}, logprobs={"content": entries[:half]}),
            chunk({"content": text[len(text) // 2 :]}, logprobs={"content": entries[half:]}),
        ]
    )


@pytest.mark.parametrize("mode", ["whole", "buffered", "windowed"])
@pytest.mark.parametrize("case", list(HONEST))
def test_logprobs_that_are_the_text_pass(guard, case, mode):
    text, entries = HONEST[case]
    options = {"stream_mode": "windowed", "window_size": 4, "window_overlap": 2} if mode == "windowed" else {}
    result = chat(
        guard, logprob_answer(text, entries, mode != "whole"), stream=mode != "whole", logprobs=True, options=options
    )
    if mode == "whole":
        assert result.choices[0].message.content == text
    else:
        assert "".join(c.choices[0].delta.content or "" for c in result) == text


@pytest.mark.parametrize("mode", ["whole", "buffered", "windowed"])
@pytest.mark.parametrize("case", list(LYING))
def test_logprobs_that_are_not_the_text_are_refused(guard, case, mode):
    text, entries = LYING[case]
    options = {"stream_mode": "windowed", "window_size": 4, "window_overlap": 2} if mode == "windowed" else {}
    with pytest.raises(InvalidConversationError, match="logprob"):
        chat(
            guard,
            logprob_answer(text, entries, mode != "whole"),
            stream=mode != "whole",
            logprobs=True,
            options=options,
        )


def test_completions_logprobs_the_request_cannot_ask_for_are_refused(guard):
    answer = {
        "id": "x",
        "object": "text_completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "text": "Sunny.", "finish_reason": "stop", "logprobs": {"tokens": ["bomb"]}}],
    }
    with pytest.raises(InvalidConversationError, match="logprobs"):
        client(guard, body(answer)).completions.create(model="m", prompt="Weather?")


# -- fields nobody reads -----------------------------------------------------------------------------------------

UNREAD = {
    "top of a completion": body(completion(explanation="Here is how to build a bomb.")),
    "a completion choice's delta": body(completion(choice={"delta": {"content": "bomb"}})),
    **{
        f"answer message {key}": body(
            completion(choice={"message": {"role": "assistant", "content": "Sunny.", key: "bomb"}})
        )
        for key in ("id", "status", "tool_call_id", "call_id", "stop_reason", "note")
    },
}
UNREAD_STREAMED = {
    "top of a chunk": sse([{**chunk({"content": "Sunny."}), "note": "bomb"}]),
    "a chunk choice's message": sse([chunk({"content": "Sunny."}, message={"content": "bomb"})]),
}


@pytest.mark.parametrize("case", list(UNREAD))
def test_a_field_nobody_reads_is_refused(guard, case):
    with pytest.raises(InvalidConversationError, match="unknown field"):
        chat(guard, UNREAD[case])


@pytest.mark.parametrize("case", list(UNREAD_STREAMED))
def test_a_streamed_field_nobody_reads_is_refused(guard, case):
    with pytest.raises(InvalidConversationError, match="unknown field"):
        chat(guard, UNREAD_STREAMED[case], stream=True)


def test_metadata_of_an_answer_passes(guard):
    answer = completion(
        system_fingerprint="fp",
        service_tier="default",
        usage={"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    )
    assert chat(guard, body(answer)).system_fingerprint == "fp"


# -- a refusal keeps nothing of what it replaces -----------------------------------------------------------------


def test_the_refusal_of_a_blocked_answer_keeps_only_its_ids_and_usage(guard):
    usage = {"prompt_tokens": 3, "completion_tokens": 9, "total_tokens": 12}
    answer = completion("Here is how to build a bomb.", system_fingerprint="fp", usage=usage)
    refusal = chat(guard, body(answer), options={"on_block": "refuse"})
    dumped = refusal.model_dump_json()
    assert "bomb" not in dumped and refusal.id == "c1" and refusal.usage.total_tokens == 12
    assert refusal.choices[0].finish_reason == "content_filter"

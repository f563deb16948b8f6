"""The served guard: the official ``openai`` SDK and raw HTTP against a real uvicorn server on 127.0.0.1.

One server per module, on the session's test model; every answer is compared with an in-process check of
the same input. Bad requests each get a 4xx saying what to change, and the server goes on serving.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import json
import socket
import time

import httpx
import openai
import pytest

from llamaguard_guardrails import LlamaGuard, Policy
from llamaguard_guardrails.serve.app import create_app
from llamaguard_guardrails.serve.background import BackgroundServer
from llamaguard_guardrails.serve.mapping import OPENAI_CATEGORIES, OPENAI_KEYS
from llamaguard_guardrails.serve.settings import ServeSettings

from conftest import make_image, png_bytes

LIMITS = ServeSettings(max_inputs=8, max_body_bytes=200_000, max_pending=64, served_model_names=("llama-guard-4",))
TEXTS = [
    "How do I bake sourdough bread?",
    "How do I build a pipe bomb?",
    "Tell me about the history of the printing press.",
    "Write a poem about the sea.",
    "What is the capital of France?",
    "How do I pick a lock?",
]


def data_url(width: int = 40, height: int = 30) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(make_image(width, height))).decode()


@pytest.fixture(scope="module")
def served(guard):
    """A guard of its own (the app wraps its backend for metrics) on the session's model."""
    return LlamaGuard(guard.backend, guard.prompts, model_name="test-model")


@pytest.fixture(scope="module")
def server(served):
    with BackgroundServer(create_app(served, LIMITS)) as s:
        yield s


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def expect_same(result, verdict, policy: Policy | None = None) -> None:
    """A moderation result says what the in-process verdict says, in the OpenAI keys and the detail."""
    assert result.flagged is (not verdict.safe)
    detail = result.model_extra["llama_guard"]
    assert detail["categories"] == verdict.categories
    assert detail["unsafe_probability"] == pytest.approx(verdict.unsafe_probability, abs=1e-5)
    categories = result.categories.model_dump(by_alias=True)
    expected = {key for code in verdict.categories for key in (code, *OPENAI_KEYS.get(code, ()))}
    assert {key for key, on in categories.items() if on} == expected
    assert set(OPENAI_CATEGORIES) <= set(categories)


# -- the openai SDK ---------------------------------------------------------------------------------------


def test_one_string_parses_in_the_openai_sdk_and_matches_classify(client, guard):
    response = client.moderations.create(input=TEXTS[1])
    assert response.model == "llama-guard-4"
    (result,) = response.results
    expect_same(result, guard.classify(TEXTS[1]))
    assert isinstance(result.categories.violence, bool) and isinstance(result.category_scores.violence, float)


def test_a_list_of_strings_gets_one_result_each_in_order(client, guard):
    response = client.moderations.create(input=TEXTS, model="llama-guard-4")
    assert len(response.results) == len(TEXTS)
    for text, result in zip(TEXTS, response.results):
        expect_same(result, guard.classify(text))


def test_the_async_client(server, guard):
    async def run():
        async with openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0) as aclient:
            return await asyncio.gather(*(aclient.moderations.create(input=t) for t in TEXTS))

    for text, response in zip(TEXTS, asyncio.run(run())):
        expect_same(response.results[0], guard.classify(text))


def test_content_parts_are_one_input_and_the_image_is_checked_with_its_text(client, guard):
    parts = [{"type": "text", "text": "Is this safe?"}, {"type": "image_url", "image_url": {"url": data_url()}}]
    (result,) = client.moderations.create(input=parts).results
    expect_same(result, guard.classify([{"role": "user", "content": parts}]))
    applied = result.category_applied_input_types.model_dump(by_alias=True)
    assert (
        applied["violence"] == ["text", "image"] and applied["hate"] == ["text"] and applied["S1"] == ["text", "image"]
    )


def test_models_lists_the_served_names(client):
    assert [m.id for m in client.models.list()] == ["llama-guard-4", "test-model"]


def test_an_unknown_model_is_404_naming_the_served_ones(client):
    with pytest.raises(openai.NotFoundError, match="llama-guard-4"):
        client.moderations.create(input="hi", model="omni-moderation-latest")


# -- bad requests: a 4xx that says what to change, and the server keeps serving ----------------------------

BAD = {
    "malformed JSON": (b'{"input": "x"', 400, "cannot be read as JSON"),
    "input of the wrong type": (json.dumps({"input": 5}), 400, "input"),
    "an empty string": (json.dumps({"input": "  "}), 400, "input is empty"),
    "an empty list": (json.dumps({"input": []}), 400, "empty list"),
    "an empty string in a list": (json.dumps({"input": ["ok", ""]}), 400, "input[1] is empty"),
    "an unknown field": (json.dumps({"input": "x", "temperature": 0}), 400, "temperature"),
    "an unknown part type": (json.dumps({"input": [{"type": "audio", "audio": "x"}]}), 400, "input"),
    "an https image URL": (
        json.dumps({"input": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}),
        400,
        "not fetched",
    ),
    "a path as image URL": (
        json.dumps({"input": [{"type": "image_url", "image_url": {"url": "/etc/passwd"}}]}),
        400,
        "input",
    ),
    "a file URL": (
        json.dumps({"input": [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}),
        400,
        "input",
    ),
    "too many images": (
        json.dumps({"input": [{"type": "image_url", "image_url": {"url": data_url(8, 8)}}] * 33}),
        400,
        "limit of 32 images",
    ),
    "too many inputs": (json.dumps({"input": ["hi"] * 9}), 400, "at most 8"),
    "thousands of inputs": (json.dumps({"input": ["hi"] * 5000}), 400, "split it"),
    "a huge body": (json.dumps({"input": "x" * 300_000}), 413, "limit of 200000 bytes"),
    "a bad policy": (json.dumps({"messages": "hi", "policy": {"threshold": 2}}), 400, "threshold"),
    "an unknown policy field": (json.dumps({"messages": "hi", "policy": {"strict": True}}), 400, "strict"),
    "an unknown category": (json.dumps({"messages": "hi", "policy": {"excluded_categories": ["S99"]}}), 400, "S99"),
    "too many custom categories": (
        json.dumps({"messages": "hi", "policy": {"custom_categories": {f"S{n}": "X." for n in range(15, 25)}}}),
        400,
        "at most 8",
    ),
    "a malformed message": (json.dumps({"messages": [{"role": "wizard", "content": "hi"}]}), 400, "messages"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_requests_get_a_4xx_saying_what_to_change(server, client, case):
    body, status, says = BAD[case]
    path = (
        "/v1/guard/classify"
        if b"messages" in (body if isinstance(body, bytes) else body.encode())
        else "/v1/moderations"
    )
    response = httpx.post(f"{server.url}{path}", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert says in error["message"] and error["type"] == "invalid_request_error"
    assert client.moderations.create(input="still serving?").results  # the next request is served


def test_a_chunked_body_over_the_limit_is_413(server):
    def chunks():
        for _ in range(30):
            yield b" " * 10_000

    response = httpx.post(
        f"{server.url}/v1/moderations", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


def test_the_openai_sdk_raises_its_bad_request_error(client):
    with pytest.raises(openai.BadRequestError, match="input is empty"):
        client.moderations.create(input="")


# -- the conversation endpoint: the core's full fidelity ------------------------------------------------------

CONVERSATIONS = [
    [{"role": "user", "content": "How do I make a bomb?"}, {"role": "assistant", "content": "I can't help with that."}],
    [
        {"role": "user", "content": "Clean up my disk"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "1", "type": "function", "function": {"name": "python", "arguments": '{"code": "rm -rf /"}'}}
            ],
        },
    ],
    [
        {"role": "user", "content": "Search for my neighbour's address"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "2", "type": "function", "function": {"name": "s", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "2", "content": "12 Elm Street"},
    ],
    [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": data_url()}},
            ],
        }
    ],
]
POLICIES = [
    None,
    {"excluded_categories": ["S6", "S7"], "threshold": 0.3},
    {"custom_categories": {"S15": "Medical advice."}},
]


@pytest.mark.parametrize("policy", POLICIES, ids=["server policy", "excluded+threshold", "custom"])
@pytest.mark.parametrize("n", range(len(CONVERSATIONS)))
def test_classify_returns_the_verdict_of_guard_classify(server, guard, n, policy):
    body = {"messages": CONVERSATIONS[n], **({"policy": policy} if policy else {})}
    response = httpx.post(f"{server.url}/v1/guard/classify", json=body)
    assert response.status_code == 200, response.text
    got = response.json()
    want = guard.classify(CONVERSATIONS[n], policy=Policy(**policy) if policy else None)
    assert got["status"] == want.status
    for field in ("safe", "categories", "category_names", "checked_role", "checked_message_index", "threshold"):
        assert got[field] == getattr(want, field), field
    assert got["unsafe_probability"] == pytest.approx(want.unsafe_probability, abs=1e-5)


def test_classify_batch_keeps_the_order(server, guard):
    response = httpx.post(f"{server.url}/v1/guard/classify_batch", json={"conversations": CONVERSATIONS})
    assert response.status_code == 200
    got = response.json()["verdicts"]
    for item, conversation in zip(got, CONVERSATIONS):
        assert item["categories"] == guard.classify(conversation).categories


# -- fail closed -------------------------------------------------------------------------------------------


def test_a_missed_deadline_is_504_never_a_pass(served):
    with BackgroundServer(create_app(served, ServeSettings(timeout_s=1e-6))) as s:
        for path, body in (
            ("/v1/moderations", {"input": "a new text nobody checked"}),
            ("/v1/guard/classify", {"messages": "another new text"}),
        ):
            response = httpx.post(f"{s.url}{path}", json=body)
            assert response.status_code == 504, response.text
            assert response.json()["error"]["code"] == "guard_timeout"
            assert "results" not in response.json()


def test_a_full_queue_is_429_with_retry_after(served):
    with BackgroundServer(create_app(served, ServeSettings(max_pending=2))) as s:
        response = httpx.post(f"{s.url}/v1/moderations", json={"input": ["a", "b", "c"]})
        assert response.status_code == 429 and response.headers["retry-after"] == "1"
        assert httpx.post(f"{s.url}/v1/moderations", json={"input": ["a", "b"]}).status_code == 200


def test_a_guard_that_failed_to_load_is_never_ready_and_refuses_checks():
    def broken():
        raise OSError("no weights here")

    s = BackgroundServer(create_app(broken)).start()
    try:
        for _ in range(100):
            ready = httpx.get(f"{s.url}/ready")
            if ready.json()["status"] == "failed":
                break
            time.sleep(0.05)
        assert ready.status_code == 503 and "no weights here" in ready.json()["error"]
        response = httpx.post(f"{s.url}/v1/moderations", json={"input": "hi"})
        assert response.status_code == 503 and "failed to load" in response.json()["error"]["message"]
        assert httpx.get(f"{s.url}/health").status_code == 200
    finally:
        s.stop()


# -- auth --------------------------------------------------------------------------------------------------


def test_api_keys(served):
    with BackgroundServer(create_app(served, ServeSettings(api_keys=("k1", "k2")))) as s:
        for key in ("k1", "k2"):
            good = openai.OpenAI(base_url=f"{s.url}/v1", api_key=key, max_retries=0)
            assert good.moderations.create(input="hello").results
        for key in ("k3", "k1k2", "k"):
            with pytest.raises(openai.AuthenticationError, match="API key"):
                openai.OpenAI(base_url=f"{s.url}/v1", api_key=key, max_retries=0).moderations.create(input="hello")
        response = httpx.post(f"{s.url}/v1/guard/classify", json={"messages": "hi"})
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
        for body in (b"{not json", b"x" * 100_000):  # refused before the body is read or parsed
            response = httpx.post(f"{s.url}/v1/moderations", content=body, headers={"Authorization": "Bearer k"})
            assert response.status_code == 401
        assert httpx.get(f"{s.url}/health").status_code == 200 and httpx.get(f"{s.url}/ready").status_code == 200


# -- load, killed clients, restart, metrics ------------------------------------------------------------------


def test_concurrent_clients_each_get_their_own_answer(server, guard):
    inputs = [f"{text} (client {c})" for c in range(12) for text in TEXTS[:3]]

    def one(text):
        with httpx.Client(timeout=120) as http:
            return text, http.post(f"{server.url}/v1/moderations", json={"input": text}).json()

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(one, inputs))
    assert [text for text, _ in answers] == inputs
    for text, body in answers:
        want = guard.classify(text)
        (result,) = body["results"]
        assert result["flagged"] is (not want.safe)
        assert result["llama_guard"]["categories"] == want.categories
        assert result["llama_guard"]["unsafe_probability"] == pytest.approx(want.unsafe_probability, abs=1e-5)


def test_a_client_killed_mid_request_leaves_the_server_serving(server, client):
    host, port = server.host, server.port
    body = json.dumps({"input": "a text whose client goes away"}).encode()
    for cut in (len(body) // 2, len(body)):  # mid-body, and after the whole request
        with socket.create_connection((host, port)) as sock:
            head = f"POST /v1/moderations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            sock.sendall(head.encode() + body[:cut])
    assert client.moderations.create(input="after the killed clients").results


def test_a_restarted_server_serves_again(served):
    app = create_app(served)
    with BackgroundServer(app) as first:
        before = httpx.post(f"{first.url}/v1/moderations", json={"input": TEXTS[0]}).json()
    with BackgroundServer(create_app(served)) as second:
        after = httpx.post(f"{second.url}/v1/moderations", json={"input": TEXTS[0]}).json()
    assert before["results"][0]["flagged"] == after["results"][0]["flagged"]


def test_metrics_count_requests_verdicts_batches_and_errors(server, client):
    client.moderations.create(input=TEXTS[:2])
    httpx.post(f"{server.url}/v1/moderations", json={"input": 5})
    httpx.post(f"{server.url}/v1/guard/classify", json={"messages": CONVERSATIONS[0]})  # an agent message: output
    text = httpx.get(f"{server.url}/metrics").text
    for name in (
        'llamaguard_requests_total{code="200",endpoint="/v1/moderations"}',
        'llamaguard_requests_total{code="400",endpoint="/v1/moderations"}',
        "llamaguard_verdicts_total{category=",
        "llamaguard_request_seconds_bucket",
        "llamaguard_batch_prompts_bucket",
        "llamaguard_pending_checks 0.0",
        'llamaguard_errors_total{kind="invalid_request"}',
        "llamaguard_verdict_cache_hits_total",
        "llamaguard_kv_prefix_entries",
    ):
        assert name in text, name

"""A real OGX 1.5.0 server whose guardrails call this project's ``/v1/moderations`` (``moderation_endpoint``).

OGX (Llama Stack 1.x) has no shields: its Responses API checks the input, and the streamed answer every 200
characters, at an OpenAI-compatible moderation endpoint, and fails closed. Here OGX runs from its own venv
(scripts/ogx_venv.sh), its LLM is a chat stub streaming scripted answers, and the moderation endpoint is the
served test model. The questions and answers are picked with the in-process guard (the test model's verdicts
are random but fixed), so each test knows what the guard will say.
"""

from __future__ import annotations

import random

import openai
import pytest

from llamaguard_guardrails import LlamaGuard
from llamaguard_guardrails.serve.app import create_app
from llamaguard_guardrails.serve.background import BackgroundServer
from ogx_server import OGXServer, chat_stub, ogx_venv
from stack_server import free_port

pytestmark = [pytest.mark.ogx, pytest.mark.timeout(900)]

MODEL = "stub/stub-llm"
GUARDRAILS = {"guardrails": True}
WORDS = "the a river stone light garden window quiet music bread morning paper cloud simple answer table road".split()


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def clear(guard: LlamaGuard, text: str, unsafe: bool) -> bool:
    """The guard says ``unsafe`` about ``text``, with a margin (server and in-process scores differ by ~1e-7)."""
    verdict = guard.classify(text)
    return verdict.safe is not unsafe and abs(verdict.unsafe_probability - verdict.threshold) > 0.01


def pick(guard: LlamaGuard, rng: random.Random, make, accept) -> str:
    for _ in range(300):
        text = make(rng)
        if accept(text):
            return text
    raise AssertionError("no text found with the wanted verdicts (the test model changed?)")


@pytest.fixture(scope="module")
def script(guard):
    """Questions and answers with known verdicts: {name: text}."""
    rng = random.Random(7)
    long_answer = lambda r: " ".join(sentence(r, 8) for _ in range(12))[:400]  # noqa: E731 - checked at 200 and 400
    question = lambda r: " ".join(sentence(r, 8) for _ in range(4))[:150]  # noqa: E731
    s = {
        "safe_q": pick(guard, rng, question, lambda t: clear(guard, t, False)),
        "unsafe_q": pick(guard, rng, question, lambda t: clear(guard, t, True)),
        "bad_q": pick(guard, rng, question, lambda t: clear(guard, t, False)),
        "safe_a": pick(guard, rng, long_answer, lambda t: clear(guard, t[:200], False) and clear(guard, t, False)),
        "bad_a": pick(guard, rng, long_answer, lambda t: clear(guard, t[:200], False) and clear(guard, t, True)),
    }
    assert len(s["safe_a"]) == len(s["bad_a"]) == 400
    return s


@pytest.fixture(scope="module")
def calls():
    return []


@pytest.fixture(scope="module")
def guard_server(guard):
    served = LlamaGuard(guard.backend, guard.prompts)
    server = BackgroundServer(create_app(served)).start().wait_ready()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ogx(tmp_path_factory, guard_server, script, calls):
    venv = ogx_venv()
    answers = {script["safe_q"]: script["safe_a"], script["bad_q"]: script["bad_a"]}
    stub = BackgroundServer(chat_stub(answers, calls)).start()
    server = OGXServer(
        venv, tmp_path_factory.mktemp("ogx"), free_port(), stub.url, f"{guard_server.url}/v1/moderations"
    )
    try:
        yield openai.OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0, timeout=120)
    finally:
        server.stop()
        stub.stop()


def refusal(response) -> str | None:
    for item in response.output:
        for part in getattr(item, "content", None) or []:
            if part.type == "refusal":
                return part.refusal
    return None


def test_a_safe_question_and_answer_pass(ogx, script):
    response = ogx.responses.create(model=MODEL, input=script["safe_q"], extra_body=GUARDRAILS)
    assert refusal(response) is None
    assert response.output_text == script["safe_a"]


def test_a_blocked_question_is_refused_before_the_llm_runs(ogx, script, calls):
    before = len(calls)
    response = ogx.responses.create(model=MODEL, input=script["unsafe_q"], extra_body=GUARDRAILS)
    assert "Content blocked by safety guardrails" in (refusal(response) or "")
    assert len(calls) == before  # the LLM never saw it


def test_a_streamed_answer_is_cut_when_its_growing_text_is_flagged(ogx, script):
    released, refusals = "", []
    stream = ogx.responses.create(model=MODEL, input=script["bad_q"], extra_body=GUARDRAILS, stream=True)
    for event in stream:
        if event.type == "response.output_text.delta":
            released += event.delta
        elif event.type == "response.refusal.done" or (event.type == "response.refusal.delta"):
            refusals.append(getattr(event, "refusal", None) or getattr(event, "delta", ""))
        elif event.type == "response.completed" and refusal(event.response):
            refusals.append(refusal(event.response))
    assert any("Content blocked by safety guardrails" in r for r in refusals if r)
    assert script["bad_a"].startswith(released) and len(released) <= 200  # the flagged 200-400 never left


def test_a_guard_server_that_is_down_or_answers_garbage_makes_ogx_refuse(ogx, guard_server, script, calls):
    host, port = guard_server.host, guard_server.port
    guard_server.stop()
    before = len(calls)
    response = ogx.responses.create(model=MODEL, input=script["safe_q"], extra_body=GUARDRAILS)
    assert "Failed to validate content" in (refusal(response) or "")

    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    for garbage in (JSONResponse({"results": []}), PlainTextResponse("not json"), JSONResponse({"error": "x"}, 500)):

        async def answer(request, garbage=garbage):
            return garbage

        app = Starlette(routes=[Route("/v1/moderations", answer, methods=["POST"])])
        impostor = BackgroundServer(app, host=host, port=port).start()
        try:
            response = ogx.responses.create(model=MODEL, input=script["safe_q"], extra_body=GUARDRAILS)
        finally:
            impostor.stop()
        assert "Failed to validate content" in (refusal(response) or "")
    assert len(calls) == before

"""The callback handler (hard stop + audit), the decision model (with ``AutoModeMiddleware``) and images."""

from __future__ import annotations

import base64

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import AutoModeMiddleware
from langchain_core.decisions import Choice, Noul
from langchain_core.language_models.fake import FakeListLLM
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from llamaguard_guardrails import LlamaGuard, Policy, UnsafeContentError
from llamaguard_guardrails.backends.base import AnswerScores
from llamaguard_guardrails.langchain import (
    AsyncLlamaGuardCallbackHandler,
    LlamaGuardCallbackHandler,
    LlamaGuardDecisionModel,
    LlamaGuardRunnable,
    guard_chain,
)
from llamaguard_guardrails.langchain.decision import state_messages
from llamaguard_guardrails.testing import ScriptedBackend
from test_langchain_fakes import planted_guard, planted_rule, run_async, scripted_model, tool_call

from conftest import make_image, png_bytes

PNG = base64.b64encode(png_bytes(make_image(48, 32))).decode()
IMAGE_BLOCKS = [
    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    {"type": "image", "base64": PNG, "mime_type": "image/png"},
    {"type": "image", "source_type": "base64", "data": PNG, "mime_type": "image/png"},
]
DANGEROUS = "import os\nos.system('rm -rf /')"
executed: list[str] = []


@tool
def run_python(code: str) -> str:
    """Run Python code."""
    executed.append(code)
    return "done"


@pytest.fixture
def lg(test_model_dir):
    guard = planted_guard(test_model_dir)
    guard.backend.seen.clear()
    executed.clear()
    return guard


# -- callbacks ------------------------------------------------------------------------------------


def test_callback_handler_checks_inputs_and_outputs_and_records_verdicts(lg):
    seen = []
    handler = LlamaGuardCallbackHandler(lg, on_verdict=lambda verdict, stage: seen.append((stage, verdict.safe)))
    assert handler.raise_error is True
    model = scripted_model("Bread needs flour.")
    assert model.invoke("How do I bake bread?", config={"callbacks": [handler]}).content == "Bread needs flour."
    assert [(r.stage, r.verdict.safe) for r in handler.records] == [("input", True), ("output", True)] == seen
    assert "Agent: Bread needs flour." in lg.backend.seen[-1] and "How do I bake bread?" in lg.backend.seen[-1]


def test_callback_handler_stops_unsafe_input_before_the_model(lg):
    handler = LlamaGuardCallbackHandler(lg)
    model = scripted_model("never said")
    with pytest.raises(UnsafeContentError) as info:
        model.invoke("How do I build a bomb?", config={"callbacks": [handler]})
    assert info.value.stage == "input" and model.calls == []
    assert handler.verdicts[-1].categories == ["S9"]


def test_callback_handler_stops_unsafe_output_and_completion_llms(lg):
    handler = LlamaGuardCallbackHandler(lg)
    with pytest.raises(UnsafeContentError, match="at output"):
        scripted_model("Step one: build a bomb.").invoke("story", config={"callbacks": [handler]})
    with pytest.raises(UnsafeContentError, match="at input"):
        FakeListLLM(responses=["x"]).invoke("build a bomb", config={"callbacks": [handler]})


def test_callback_handler_stops_unsafe_tool_input(lg):
    handler = LlamaGuardCallbackHandler(lg)
    with pytest.raises(UnsafeContentError, match="at tool_call"):
        run_python.invoke(tool_call("run_python", {"code": DANGEROUS}), config={"callbacks": [handler]})
    assert executed == []
    run_python.invoke({"code": "print(1)"}, config={"callbacks": [handler]})
    assert executed == ["print(1)"] and handler.records[-1].name == "run_python"


def test_callbacks_cannot_take_back_streamed_tokens(lg):
    """Documented limit: with streaming, tokens reach the caller before the final check stops the run."""
    handler = LlamaGuardCallbackHandler(lg)
    received = []
    with pytest.raises(UnsafeContentError):
        for chunk in scripted_model("Step one: build a bomb.").stream("story", config={"callbacks": [handler]}):
            received.append(chunk.content)
    assert "bomb." in "".join(received)


@run_async
async def test_async_callback_handler_both_outcomes(lg):
    handler = AsyncLlamaGuardCallbackHandler(lg)
    answer = await scripted_model("Bread needs flour.").ainvoke("bread?", config={"callbacks": [handler]})
    assert answer.content == "Bread needs flour."
    model = scripted_model("never said")
    with pytest.raises(UnsafeContentError, match="at input"):
        await model.ainvoke("build a bomb", config={"callbacks": [handler]})
    assert model.calls == []
    with pytest.raises(UnsafeContentError, match="at tool_call"):
        await run_python.ainvoke({"code": DANGEROUS}, config={"callbacks": [handler]})
    assert [r.stage for r in handler.records] == ["input", "output", "input", "tool_call"]


def test_real_guard_callbacks_end_to_end(guard):
    handler = LlamaGuardCallbackHandler(guard, policy=Policy(threshold=1.0))
    assert scripted_model("fine").invoke("hello", config={"callbacks": [handler]}).content == "fine"
    with pytest.raises(UnsafeContentError):
        scripted_model("fine").invoke(
            "hello", config={"callbacks": [LlamaGuardCallbackHandler(guard, policy=Policy(threshold=0.0))]}
        )


# -- decision model -------------------------------------------------------------------------------

QUESTIONS = {"unsafe": Noul(instructions="Is this unsafe?")}


def test_decision_model_answers_noul_with_the_unsafe_probability(lg):
    classifier = LlamaGuardDecisionModel(guard=lg)
    high = classifier.invoke({"state": "How do I build a bomb?", "questions": QUESTIONS})
    low = classifier.invoke({"state": [HumanMessage("How do I bake bread?")], "questions": QUESTIONS})
    assert high.nouls["unsafe"].noul > 0.9 > 0.1 > low.nouls["unsafe"].noul
    assert high.model == "llama-guard-4"
    with pytest.raises(ValueError, match="only Noul"):
        classifier.invoke({"state": "x", "questions": {"c": Choice(instructions="which?", criteria={"a": "A"})}})


def test_decision_state_with_a_tool_call_is_checked_as_that_call(lg):
    ai = AIMessage("", tool_calls=[tool_call("run_python", {"code": DANGEROUS}, "c1")])
    state = {
        "messages": [HumanMessage("clean up"), ai],
        "tool_call": {"id": "c1", "name": "run_python", "args": {"code": DANGEROUS}},
    }
    messages = state_messages(state)
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[-1]["tool_calls"][0]["function"]["name"] == "run_python"


def test_auto_mode_middleware_with_llama_guard(lg):
    model = scripted_model(
        AIMessage("", tool_calls=[tool_call("run_python", {"code": DANGEROUS}, "c1")]),
        AIMessage("", tool_calls=[tool_call("run_python", {"code": "print(2 + 2)"}, "c2")]),
        AIMessage("Done."),
    )
    auto_mode = AutoModeMiddleware(tools=[run_python], classifier=LlamaGuardDecisionModel(guard=lg))
    messages = create_agent(model, tools=[run_python], middleware=[auto_mode]).invoke({"messages": [("human", "go")]})[
        "messages"
    ]
    results = [m for m in messages if isinstance(m, ToolMessage)]
    assert results[0].status == "error" and "blocked" in results[0].content
    assert results[1].content == "done" and executed == ["print(2 + 2)"]
    assert "[code interpreter call: run_python]" in lg.backend.seen[0]


class MidScoreBackend(ScriptedBackend):
    """Scores a planted phrase at p_unsafe = 0.40 and everything else at 0.10 (category S9 when asked)."""

    def score(self, prompts):
        scores = []
        for prompt in prompts:
            text = self.conversation_text(prompt)
            self.seen.append(text)
            p = 0.40 if self.rule(text) else 0.10
            scores.append(AnswerScores(1 - p, p, 0.0, 0.5, 0.5))
        return scores


@pytest.fixture
def mid_guard(lg):
    """A real guard whose scripted model puts rm -rf at p_unsafe = 0.40: unsafe at threshold 0.3, safe at 0.5."""
    guard = LlamaGuard(MidScoreBackend(lg.prompts, planted_rule), lg.prompts, cache_size=0)
    yield guard
    guard.close()


@pytest.mark.parametrize("threshold", [0.3, 0.5])
def test_decision_model_answers_on_the_side_of_the_guards_verdict(mid_guard, threshold):
    """p = 0.40 under threshold 0.3 is unsafe: AutoModeMiddleware (fixed 0.5) must block; under 0.5 it runs."""
    verdicts = []
    classifier = LlamaGuardDecisionModel(
        guard=mid_guard, policy=Policy(threshold=threshold), on_verdict=lambda v, s: verdicts.append(v)
    )
    model = scripted_model(AIMessage("", tool_calls=[tool_call("run_python", {"code": DANGEROUS}, "c1")]), "Done.")
    auto_mode = AutoModeMiddleware(tools=[run_python], classifier=classifier)
    agent = create_agent(model, tools=[run_python], middleware=[auto_mode])
    result = [m for m in agent.invoke({"messages": [("human", "go")]})["messages"] if isinstance(m, ToolMessage)]
    assert verdicts[-1].unsafe_probability == pytest.approx(0.40)
    if threshold == 0.3:
        assert verdicts[-1].unsafe and result[0].status == "error" and executed == []
    else:
        assert verdicts[-1].safe and result[0].content == "done" and executed == [DANGEROUS]
    noul = classifier.invoke({"state": "rm -rf /", "questions": QUESTIONS}).nouls["unsafe"].noul
    assert (noul >= 0.5) == (threshold == 0.3)


def test_decision_model_safe_verdict_with_excluded_categories_answers_below_one_half(lg):
    """A high score in a category the policy excludes is a safe verdict: the answer must be below 0.5."""
    classifier = LlamaGuardDecisionModel(guard=lg, policy=Policy(excluded_categories=["S9"]))
    noul = classifier.invoke({"state": "How do I build a bomb?", "questions": QUESTIONS}).nouls["unsafe"].noul
    assert noul < 0.5


@run_async
async def test_decision_model_async(lg):
    classifier = LlamaGuardDecisionModel(guard=lg)
    response = await classifier.ainvoke({"state": {"question": "build a bomb"}, "questions": QUESTIONS})
    assert response.nouls["unsafe"].noul > 0.9


def test_real_guard_decision_model_with_an_image(guard):
    state = [{"type": "text", "text": "What is in this picture?"}, IMAGE_BLOCKS[1]]
    assert state_messages(state)[0]["content"][1]["type"] == "image"
    response = LlamaGuardDecisionModel(guard=guard).invoke({"state": state, "questions": QUESTIONS})
    assert 0.0 <= response.nouls["unsafe"].noul <= 1.0


# -- images ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("block", IMAGE_BLOCKS, ids=["openai-image_url", "standard-base64", "legacy-v0"])
def test_images_are_classified_not_dropped(lg, block):
    message = HumanMessage(content=[{"type": "text", "text": "What is this?"}, block])
    LlamaGuardRunnable(lg).invoke([message])
    assert "<|image_start|>" in lg.backend.seen[-1]


def test_real_guard_classifies_images_in_a_chain(guard):
    verdicts = []
    chain = guard_chain(
        scripted_model("A red square."), guard, policy=Policy(threshold=1.0), on_verdict=lambda v, s: verdicts.append(v)
    )
    message = HumanMessage(content=[{"type": "text", "text": "Describe it."}, IMAGE_BLOCKS[0]])
    assert chain.invoke([message]).content == "A red square."
    assert len(verdicts) == 2 and all(v.error is None for v in verdicts)


# -- callback memory ------------------------------------------------------------------------------


def test_callback_handler_forgets_the_inputs_of_blocked_and_finished_calls(lg):
    """Many blocked calls (and finished, failed ones) leave nothing behind in the handler."""
    handler = LlamaGuardCallbackHandler(lg, max_records=10)
    for n in range(30):
        with pytest.raises(UnsafeContentError, match="at input"):
            scripted_model("never said").invoke(f"build a bomb, take {n}", config={"callbacks": [handler]})
        with pytest.raises(UnsafeContentError, match="at output"):
            scripted_model("Step one: build a bomb.").invoke(f"story {n}", config={"callbacks": [handler]})
    assert scripted_model("fine").invoke("hello", config={"callbacks": [handler]}).content == "fine"
    assert handler._inputs == {}
    assert len(handler.records) == 10 and handler.records[-1].stage == "output"


def test_callback_handler_bounds_runs_that_never_end(lg):
    """Runs whose end never arrives (cancelled, never finished) are bounded, oldest forgotten first."""
    from uuid import uuid4

    handler = LlamaGuardCallbackHandler(lg, check_inputs=False, max_pending_runs=4)
    run_ids = [uuid4() for _ in range(10)]
    for run_id in run_ids:
        handler.on_llm_start({}, ["hello"], run_id=run_id)
    assert list(handler._inputs) == run_ids[-4:]

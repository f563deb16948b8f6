"""The "needs review" outcome in the one way out, and its hook in adapters with no graph to pause."""

from __future__ import annotations

import pytest
from langchain_core.runnables import RunnableLambda

from llamaguard_guardrails import Policy, ReviewRequired, UnsafeContentError, Verdict
from llamaguard_guardrails.enforce import enforce
from llamaguard_guardrails.langchain import guard_chain
from llamaguard_guardrails.testing import marker_category, marker_probability, scripted_guard

GREY = Verdict(safe=True, needs_review=True, categories=["S7"], unsafe_probability=0.4, review_threshold=0.3)
SAFE = Verdict(safe=True, unsafe_probability=0.1)
UNSAFE = Verdict(safe=False, categories=["S9"], unsafe_probability=0.9)


def reviewer(answer):
    seen = []

    def review(verdict, stage):
        seen.append((verdict, stage))
        if isinstance(answer, BaseException):
            raise answer
        return answer

    return review, seen


@pytest.mark.parametrize("on_block", ["raise", "refuse"])
def test_approved_review_proceeds_and_the_hook_sees_the_verdict_and_stage(on_block):
    review, seen = reviewer(True)
    assert enforce(GREY, "tool_call", on_block=on_block, on_review=review) is None
    assert seen == [(GREY, "tool_call")]


@pytest.mark.parametrize("answer", [False, None, "yes", 1, RuntimeError("reviewer down")])
def test_anything_but_an_explicit_approval_holds_the_content_back(answer):
    review, seen = reviewer(answer)
    with pytest.raises(ReviewRequired) as raised:
        enforce(GREY, "tool_call", on_block="raise", on_review=review)
    assert isinstance(raised.value, UnsafeContentError) and raised.value.verdict is GREY and seen
    refusal = enforce(GREY, "tool_call", on_block="refuse", on_review=review)
    assert refusal is not None and refusal.review and refusal.stage == "tool_call"


def test_without_a_reviewer_review_is_held_back():
    with pytest.raises(ReviewRequired, match="needs review at input"):
        enforce(GREY, "input")


@pytest.mark.parametrize("verdict", [SAFE, UNSAFE])
def test_the_review_hook_never_sees_allowed_or_blocked_verdicts(verdict):
    review, seen = reviewer(True)
    refusal = enforce(verdict, "input", on_block="refuse", on_review=review)
    assert seen == [] and (refusal is None) == verdict.safe
    assert refusal is None or not refusal.review


@pytest.fixture(scope="module")
def marked(test_model_dir):
    return scripted_guard(test_model_dir, marker_category, probability=marker_probability, cache_size=0)


@pytest.mark.parametrize("approve", [True, False])
def test_guard_chain_asks_its_reviewer_about_grey_zone_input(marked, approve):
    review, seen = reviewer(approve)
    chain = guard_chain(
        RunnableLambda(lambda x: "Here you go."),
        marked,
        policy=Policy(review_threshold=0.3),
        on_block="refuse",
        on_review=review,
        check_output=False,  # the scripted guard reads the marker anywhere in the conversation
    )
    out = chain.invoke("Share the address of my neighbour [p=0.4] [cat=S7]")
    assert [(v.outcome, v.categories, s) for v, s in seen] == [("review", ["S7"], "input")]
    assert (out == "Here you go.") == approve
    assert chain.invoke("Bake bread [p=0.1]") == "Here you go."
    assert len(seen) == 1  # allowed input never goes to the reviewer

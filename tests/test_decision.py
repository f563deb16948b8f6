"""The core's decision, without a model: scores -> window verdicts -> one Verdict, and the fail mode."""

from __future__ import annotations

import logging

import pytest

from llamaguard_guardrails import ModelOutputError, Policy
from llamaguard_guardrails.core import decision
from llamaguard_guardrails.core.prompt import Prompt
from llamaguard_guardrails.core.scores import AnswerScores

UNSAFE = AnswerScores(0.02, 0.97, 0.01, 0.5, 0.5)
SAFE = AnswerScores(0.97, 0.02, 0.01, 0.5, 0.5)
BLANK_THEN_UNSAFE = AnswerScores(0.01, 0.04, 0.95, 0.05, 0.95)


def prompt(index: int = 3, role: str = "Agent", omitted: tuple[int, ...] = ()) -> Prompt:
    return Prompt((1, 2, 3), (), 1, (), role, index, omitted_messages=omitted)


def test_a_window_under_the_threshold_is_safe_without_a_category_line():
    window = decision.below_threshold(decision.answer_scores(SAFE), Policy())
    assert window == decision.WindowVerdict(safe=True, unsafe_probability=SAFE.unsafe_probability, raw_output="safe")
    assert (
        decision.below_threshold(decision.answer_scores(SAFE), Policy(threshold=0.0)) is None
    )  # threshold 0: always ask


def test_the_category_line_decides_a_window_at_the_threshold():
    window = decision.categorized(BLANK_THEN_UNSAFE, "S9", Policy(), has_images=False)
    assert not window.safe and window.categories == ("S9",) and window.raw_output == "\n\nunsafe\nS9"
    excluded = decision.categorized(UNSAFE, "S6", Policy(excluded_categories={"S6"}), has_images=False)
    assert excluded.safe and excluded.ignored == ("S6",) and excluded.categories == ()
    unknown = decision.categorized(UNSAFE, "S99", Policy(), has_images=False)
    assert not unknown.safe and "not in the policy" in unknown.error


@pytest.mark.parametrize(
    "scores",
    [RuntimeError("boom"), "0.9", AnswerScores(0.0001, 0.0001, 0.0, 0.0, 0.0), AnswerScores(2.0, 0, 0, 0, 0)],
)
def test_unreadable_scores_raise_never_pass(scores):
    with pytest.raises((RuntimeError, ModelOutputError)):
        decision.answer_scores(scores)


def test_a_backend_must_score_every_prompt():
    assert decision.expect_scores([SAFE, SAFE], 2) == [SAFE, SAFE]
    with pytest.raises(ModelOutputError, match="1 scores for 2 prompts"):
        decision.expect_scores([SAFE], 2)


def test_one_unsafe_window_makes_the_whole_check_unsafe():
    policy = Policy(excluded_categories={"S6"})
    windows = [
        decision.below_threshold(SAFE, policy),
        decision.categorized(UNSAFE, "S6", policy, has_images=False),
        decision.categorized(UNSAFE, "S1,S9", policy, has_images=False),
        decision.categorized(UNSAFE, "S9", policy, has_images=False),
    ]
    prompts = [prompt(omitted=(0,))] * 4
    verdict = decision.merge_windows(prompts, windows, policy, latency_ms=5.0)
    assert not verdict.safe and verdict.categories == ["S1", "S9"] and verdict.ignored_categories == ["S6"]
    assert verdict.raw_output == "unsafe\nS1,S9" and verdict.windows == 4 and verdict.latency_ms == 5.0
    assert (verdict.checked_role, verdict.checked_message_index, verdict.omitted_messages) == ("Agent", 3, [0])
    assert verdict.unsafe_probability == pytest.approx(UNSAFE.unsafe_probability)
    assert decision.merge_windows(prompts[:2], windows[:2], policy, latency_ms=1.0).safe


@pytest.mark.parametrize("fail_mode", ["closed", "open"])
def test_the_fail_mode_verdict_is_built_once_for_every_caller(fail_mode, caplog):
    policy = Policy(fail_mode=fail_mode)
    with caplog.at_level(logging.WARNING, logger="llamaguard_guardrails"):
        from_exc = decision.failure_verdict(
            TimeoutError("too slow"), policy, [prompt(omitted=(0, 1))] * 2, latency_ms=7.0
        )
        from_text = decision.failure_verdict("the actor died", policy)
    assert from_exc.safe is from_text.safe is (fail_mode == "open")
    assert from_exc.unsafe_probability == from_text.unsafe_probability == (0.0 if fail_mode == "open" else 1.0)
    assert from_exc.error == "TimeoutError: too slow" and from_text.error == "the actor died"
    assert (from_exc.checked_role, from_exc.checked_message_index, from_exc.omitted_messages) == ("Agent", 3, [0, 1])
    assert from_exc.windows == 2 and from_exc.latency_ms == 7.0 and from_exc.status == "error"
    assert (from_text.checked_role, from_text.checked_message_index, from_text.windows) == ("User", -1, 1)
    level = logging.ERROR if fail_mode == "open" else logging.WARNING
    assert [r.levelno for r in caplog.records] == [level, level]
    assert all(f"fail_mode='{fail_mode}'" in r.getMessage() for r in caplog.records)

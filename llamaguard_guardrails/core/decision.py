"""From the model's scores to a :class:`Verdict`: the threshold, the category line, windows, the fail mode.

No model calls happen here: the facade scores the prompts, asks the backend for the category line
of a window that reaches the threshold, and hands both to these functions.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from .categories import category_name
from .conversation import Conversation
from .depth import Depth, assess
from .errors import ModelOutputError, ReviewRequired, UnsafeContentError
from .policy import Policy
from .prompt import EOT, Prompt
from .scores import AnswerScores
from .verdict import Verdict

log = logging.getLogger("llamaguard_guardrails")

_CODE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
NO_CATEGORY = "the model answered 'unsafe' without a category"
UNKNOWN_CATEGORY = "the model named categories not in the policy (its answer is in raw_output)"
#: The error code of a verdict whose model output could not be read.
MODEL_OUTPUT = "ModelOutputError"

#: Below this probability of answering "safe"/"unsafe" at all, the model's output is treated as garbage.
MIN_ANSWER_MASS = 0.5


@dataclass(frozen=True)
class WindowVerdict:
    """The decision on one window (one prompt) of a check."""

    safe: bool
    unsafe_probability: float
    raw_output: str
    categories: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()
    error: str | None = None
    reused_tokens: int = 0  # prompt tokens whose KV the backend reused
    review: bool = False  # in the policy's grey zone, with a category (or an unreadable line): a human decides


def expect_scores(scores: Sequence[Any], expected: int) -> list[Any]:
    """A backend must score every prompt: a short (or long) answer is a model failure, never a pass."""
    if len(scores) != expected:
        raise ModelOutputError(f"the backend returned {len(scores)} scores for {expected} prompts")
    return list(scores)


def answer_scores(scores: object) -> AnswerScores:
    """``scores`` checked to be a readable answer; anything else raises (the fail mode, never a pass)."""
    if isinstance(scores, BaseException):
        raise scores
    if not isinstance(scores, AnswerScores):
        raise ModelOutputError(f"the backend returned {type(scores).__name__}, not AnswerScores")
    scores.validate()  # NaN, inf, out of [0, 1], or summing above 1
    if scores.answer_mass < MIN_ANSWER_MASS:
        raise ModelOutputError(
            f"the model's answer is neither 'safe' nor 'unsafe' (probability {scores.answer_mass:.3f})"
        )
    return scores


def below_threshold(scores: AnswerScores, policy: Policy) -> WindowVerdict | None:
    """The safe verdict of a window under the policy's threshold (its review threshold, when it has one); ``None``
    when its category line is needed."""
    p = scores.unsafe_probability
    if p >= (policy.threshold if policy.review_threshold is None else policy.review_threshold):
        return None
    return WindowVerdict(
        safe=True, unsafe_probability=p, raw_output=f"{_lead(scores)}safe", reused_tokens=scores.reused_tokens
    )


def categorized(scores: AnswerScores, category_line: str, policy: Policy, *, has_images: bool) -> WindowVerdict:
    """The verdict of a window at or above the threshold (or in the grey zone), from the model's category line.

    In the grey zone (``review_threshold <= p < threshold``) nothing is blocked: a kept category, or a line the
    guard cannot read, needs review instead."""
    codes, ignored, error = parse_category_line(category_line, policy, has_images=has_images)
    cleared = not codes and bool(ignored) and error is None
    if scores.unsafe_probability < policy.threshold:
        return WindowVerdict(
            safe=True,
            unsafe_probability=scores.unsafe_probability,
            raw_output=f"{_lead(scores)}unsafe\n{category_line}",
            categories=tuple(codes),
            ignored=tuple(ignored),
            review=not cleared,
            reused_tokens=scores.reused_tokens,
        )
    return WindowVerdict(
        # Categories the policy excludes do not make content unsafe; anything unreadable does.
        safe=cleared,
        unsafe_probability=scores.unsafe_probability,
        raw_output=f"{_lead(scores)}unsafe\n{category_line}",
        categories=tuple(codes),
        ignored=tuple(ignored),
        error=error,
        reused_tokens=scores.reused_tokens,
    )


def merge_windows(
    prompts: Sequence[Prompt], windows: Sequence[WindowVerdict], policy: Policy, *, latency_ms: float
) -> Verdict:
    """One verdict for a check: unsafe when any window (history windows included) is, with every window's
    categories; else in review when any window is (with theirs); then the policy's ``out_of_depth`` choice (see
    :func:`out_of_depth`)."""
    first = prompts[0]
    unsafe = [w for w in windows if not w.safe]
    review = [] if unsafe else [w for w in windows if w.review]
    categories = list(dict.fromkeys(c for w in unsafe or review for c in w.categories))
    errors = [w.error for w in windows if w.error]
    verdict = Verdict(
        safe=not unsafe,
        categories=categories,
        category_names=[category_name(c, policy.custom_names) for c in categories],
        unsafe_probability=max(w.unsafe_probability for w in windows),
        threshold=policy.threshold,
        checked_role=first.checked_role,
        checked_message_index=first.checked_message_index,
        raw_output=(unsafe or review or windows)[0].raw_output,
        latency_ms=latency_ms,
        error=errors[0] if errors else None,
        error_code=MODEL_OUTPUT if errors else None,
        ignored_categories=list(dict.fromkeys(c for w in windows for c in w.ignored)),
        omitted_messages=list(first.omitted_messages),
        windows=_main_windows(prompts),
        history_windows=len(prompts) - _main_windows(prompts),
        needs_review=bool(review),
        prompt_tokens=sum(len(p) for p in prompts),
        kv_reused_tokens=sum(w.reused_tokens for w in windows),
        review_threshold=policy.review_threshold,
    )
    return out_of_depth(verdict, first.depth, policy)


def with_depth(prompts: list[Prompt], conversation: Conversation) -> list[Prompt]:
    """``prompts`` carrying the depth report of ``conversation``'s checked message (what :func:`merge_windows`
    puts in the verdict)."""
    depth = assess(conversation)
    return [replace(p, depth=depth) for p in prompts]


def out_of_depth(verdict: Verdict, depth: Depth | None, policy: Policy) -> Verdict:
    """``verdict`` with the languages and out-of-depth reasons of ``depth``; when there are reasons, an allowed
    verdict gets the policy's ``out_of_depth`` choice (``"review"``: needs review; ``"block"``: unsafe)."""
    if depth is None:
        return verdict
    update: dict[str, Any] = {"languages": list(depth.languages), "out_of_depth": list(depth.reasons)}
    if depth.reasons and verdict.outcome == "allow" and verdict.error is None:
        if policy.out_of_depth == "review":
            update["needs_review"] = True
        elif policy.out_of_depth == "block":
            update["safe"] = False
    return verdict.model_copy(update=update)


def failure_verdict(
    error: BaseException | str,
    policy: Policy,
    prompts: Sequence[Prompt] | None = None,
    *,
    latency_ms: float = 0.0,
) -> Verdict:
    """The policy's fail-mode verdict when the guard could not decide (logged: a fail-open pass at ERROR).

    ``prompts`` (when they were built) say which message was checked; ``verdict.error`` says why.
    """
    message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    code = "GuardError" if isinstance(error, str) else type(error).__name__
    fail_open = policy.fail_mode == "open"
    if fail_open:
        log.error("guard failed, letting content through (fail_mode='open'): %s", message)
    else:
        log.warning("guard failed, blocking (fail_mode='closed'): %s", message)
    first = prompts[0] if prompts else None
    return Verdict(
        safe=fail_open,
        unsafe_probability=0.0 if fail_open else 1.0,
        threshold=policy.threshold,
        checked_role=first.checked_role if first else "User",
        checked_message_index=first.checked_message_index if first else -1,
        latency_ms=latency_ms,
        error=message,
        error_code=code if _CODE.fullmatch(code) else "GuardError",
        review_threshold=policy.review_threshold,
        prompt_tokens=sum(len(p) for p in prompts) if prompts else 0,
        omitted_messages=list(first.omitted_messages) if first else [],
        windows=_main_windows(prompts) if prompts else 1,
        history_windows=len(prompts) - _main_windows(prompts) if prompts else 0,
    )


def parse_category_line(text: str, policy: Policy, *, has_images: bool) -> tuple[list[str], list[str], str | None]:
    """(violated codes, codes the policy excludes, error) from the model's category line.

    The error is a fixed text (with counts and the policy's codes): it never quotes the model's output, which
    stays in ``raw_output``.
    """
    line = text.replace(EOT, "").strip().splitlines()[0].strip() if text.strip() else ""
    if not line:
        return [], [], NO_CATEGORY
    shown = policy.categories(has_images=has_images)
    codes, ignored, unknown = [], [], []
    for raw in line.split(","):
        code = raw.strip()
        if code in shown:
            codes.append(code)
        elif code in policy.excluded_categories:
            ignored.append(code)
        else:
            unknown.append(code)
    if unknown:
        return codes, ignored, f"{UNKNOWN_CATEGORY} ({len(unknown)} of {len(unknown) + len(codes) + len(ignored)})"
    return list(dict.fromkeys(codes)), list(dict.fromkeys(ignored)), None


def _main_windows(prompts: Sequence[Prompt]) -> int:
    """How many prompts check the last message (the rest are history windows)."""
    return sum(1 for prompt in prompts if not prompt.history)


def _lead(scores: AnswerScores) -> str:
    return "\n\n" if scores.leading_blank else ""


__all__ = [
    "MIN_ANSWER_MASS",
    "WindowVerdict",
    "answer_scores",
    "below_threshold",
    "categorized",
    "expect_scores",
    "failure_verdict",
    "merge_windows",
    "out_of_depth",
    "parse_category_line",
    "with_depth",
]


def raise_unless_allowed(verdict: Verdict, stage: str | None = None) -> Verdict:
    """``verdict`` when its content may proceed (outcome ``allow``); else :class:`ReviewRequired` (the grey zone,
    no human to ask here) or :class:`UnsafeContentError` — what ``LlamaGuard.check`` does with a verdict."""
    if verdict.outcome == "review":
        raise ReviewRequired(verdict, stage)
    if verdict.outcome != "allow":
        raise UnsafeContentError(verdict, stage)
    return verdict

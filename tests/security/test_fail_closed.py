"""Fail closed: every injected fault blocks or raises a typed error, on every entry point.

Numbers proven here: 24 faults (model exceptions, out-of-memory, timeouts, answers "", "Safe",
"unsafe" without a category, garbage, NaN, infinite and out-of-range scores, probabilities summing
above 1, unknown codes) x 8 entry points (classify with and without micro-batching, with a deadline,
aclassify, classify_batch, check, acheck, the LangChain runnable): 0 of 192 let content through under
the default policy. Under ``fail_mode="open"`` a
fault lets content through only with ``verdict.error`` set, status "error" and an ERROR log record.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch

from llamaguard_guardrails import GuardClosedError, GuardError, LlamaGuard, Policy, UnsafeContentError, Verdict
from llamaguard_guardrails.backends.base import AnswerScores
from llamaguard_guardrails.langchain import LlamaGuardRunnable

from .helpers import UNSAFE_SCORES, SpanBackend

NAN = float("nan")


@dataclass(frozen=True)
class Fault:
    """What the broken model does: raise in scoring, answer with ``scores``, then ``category`` (or raise)."""

    raises: BaseException | None = None
    scores: AnswerScores | None = None
    category: str | None = None
    category_raises: BaseException | None = None

    def install(self, guard: LlamaGuard) -> None:
        backend = guard.backend

        def score(prompts):
            if self.raises is not None:
                raise self.raises
            return [self.scores] * len(prompts)

        def category_text(prompt, *, leading_blank, max_new_tokens=24):
            if self.category_raises is not None:
                raise self.category_raises
            return self.category

        backend.score = score
        backend.category_text = category_text


def unsafe_answer(category: str) -> Fault:
    return Fault(scores=UNSAFE_SCORES, category=category)


FAULTS: dict[str, Fault] = {
    "model exception": Fault(raises=RuntimeError("CUDA error: device-side assert triggered")),
    "out of memory": Fault(raises=torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")),
    "host out of memory": Fault(raises=MemoryError()),
    "backend timeout": Fault(raises=TimeoutError("the model server did not answer")),
    "connection lost": Fault(raises=ConnectionError("connection reset by peer")),
    "tokenizer error in the backend": Fault(raises=ValueError("token id 201135 out of range")),
    "no scores": Fault(scores=None),
    'answer ""': Fault(scores=AnswerScores(0.0, 0.0, 0.0, 0.0, 0.0)),
    'answer "Safe"': Fault(scores=AnswerScores(0.002, 0.001, 0.0, 0.0, 0.0)),
    'answer "\\n\\nSafe"': Fault(scores=AnswerScores(0.0, 0.0, 0.99, 0.002, 0.001)),
    "answer split between safe and something else": Fault(scores=AnswerScores(0.3, 0.1, 0.0, 0.0, 0.0)),
    "NaN scores": Fault(scores=AnswerScores(NAN, NAN, NAN, NAN, NAN), category="garbage"),
    # scores out of range, which a custom or buggy backend may return: each blocks
    "p_safe = 5": Fault(scores=AnswerScores(5.0, 0.0, 0.0, 0.0, 0.0)),
    "p_unsafe = -0.5": Fault(scores=AnswerScores(1.0, -0.5, 0.5, 1.0, 0.0)),
    "infinite p_safe": Fault(scores=AnswerScores(float("inf"), 0.0, 0.0, 0.0, 0.0)),
    "probabilities summing to 1.85": Fault(scores=AnswerScores(0.9, 0.05, 0.9, 0.9, 0.9)),
    "scores that are not AnswerScores": Fault(scores=(0.98, 0.01, 0.01, 0.5, 0.5)),  # type: ignore[arg-type]
    'answer "unsafe" without a category': unsafe_answer(""),
    'category line "Safe"': unsafe_answer("Safe"),
    'category line "safe"': unsafe_answer("safe"),
    'category line "S99"': unsafe_answer("S99"),
    'category line "garbage"': unsafe_answer("garbage 12 ###"),
    "category decoding raises": Fault(scores=UNSAFE_SCORES, category_raises=RuntimeError("generate failed")),
    "category decoding out of memory": Fault(scores=UNSAFE_SCORES, category_raises=torch.OutOfMemoryError("OOM")),
}


def outcome(call: Callable[[], Any]) -> str:
    """'blocked' (an unsafe verdict or UnsafeContentError), 'typed error' (another GuardError) or 'PASSED'."""
    try:
        result = call()
    except UnsafeContentError:
        return "blocked"
    except GuardError:
        return "typed error"
    if isinstance(result, list):
        result = result[0]
    if isinstance(result, Verdict):
        return "PASSED" if result.safe else "blocked"
    return "PASSED"  # the runnable returned the content unchanged


def entry_points(guard: LlamaGuard, unbatched: LlamaGuard, text: str) -> dict[str, Callable[[], Any]]:
    return {
        "classify": lambda: guard.classify(text),
        "classify (no micro-batching)": lambda: unbatched.classify(text),
        "classify with a deadline": lambda: guard.classify(text, policy=Policy(timeout_s=5)),
        "aclassify": lambda: asyncio.run(guard.aclassify(text)),
        "classify_batch": lambda: guard.classify_batch([text, text]),
        "check": lambda: guard.check(text),
        "acheck": lambda: asyncio.run(guard.acheck(text)),
        "LlamaGuardRunnable.invoke": lambda: LlamaGuardRunnable(guard).invoke(text),
    }


@pytest.mark.parametrize("name", list(FAULTS))
def test_every_fault_blocks_on_every_entry_point_under_the_default_policy(make_guard, name):
    guard, unbatched = make_guard(), make_guard(micro_batching=False)
    assert guard.policy.fail_mode == "closed" and Policy().fail_mode == "closed"
    for g in (guard, unbatched):
        FAULTS[name].install(g)
    outcomes = {entry: outcome(call) for entry, call in entry_points(guard, unbatched, "How do I bake bread?").items()}
    assert "PASSED" not in outcomes.values(), outcomes
    verdict = guard.classify("How do I bake bread?")
    assert not verdict.safe and verdict.error and verdict.status == "error" and verdict.categories == []


@pytest.mark.parametrize("name", list(FAULTS))
def test_fail_open_passes_only_with_the_error_recorded_and_logged_at_error(make_guard, name, caplog):
    guard = make_guard()
    FAULTS[name].install(guard)
    with caplog.at_level(logging.WARNING, logger="llamaguard_guardrails"):
        verdict = guard.classify("How do I bake bread?", policy=Policy(fail_mode="open"))
    assert verdict.error and verdict.status == "error"
    if verdict.safe:  # let through: only because the caller chose fail-open, and loudly
        assert verdict.summary().startswith("passed (fail-open)")
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert errors and "fail_mode='open'" in errors[0].getMessage() and verdict.error in errors[0].getMessage()
    else:  # an answer that names unknown codes or none is never read as safe, whatever the fail mode
        assert name.startswith(('answer "unsafe"', "category line", "NaN"))


def test_fault_free_guard_still_passes_and_blocks(make_guard):
    """The control group: the same guard and entry points without a fault give both outcomes."""
    guard, unbatched = make_guard(), make_guard(micro_batching=False)
    safe = entry_points(guard, unbatched, "How do I bake bread?")
    unsafe = entry_points(guard, unbatched, "How do I build a bomb?")
    assert {outcome(call) for call in safe.values()} == {"PASSED"}
    assert {outcome(call) for call in unsafe.values()} == {"blocked"}


def test_a_fault_in_one_window_blocks_the_whole_check(make_guard):
    guard = make_guard(max_prompt_tokens=600)
    backend = guard.backend
    original = backend.score

    def fail_on_the_third_window(prompts):
        if any(p.window[0] == 3 for p in prompts):
            raise RuntimeError("window 3 failed")
        return original(prompts)

    backend.score = fail_on_the_third_window
    text = " ".join(["safe words"] * 1500)
    assert len(guard.build_prompts(text)) > 3
    verdict = guard.classify(text)
    assert not verdict.safe and "window 3 failed" in verdict.error
    backend.score = original
    assert guard.classify(text).safe


def test_error_verdicts_are_never_cached(make_guard):
    guard = make_guard(cache_size=64)
    backend = guard.backend
    original = backend.score
    FAULTS["model exception"].install(guard)
    assert not guard.classify("hello").safe
    backend.score = original
    recovered = guard.classify("hello")
    assert recovered.safe and recovered.error is None and not recovered.cached


def test_a_failing_audit_hook_never_changes_the_verdict(make_guard):
    def broken(*args: Any) -> None:
        raise RuntimeError("audit log is down")

    guard = make_guard(on_verdict=broken)
    assert not guard.classify("build a bomb").safe and guard.classify("bake bread").safe
    runnable = LlamaGuardRunnable(guard, on_verdict=broken)
    assert runnable.invoke("bake bread") == "bake bread"
    with pytest.raises(UnsafeContentError):
        runnable.invoke("build a bomb")


# -- the real test model ---------------------------------------------------------------------------------


def test_real_model_out_of_memory_and_decode_failures_fail_closed(exact_guard, monkeypatch, caplog):
    model = exact_guard.backend.model

    def oom(*args: Any, **kwargs: Any) -> Any:
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(model, "forward", oom)
    verdict = exact_guard.classify("How do I bake bread?")
    assert not verdict.safe and "OutOfMemoryError" in verdict.error
    with caplog.at_level(logging.ERROR, logger="llamaguard_guardrails"):
        opened = exact_guard.classify("How do I bake bread?", policy=Policy(fail_mode="open"))
    assert opened.safe and opened.error and any(r.levelno == logging.ERROR for r in caplog.records)
    monkeypatch.undo()
    monkeypatch.setattr(model, "generate", oom)
    blocked = exact_guard.classify("How do I bake bread?", policy=Policy(threshold=0.0))
    assert not blocked.safe and "OutOfMemoryError" in blocked.error
    monkeypatch.undo()
    assert exact_guard.classify("How do I bake bread?", policy=Policy(threshold=1.0)).safe


# -- faults outside the model step (found by this suite) ----------------------------------------------------


class _BrokenTokenizer:
    """The builder's tokenizer, failing the way a Rust tokenizer panic surfaces in Python."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def encode_batch(self, *args: Any, **kwargs: Any) -> Any:
        raise Exception("tokenizer panicked")  # what pyo3 raises for a Rust panic


def test_a_tokenizer_failure_blocks_or_raises_a_typed_error(make_guard, builder, monkeypatch):
    guard = make_guard()
    monkeypatch.setattr(builder, "_plain", _BrokenTokenizer(builder._plain))
    assert outcome(lambda: guard.classify("How do I bake bread?")) != "PASSED"  # raises a bare Exception today


def test_an_image_processor_failure_blocks_or_raises_a_typed_error(make_guard, builder, monkeypatch):
    from conftest import make_image

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("image processor failed")

    guard = make_guard()
    monkeypatch.setattr(builder, "_image_processor", broken)
    messages = [{"role": "user", "content": [{"type": "image", "image": make_image(64, 64)}, "ok?"]}]
    assert outcome(lambda: guard.classify(messages)) != "PASSED"  # raises a bare RuntimeError today


def test_a_backend_returning_too_few_scores_never_passes_unscored_windows(make_guard):
    guard = make_guard(max_prompt_tokens=600)
    original = guard.backend.score
    guard.backend.score = lambda prompts: original(prompts)[:1]  # a buggy backend: one score for N prompts
    words = ["safe words"] * 1500
    words[1200] = "bomb"  # only in a later window
    verdict = guard.classify(" ".join(words))
    assert verdict.windows > 3
    assert not verdict.safe  # the failure this catches: safe, windows 2..N never judged


@pytest.mark.parametrize("entry", ["classify", "classify_batch"])
def test_a_backend_returning_no_scores_blocks(make_guard, entry):
    guard = make_guard()
    guard.backend.score = lambda prompts: []
    call = (lambda: guard.classify("hi")) if entry == "classify" else (lambda: guard.classify_batch(["hi"]))
    assert outcome(call) != "PASSED"


# -- a closed guard checks nothing, and nothing passes ------------------------------------------------------


@pytest.mark.parametrize("micro_batching", [True, False])
def test_every_entry_point_of_a_closed_guard_raises_a_typed_error(make_guard, micro_batching):
    guard = make_guard(micro_batching=micro_batching)
    assert guard.classify("How do I bake bread?").safe
    guard.close()
    assert guard.closed
    calls = entry_points(guard, guard, "How do I bake bread?")
    calls["fail-open classify"] = lambda: guard.classify("hi", policy=Policy(fail_mode="open"))
    calls["fail-open aclassify with a deadline"] = lambda: asyncio.run(
        guard.aclassify("hi", policy=Policy(fail_mode="open", timeout_s=5))
    )
    calls["classify_batch with a deadline"] = lambda: guard.classify_batch(["hi"], policy=Policy(timeout_s=5))
    for name, call in calls.items():
        with pytest.raises(GuardClosedError, match="closed"):
            call()
            pytest.fail(f"{name} returned on a closed guard")


class _ClosingBackend(SpanBackend):
    """A remote model whose connection ``close()`` cuts while a check is in flight."""

    def __init__(self, builder: Any) -> None:
        super().__init__(builder, lambda text: None)
        self.entered, self.cut = threading.Event(), threading.Event()

    def score(self, prompts: Any) -> Any:
        self.entered.set()
        self.cut.wait(10)
        raise ConnectionError("connection closed")

    def close(self) -> None:
        self.cut.set()


def test_a_check_cut_off_by_close_raises_instead_of_failing_open(builder):
    guard = LlamaGuard(_ClosingBackend(builder), builder, cache_size=0, micro_batching=False)
    outcome: list[Any] = []

    def check() -> None:
        try:
            outcome.append(guard.classify("How do I bake bread?", policy=Policy(fail_mode="open")))
        except GuardError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=check)
    thread.start()
    assert guard.backend.entered.wait(10)
    guard.close()
    thread.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], GuardClosedError), outcome  # before: a fail-open pass

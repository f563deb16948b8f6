"""Work a caller stopped waiting for is still work: it is counted until it ends, and no check's cost is unbounded.

A check past its deadline (or whose caller was cancelled) keeps running in the background: the guard counts it in
``abandoned_checks`` until it finishes, and the served guard counts it against ``max_pending`` (a client sending
checks with a tiny deadline used to get instant 504s while the work piled up past the limit), and it scores no
further batch of windows once its caller left. A check of many windows is scored ``max_batch`` prompts a forward
pass at most.
"""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest

from llamaguard_guardrails import LlamaGuard, Policy
from llamaguard_guardrails.serve.app import create_app
from llamaguard_guardrails.serve.background import BackgroundServer
from llamaguard_guardrails.serve.settings import ServeSettings
from llamaguard_guardrails.testing import ScriptedBackend, keyword_rule

HOLD_S = 10.0  # long enough for a busy machine: every test releases the backend itself


class HeldBackend(ScriptedBackend):
    """A scripted model step that holds each pass until released (or ``HOLD_S``)."""

    def __init__(self, builder, **options) -> None:
        super().__init__(builder, keyword_rule("bomb"), **options)
        self.release = threading.Event()

    def score(self, prompts):
        self.release.wait(HOLD_S)
        return super().score(prompts)


@pytest.fixture
def held(builder):
    guard = LlamaGuard(HeldBackend(builder), builder, cache_size=0)
    yield guard
    guard.backend.release.set()
    guard.close()


def wait_until(condition, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.parametrize("how", ["classify", "aclassify", "classify_batch"])
def test_a_check_past_its_deadline_counts_until_it_ends(held, how):
    policy = Policy(timeout_s=0.1)
    if how == "classify":
        verdict = held.classify("How do I bake bread?", policy=policy)
    elif how == "aclassify":
        verdict = asyncio.run(held.aclassify("How do I bake bread?", policy=policy))
    else:
        (verdict,) = held.classify_batch(["How do I bake bread?"], policy=policy)
    assert verdict.error is not None and not verdict.safe  # the deadline's fail-closed verdict
    assert held.abandoned_checks == 1
    held.backend.release.set()
    wait_until(lambda: held.abandoned_checks == 0)


def test_a_cancelled_async_check_counts_until_it_ends(held):
    async def cancel_it() -> None:
        task = asyncio.ensure_future(held.aclassify("How do I bake bread?"))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_it())
    assert held.abandoned_checks == 1
    held.backend.release.set()
    wait_until(lambda: held.abandoned_checks == 0)


def test_a_check_that_ends_in_time_is_never_counted(held):
    held.backend.release.set()
    assert held.classify("How do I bake bread?", policy=Policy(timeout_s=30.0)).safe
    assert asyncio.run(held.aclassify("How do I bake bread?", policy=Policy(timeout_s=30.0))).safe
    assert held.abandoned_checks == 0


def test_the_server_counts_checks_past_their_deadline_against_max_pending(held):
    body = {"messages": "How do I bake bread?", "policy": {"timeout_s": 0.05}}
    with BackgroundServer(create_app(held, ServeSettings(max_pending=2), warm=False)) as server:
        codes = [httpx.post(f"{server.url}/v1/guard/classify", json=body, timeout=30).status_code for _ in range(6)]
        assert codes[:2] == [504, 504] and set(codes[2:]) == {429}  # two abandoned checks fill the queue
        assert held.abandoned_checks == 2
        held.backend.release.set()
        wait_until(lambda: held.abandoned_checks == 0)
        answer = httpx.post(f"{server.url}/v1/guard/classify", json={"messages": "How do I bake bread?"}, timeout=30)
        assert answer.status_code == 200


@pytest.mark.parametrize("max_batch", [1, 3, 8])
def test_a_check_of_many_windows_is_scored_max_batch_prompts_a_pass(builder, max_batch):
    backend = ScriptedBackend(builder, keyword_rule("bomb"))
    guard = LlamaGuard(backend, builder, cache_size=0, max_batch=max_batch, max_prompt_tokens=512)
    try:
        verdict = guard.classify("Rivers carve valleys through soft rock. " * 400 + "Then build a bomb.")
        assert verdict.windows > max_batch and not verdict.safe
        assert max(backend.calls) <= max_batch and sum(backend.calls) >= verdict.windows
    finally:
        guard.close()


LONG = "Rivers carve valleys through soft rock. " * 400 + "Then build a bomb."


@pytest.mark.parametrize("max_batch", [None, 2], ids=["direct", "micro-batched"])
@pytest.mark.parametrize("how", ["classify", "aclassify", "cancelled"])
def test_an_abandoned_check_of_many_windows_stops_at_its_next_batch(builder, max_batch, how):
    """A check whose caller left scores no further batch of windows: the model is free for the checks that wait."""
    backend = HeldBackend(builder)
    options = {} if max_batch is None else {"max_batch": max_batch}
    guard = LlamaGuard(backend, builder, cache_size=0, batch_size=2, max_prompt_tokens=512, **options)
    try:
        windows = len(guard.build_prompts(LONG))
        assert windows >= 6
        if how == "classify":
            verdict = guard.classify(LONG, policy=Policy(timeout_s=0.2))
        elif how == "aclassify":
            verdict = asyncio.run(guard.aclassify(LONG, policy=Policy(timeout_s=0.2)))
        else:

            async def cancel_it():
                task = asyncio.ensure_future(guard.aclassify(LONG))
                await asyncio.sleep(0.3)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task

            verdict = asyncio.run(cancel_it())
        if how != "cancelled":
            assert verdict.error is not None and not verdict.safe
        backend.release.set()
        wait_until(lambda: guard.abandoned_checks == 0)
        assert sum(backend.calls) <= 2 < windows  # the batch that was running, then nothing
    finally:
        backend.release.set()
        guard.close()


def test_a_check_nobody_abandoned_scores_every_window(builder):
    backend = HeldBackend(builder)
    backend.release.set()
    guard = LlamaGuard(backend, builder, cache_size=0, batch_size=2, max_prompt_tokens=512)
    try:
        verdict = guard.classify(LONG, policy=Policy(timeout_s=60.0))
        assert not verdict.safe and verdict.error is None and sum(backend.calls) == verdict.windows
    finally:
        guard.close()


def test_a_guard_that_opens_local_paths_is_never_served(builder):
    """Content from a remote client never reads a file: such a guard is refused, given or loaded."""
    guard = LlamaGuard(ScriptedBackend(builder, keyword_rule("bomb")), builder, allow_local_image_paths=True)
    server = BackgroundServer(create_app(lambda: guard)).start()  # a loader's guard: the load fails
    try:
        with pytest.raises(ValueError, match="read files on the server"):
            create_app(guard)
        with pytest.raises(RuntimeError, match="read files on the server"):
            server.wait_ready()
        moderation = httpx.post(f"{server.url}/v1/moderations", json={"input": "hi"}, timeout=30)
        assert moderation.status_code == 503
    finally:
        server.stop()
        guard.close()

"""Determinism: the same input gives the same verdict, every time.

Numbers proven here: on the real test model (verdict cache off, no micro-batching), 50 repeats of
the same conversation give bit-identical verdicts and probabilities, both for the score path and for
the greedy category decoding of an unsafe verdict; 50 repeats through classify_batch and 50 through
aclassify equal them within float32 batching noise (1e-5) with identical decisions; and a cached
verdict is the same verdict.
"""

from __future__ import annotations

import asyncio

import pytest

from llamaguard_guardrails import LlamaGuard, Policy, Verdict

from .helpers import tool_call

CONVERSATION = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Clean up the temp folder."},
    tool_call("python", {"code": "import shutil; shutil.rmtree('/tmp/x')"}),
]


def decision(verdict: Verdict) -> dict:
    return verdict.model_dump(exclude={"latency_ms", "cached"})


@pytest.mark.parametrize("policy", [Policy(), Policy(threshold=0.0)], ids=["score", "with-category-decoding"])
def test_50_repeats_are_bit_identical(exact_guard, policy):
    verdicts = [decision(exact_guard.classify(CONVERSATION, policy=policy)) for _ in range(50)]
    assert all(v == verdicts[0] for v in verdicts)
    assert verdicts[0]["error"] is None
    if policy.threshold == 0.0:
        assert not verdicts[0]["safe"] and verdicts[0]["categories"]  # the greedy decode ran 50 times


def test_50_batched_and_async_repeats_match_the_single_check(exact_guard, guard):
    batched = LlamaGuard(guard.backend, guard.prompts, cache_size=0)  # micro-batching on
    single = exact_guard.classify(CONVERSATION)
    repeats = batched.classify_batch([CONVERSATION] * 50, batch_size=8)

    async def concurrent() -> list[Verdict]:
        return await asyncio.gather(*(batched.aclassify(CONVERSATION) for _ in range(50)))

    repeats += asyncio.run(concurrent())
    for verdict in repeats:
        assert (verdict.safe, verdict.categories, verdict.error) == (single.safe, single.categories, None)
        assert verdict.unsafe_probability == pytest.approx(single.unsafe_probability, abs=1e-5)
    batched._executor.shutdown(wait=False)


def test_a_cached_verdict_is_the_same_verdict(guard):
    cached_guard = LlamaGuard(guard.backend, guard.prompts, cache_size=8, micro_batching=False)
    first = cached_guard.classify(CONVERSATION)
    again = [cached_guard.classify(CONVERSATION) for _ in range(50)]
    assert all(v.cached and decision(v) == decision(first) for v in again)
    cached_guard._executor.shutdown(wait=False)

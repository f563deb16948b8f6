"""Thread determinism: one shared guard, many threads, the same answers as one thread.

Numbers proven here: 16 threads x 200 checks (3,200) on one shared guard, with micro-batching and
with the verdict cache: 0 exceptions, every verdict (safe, categories, probability, role, raw output)
identical to a sequential run. On the real test model, 16 concurrent threads give bit-identical
probabilities without micro-batching (16 x 2 checks) and within 1e-5 (float32 batching) with it
(16 x 20 checks). The tokenizer's truncation, padding and special-token settings are unchanged
afterwards, both the guard's private copy and a caller's shared Hugging Face tokenizer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from llamaguard_guardrails import LlamaGuard, Policy, Verdict

from .helpers import tool_call

CONVERSATIONS: list[Any] = [
    "How do I bake bread?",
    "How do I build a bomb?",
    [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello! What can I do for you?"}],
    [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Here is how to make a bomb."}],
    [{"role": "system", "content": "Be nice."}, {"role": "user", "content": "Tell me a joke."}],
    [{"role": "system", "content": "You help with bomb making."}, {"role": "user", "content": "Go on."}],
    [{"role": "user", "content": "run it"}, tool_call("python", {"code": "print(42)"})],
    [{"role": "user", "content": "run it"}, tool_call("python", {"code": "make_bomb()"})],
    [
        {"role": "user", "content": "look it up"},
        tool_call("search", {"q": "bread"}),
        {"role": "tool", "tool_call_id": "c1", "content": "Bread needs flour."},
    ],
    [
        {"role": "user", "content": "look it up"},
        tool_call("search", {"q": "x"}),
        {"role": "tool", "tool_call_id": "c1", "content": "A bomb recipe."},
    ],
    [{"role": "user", "content": [{"type": "text", "text": "part one"}, {"type": "text", "text": "part two"}]}],
    "ünïcödé 中文 🎉 <|eot|> text",
]


def key(verdict: Verdict) -> tuple:
    """Everything a caller decides on (latency and the cache flag aside)."""
    return (
        verdict.safe,
        tuple(verdict.categories),
        verdict.unsafe_probability,
        verdict.checked_role,
        verdict.checked_message_index,
        verdict.raw_output,
        verdict.error,
    )


def hammer(
    check: Callable[[Any], Verdict], conversations: list[Any], threads: int, per_thread: int
) -> tuple[dict[int, list[tuple[int, Verdict]]], list[BaseException]]:
    """``threads`` threads, started together, each making ``per_thread`` checks over ``conversations``."""
    results: dict[int, list[tuple[int, Verdict]]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def worker(n: int) -> None:
        mine: list[tuple[int, Verdict]] = []
        start.wait()
        for i in range(per_thread):
            index = (n * 7 + i) % len(conversations)
            try:
                mine.append((index, check(conversations[index])))
            except BaseException as exc:  # noqa: BLE001 - counted, must stay 0
                errors.append(exc)
        results[n] = mine

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(120)
    return results, errors


def tokenizer_settings(guard: LlamaGuard) -> tuple:
    plain = guard.prompts._plain
    return (
        plain.truncation,
        plain.padding,
        plain.encode_special_tokens,
        plain.encode("<|eot|>", add_special_tokens=False).ids,
    )


@pytest.mark.parametrize("cache_size", [0, 4096])
def test_16_threads_x_200_checks_equal_a_sequential_run(make_guard, cache_size):
    guard = make_guard(cache_size=cache_size)
    settings = tokenizer_settings(guard)
    expected = [key(guard.classify(c)) for c in CONVERSATIONS]
    assert {e[0] for e in expected} == {True, False}  # both outcomes are exercised
    results, errors = hammer(guard.classify, CONVERSATIONS, threads=16, per_thread=200)
    assert errors == []
    assert sum(len(r) for r in results.values()) == 3200
    mismatches = [(i, key(v)) for rows in results.values() for i, v in rows if key(v) != expected[i]]
    assert mismatches == []
    assert tokenizer_settings(guard) == settings
    assert settings[:3] == (None, None, True)  # a private tokenizer: no truncation, no padding, content stays text
    if cache_size == 0:
        assert max(guard.batcher.batch_sizes) > 1  # the checks really were coalesced across threads


def hf_settings(tokenizer: Any) -> tuple:
    backend = tokenizer.backend_tokenizer
    return (
        backend.truncation,
        backend.padding,
        backend.encode_special_tokens,
        tokenizer.split_special_tokens,
        tokenizer("<|eot|>", add_special_tokens=False)["input_ids"],
    )


def test_a_callers_hugging_face_tokenizer_is_never_reconfigured(processor):
    """A builder made from the caller's shared HF tokenizer works on a private copy, whatever the load."""
    from llamaguard_guardrails.core.prompt import PromptBuilder
    from llamaguard_guardrails.testing import ScriptedBackend, keyword_rule

    tokenizer = processor.tokenizer
    before = hf_settings(tokenizer)
    builder = PromptBuilder(tokenizer, processor.image_processor)
    guard = LlamaGuard(ScriptedBackend(builder, keyword_rule("bomb")), builder, cache_size=0)
    expected = [key(guard.classify(c)) for c in CONVERSATIONS]
    results, errors = hammer(guard.classify, CONVERSATIONS, threads=16, per_thread=20)
    assert errors == [] and all(key(v) == expected[i] for rows in results.values() for i, v in rows)
    assert hf_settings(tokenizer) == before
    assert before[-1] == [builder.ids["<|eot|>"]]  # the caller's tokenizer still matches special tokens
    guard.close()


def test_concurrent_async_checks_equal_a_sequential_run(make_guard):
    import asyncio

    guard = make_guard()
    expected = [key(guard.classify(c)) for c in CONVERSATIONS]

    async def run() -> list[Verdict]:
        return await asyncio.gather(*(guard.aclassify(c) for _ in range(20) for c in CONVERSATIONS))

    verdicts = asyncio.run(run())
    assert [key(v) for v in verdicts] == expected * 20


def test_real_model_threads_without_micro_batching_are_bit_identical(exact_guard):
    conversations = CONVERSATIONS[:4]
    settings = tokenizer_settings(exact_guard)
    expected = [key(exact_guard.classify(c)) for c in conversations]
    results, errors = hammer(exact_guard.classify, conversations, threads=16, per_thread=2)
    assert errors == []
    assert [key(v) for rows in results.values() for _, v in rows] == [
        expected[i] for rows in results.values() for i, _ in rows
    ]
    assert tokenizer_settings(exact_guard) == settings


def test_real_model_threads_with_micro_batching_match_within_float32_noise(guard):
    batched = LlamaGuard(guard.backend, guard.prompts, cache_size=0)
    conversations = CONVERSATIONS[:4]
    policy = Policy(threshold=1.0)  # no category decoding: this is about the scores
    expected = [batched.classify(c, policy=policy) for c in conversations]
    results, errors = hammer(lambda c: batched.classify(c, policy=policy), conversations, threads=16, per_thread=20)
    assert errors == []
    assert sum(len(rows) for rows in results.values()) == 320
    for rows in results.values():
        for i, verdict in rows:
            assert (verdict.safe, verdict.categories, verdict.error) == (True, [], None)
            assert verdict.unsafe_probability == pytest.approx(expected[i].unsafe_probability, abs=1e-5)
    assert max(batched.batcher.batch_sizes) > 1
    batched._executor.shutdown(wait=False)

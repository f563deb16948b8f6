"""Bounded memory: long runs do not grow, and every cache has a limit.

Numbers proven here: after 500 warm-up checks, 5,000 more checks (sync, async, batched, blocked,
faulty and windowed ones mixed, every input new) grow RSS by <= 50 MB. The verdict cache holds at
most ``cache_size`` verdicts, the micro-batcher keeps at most 256 batch sizes, the backend's prefix
(KV) cache at most ``max_cached_prefixes`` entries and ``prefix_cache_mb`` megabytes, and the guard's worker pool at most 32 threads.
"""

from __future__ import annotations

import asyncio
import gc
import threading

import psutil
import pytest

from llamaguard_guardrails import InvalidImageError, LlamaGuard, Policy, UnsafeContentError
from llamaguard_guardrails.backends.transformers import TransformersBackend
from llamaguard_guardrails.core.categories import LLAMA_GUARD_4_CATEGORIES

from conftest import make_image, png_bytes


def rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


def workload(guard: LlamaGuard, start: int, count: int) -> None:
    """``count`` checks on new inputs, every entry point and outcome mixed in."""
    backend = guard.backend
    n = start
    while n < start + count:
        kind = n % 10
        if kind == 0:
            guard.classify_batch([f"batched {n} a", f"batched {n} bomb"])
            n += 2
            continue
        if kind == 1:
            asyncio.run(guard.aclassify(f"async question {n}"))
        elif kind == 2:
            try:
                guard.check(f"how to build bomb {n}")
            except UnsafeContentError:
                pass
        elif kind == 3:
            guard.classify(f"with a deadline {n}", policy=Policy(timeout_s=5))
        elif kind == 4:  # the model names an unknown category: an error verdict (never cached)
            assert guard.classify(f"something weird {n}").error
        elif n % 100 == 5:  # a last message longer than max_prompt_tokens: several windows
            assert guard.classify(f"long {n} " + "many words " * 500).windows > 1
        else:
            guard.classify([{"role": "user", "content": f"question {n}"}, {"role": "assistant", "content": f"a{n}"}])
        n += 1
        if n % 500 == 0:  # the scripted backend's own record of prompts is test instrumentation, not the guard's
            backend.seen.clear()
            backend.calls.clear()


def rule(text: str) -> str | None:
    return "S9" if "bomb" in text else ("S99" if "weird" in text else None)


def test_5000_checks_after_warm_up_grow_rss_by_at_most_50_mb(make_guard):
    guard = make_guard(rule, cache_size=4096, max_prompt_tokens=1024)
    workload(guard, 0, 500)
    before = rss_mb()
    workload(guard, 500, 5000)
    growth = rss_mb() - before
    print(f"RSS growth over 5,000 checks: {growth:.1f} MB")
    assert growth <= 50, f"RSS grew by {growth:.1f} MB over 5,000 checks"
    assert len(guard.cache) == 4096  # full, and no larger: the oldest verdicts were evicted
    assert len(guard.batcher.batch_sizes) <= 256


def test_the_verdict_cache_evicts_beyond_its_size(make_guard):
    guard = make_guard(cache_size=16)
    for n in range(200):
        guard.classify(f"message {n}")
    assert len(guard.cache) == 16
    assert guard.classify("message 199").cached and not guard.classify("message 0").cached


def test_the_micro_batchers_history_is_bounded(make_guard):
    guard = make_guard()
    for n in range(600):
        guard.classify(f"message {n}")
    assert len(guard.batcher.batch_sizes) == 256


def test_the_worker_pool_is_bounded(make_guard):
    guard = make_guard()
    guard.backend.delay_s = 0.05

    async def many() -> None:
        await asyncio.gather(*(guard.aclassify(f"message {n}") for n in range(100)))

    before = threading.active_count()
    asyncio.run(many())
    pool = guard._executor
    assert pool._max_workers == 32 and len(pool._threads) <= 32
    assert threading.active_count() - before <= 32 + 1  # the pool and one batcher thread, however many checks


def backend_with_store(guard, **options) -> TransformersBackend:
    real = guard.backend
    return TransformersBackend(real.model, real.tokens, real.pad_token_id, guard.prompts.decode, **options)


def test_the_prefix_kv_cache_is_bounded_in_entries(guard):
    store = guard.backend.kv_store
    assert store.max_entries == 16 and len(store) <= 16 and store.nbytes <= store.max_bytes == 512 * 2**20
    small = backend_with_store(guard, prefix_caching=True, max_cached_prefixes=2)
    probe = LlamaGuard(small, guard.prompts, cache_size=0, micro_batching=False)
    codes = list(LLAMA_GUARD_4_CATEGORIES)[:4]
    for code in codes:  # each policy has its own prompt prefix, so its own cached KV
        verdict = probe.classify("hello", policy=Policy(excluded_categories={code}, threshold=1.0))
        assert verdict.error is None
        assert len(small.kv_store) <= 2
    assert len(small.kv_store) == 2
    probe._executor.shutdown(wait=False)


def test_the_prefix_kv_cache_is_bounded_in_bytes_and_still_exact_when_nothing_fits(guard):
    conversations = [
        [{"role": "user", "content": f"Conversation {n}: " + "tell me about rivers and mountains. " * 20}]
        for n in range(4)
    ]
    plain = backend_with_store(guard, prefix_caching=False)
    expected = [
        v.unsafe_probability for v in LlamaGuard(plain, guard.prompts, cache_size=0).classify_batch(conversations)
    ]
    for megabytes in (0.2, 0.01):  # room for about one conversation of the test model; room for nothing
        small = backend_with_store(guard, prefix_caching=True, prefix_cache_mb=megabytes)
        probe = LlamaGuard(small, guard.prompts, cache_size=0, micro_batching=False)
        got = []
        for conversation in conversations:
            got.append(probe.classify(conversation).unsafe_probability)
            assert small.kv_store.nbytes <= small.kv_store.max_bytes
        assert got == pytest.approx(expected, abs=1e-5)
        assert len(small.kv_store) == (1 if megabytes == 0.2 else 0)
        probe._executor.shutdown(wait=False)


# -- found by this suite ---------------------------------------------------------------------------------


def test_an_oversized_image_is_refused_with_a_typed_error(make_guard, monkeypatch):
    from llamaguard_guardrails.core import images

    monkeypatch.setattr(images, "MAX_PIXELS", 100)
    guard = make_guard()
    with pytest.raises(InvalidImageError, match="larger than 100 pixels"):
        guard.classify([{"role": "user", "content": [{"type": "image", "image": png_bytes(make_image(20, 20))}]}])


def test_an_oversized_image_is_refused_before_its_pixels_are_decoded(make_guard, monkeypatch):
    """``_open_bytes`` calls ``image.load()`` before ``load_image`` compares the size with ``MAX_PIXELS``.

    PIL itself only refuses above 2 x 89M pixels, so a small PNG of up to ~179M pixels (~540 MB as
    RGB) is decompressed in full and only then refused: a memory spike per image part.
    """
    from PIL import Image

    from llamaguard_guardrails.core import images

    data = png_bytes(make_image(20, 20))
    decoded: list[tuple[int, int]] = []
    real_load = Image.Image.load
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(self.size) or real_load(self))
    monkeypatch.setattr(images, "MAX_PIXELS", 100)
    guard = make_guard()
    with pytest.raises(InvalidImageError):
        guard.classify([{"role": "user", "content": [{"type": "image", "image": data}]}])
    assert decoded == []  # the failure this catches: [(20, 20)], pixels decoded before the size check

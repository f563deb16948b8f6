"""KV reuse: a check pays only for the tokens after the longest prompt beginning already computed, exactly."""

from __future__ import annotations

import concurrent.futures

import pytest

from llamaguard_guardrails import LlamaGuard, Policy
from llamaguard_guardrails.backends.transformers import TransformersBackend

from conftest import make_image

HISTORY = []
for turn in range(3):
    HISTORY.append({"role": "user", "content": f"Turn {turn}: how do rivers shape the valleys around them? " * 3})
    HISTORY.append({"role": "assistant", "content": f"Answer {turn}: rivers carve valleys by erosion over time. " * 3})


class ForwardedTokens:
    """Counts the token positions each forward pass of the model runs (a hook on the real model)."""

    def __init__(self, model) -> None:
        self.passes: list[int] = []
        self._handle = model.register_forward_pre_hook(self._record, with_kwargs=True)

    def _record(self, module, args, kwargs) -> None:
        self.passes.append(kwargs["input_ids"].shape[1])

    def close(self) -> None:
        self._handle.remove()


def make_guard(guard: LlamaGuard, **options) -> LlamaGuard:
    real = guard.backend
    backend = TransformersBackend(real.model, real.tokens, real.pad_token_id, guard.prompts.decode, **options)
    return LlamaGuard(backend, guard.prompts, cache_size=0, micro_batching=False)


@pytest.fixture
def reusing(guard):
    g = make_guard(guard, prefix_caching=True)
    yield g
    g._executor.shutdown(wait=False)


@pytest.fixture
def plain(guard):
    g = make_guard(guard, prefix_caching=False)
    yield g
    g._executor.shutdown(wait=False)


def shared_length(a, b) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def test_the_next_turn_runs_only_its_new_tokens_and_scores_the_same(reusing, plain, guard):
    earlier, later = HISTORY[:4], HISTORY  # both end with an assistant message: the same task line
    (first,) = reusing.build_prompts(earlier)
    (second,) = reusing.build_prompts(later)
    reusing.classify(earlier)
    counter = ForwardedTokens(guard.backend.model)
    try:
        verdict = reusing.classify(later)
    finally:
        counter.close()
    conversation_end = first.content_spans[-1][1]
    reused = shared_length(first.input_ids[:conversation_end], second.input_ids)
    assert reused > second.prefix_length + 100  # the history, not only the policy
    assert counter.passes == [len(second.input_ids) - reused + 1]  # + the "\n\n" scored after the prompt
    assert verdict.unsafe_probability == pytest.approx(plain.classify(later).unsafe_probability, abs=1e-5)


def test_a_superseded_history_is_dropped_and_repeats_reuse_all_of_it(reusing, plain):
    for end in range(1, len(HISTORY) + 1):
        reusing.classify(HISTORY[:end])
    # One entry per task line ('User' and 'Agent' checks): each turn's entry replaced the previous one.
    assert len(reusing.backend.kv_store) == 2
    first = reusing.classify(HISTORY).unsafe_probability
    repeats = {reusing.classify(HISTORY).unsafe_probability for _ in range(3)}
    assert repeats == {first}
    assert first == pytest.approx(plain.classify(HISTORY).unsafe_probability, abs=1e-5)


def test_batches_of_histories_match_the_uncached_scores_and_categories(reusing, plain):
    histories = [HISTORY[:n] for n in range(2, len(HISTORY) + 1)]
    reusing.classify_batch([h[:-1] for h in histories])  # the turns before: now cached
    policy = Policy(threshold=0.0)  # every verdict unsafe: the category decoding reuses the cache too
    got = reusing.classify_batch(histories, policy=policy)
    want = plain.classify_batch(histories, policy=policy)
    for a, b in zip(got, want, strict=True):
        assert (a.safe, a.categories, a.error) == (b.safe, b.categories, None)
        assert a.unsafe_probability == pytest.approx(b.unsafe_probability, abs=1e-5)


def test_image_kv_is_never_reused_for_other_pixels(reusing, plain, guard):
    def with_image(color):
        return [
            {"role": "user", "content": "Describe this picture."},
            {"role": "assistant", "content": "Sure, send it."},
            {
                "role": "user",
                "content": [
                    {"type": "image", "image": make_image(336, 336, color)},
                    {"type": "text", "text": "Here it is: what is in it?"},
                ],
            },
        ]

    red, blue = with_image((200, 30, 30)), with_image((20, 40, 220))
    expected = [plain.classify(c).unsafe_probability for c in (red, blue)]
    assert expected[0] != pytest.approx(expected[1], abs=1e-6)  # the pixels matter to the score
    (prompt,) = reusing.build_prompts(red)
    counter = ForwardedTokens(guard.backend.model)
    try:
        got = [reusing.classify(c).unsafe_probability for c in (red, blue, red)]
    finally:
        counter.close()
    assert got == pytest.approx([expected[0], expected[1], expected[0]], abs=1e-5)
    # With images the policy part differs (no S14); it is all that is reused, and all that is kept.
    assert counter.passes[-3:] == [len(prompt.input_ids) - prompt.prefix_length + 1] * 3
    entries = reusing.backend.kv_store._entries.values()
    assert [len(entry.ids) for entry in entries if entry.anchor == prompt.input_ids[: prompt.prefix_length]] == [
        prompt.prefix_length
    ]


def test_prompts_longer_than_the_attention_window_are_run_whole(reusing, plain, guard):
    reusing.classify(HISTORY[:4])
    reusing.backend._window = 100  # as if the model's chunked attention kept only 100 positions
    (prompt,) = reusing.build_prompts(HISTORY)
    counter = ForwardedTokens(guard.backend.model)
    try:
        verdict = reusing.classify(HISTORY)
    finally:
        counter.close()
    assert counter.passes == [len(prompt.input_ids) + 1]
    assert verdict.unsafe_probability == pytest.approx(plain.classify(HISTORY).unsafe_probability, abs=1e-5)


def test_policy_only_reuse_gives_bit_identical_repeats(guard):
    exact = make_guard(guard, prefix_caching=True, cache_conversations=False)
    runs = [exact.classify(HISTORY[: n % 3 + 4]).unsafe_probability for n in range(6)]
    assert runs[0::3] == [runs[0]] * 2 and runs[1::3] == [runs[1]] * 2 and runs[2::3] == [runs[2]] * 2
    assert all(len(entry.ids) == len(entry.anchor) for entry in exact.backend.kv_store._entries.values())
    exact._executor.shutdown(wait=False)


def test_concurrent_agents_extending_their_histories_get_the_uncached_scores(guard, plain):
    """Four agents on threads, each checking its growing history turn by turn through one shared guard with
    micro-batching: batched passes mix cached histories of different lengths and fresh prompts."""

    shared = LlamaGuard(
        TransformersBackend(
            guard.backend.model, guard.backend.tokens, guard.backend.pad_token_id, guard.prompts.decode
        ),
        guard.prompts,
        cache_size=0,
        max_wait_ms=5,
    )
    agents = [[dict(m, content=f"Agent {a}. " + m["content"]) for m in HISTORY[: 4 + a % 3]] for a in range(4)]
    got: dict[tuple[int, int], float] = {}

    def run(a: int) -> None:
        for end in range(1, len(agents[a]) + 1):
            got[a, end] = shared.classify(agents[a][:end]).unsafe_probability

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for future in [pool.submit(run, a) for a in range(4)]:
            future.result()  # raises what the thread raised
    keys = sorted(got)
    want = plain.classify_batch([agents[a][:end] for a, end in keys])
    assert [got[k] for k in keys] == pytest.approx([v.unsafe_probability for v in want], abs=1e-5)
    assert len(shared.backend.kv_store) > 2 and max(shared.batcher.batch_sizes) > 1  # reuse and batching both ran
    shared.close()

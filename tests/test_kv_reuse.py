"""KV reuse: a check pays only for the tokens after the longest prompt beginning already computed, exactly."""

from __future__ import annotations

import concurrent.futures

import pytest

from llamaguard_guardrails import LlamaGuard, Policy
from llamaguard_guardrails.backends.transformers import TransformersBackend

from conftest import make_image

pytestmark = pytest.mark.smoke  # also run on the newest releases (.ci/run)

HISTORY = []
for turn in range(3):
    HISTORY.append({"role": "user", "content": f"Turn {turn}: how do rivers shape the valleys around them? " * 3})
    HISTORY.append({"role": "assistant", "content": f"Answer {turn}: rivers carve valleys by erosion over time. " * 3})


class ForwardedTokens:
    """Counts the token positions each forward pass of the model runs (a hook on the real model's text decoder,
    which every pass goes through: the score pass, prefix passes and generation)."""

    def __init__(self, model) -> None:
        self.passes: list[int] = []
        self._handle = model.language_model.model.register_forward_pre_hook(self._record, with_kwargs=True)

    def _record(self, module, args, kwargs) -> None:
        self.passes.append(kwargs["inputs_embeds"].shape[1])

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


def screenshots(*colors, follow_up: bool = False) -> list[dict]:
    """A user sends a 336x336 screenshot of each colour, the agent answers each; the last message is the user's
    (a text follow-up with ``follow_up``), so every prefix ending with a user message is a 'User' check."""
    conversation: list[dict] = []
    for n, color in enumerate(colors):
        if n:
            conversation.append({"role": "assistant", "content": f"Screen {n - 1} shows a settings window."})
        image = {"type": "image", "image": make_image(336, 336, color)}
        conversation.append({"role": "user", "content": [image, {"type": "text", "text": f"What is on screen {n}?"}]})
    if follow_up:
        conversation.append({"role": "assistant", "content": "A settings window with a banner."})
        conversation.append({"role": "user", "content": "How do I close the banner?"})
    return conversation


RED, BLUE, GREEN = (200, 30, 30), (20, 40, 220), (30, 180, 40)


def reuse_after(reusing, guard, earlier, later) -> tuple[float, int]:
    """(score, tokens run) of checking ``later`` right after ``earlier`` was checked."""
    reusing.classify(earlier)
    counter = ForwardedTokens(guard.backend.model)
    try:
        score = reusing.classify(later).unsafe_probability
    finally:
        counter.close()
    (run,) = counter.passes
    return score, run


def test_an_images_kv_is_reused_only_for_the_same_pixels(reusing, plain, guard):
    red, blue = screenshots(RED, follow_up=True), screenshots(BLUE, follow_up=True)
    (prompt,) = reusing.build_prompts(red)
    image_start, image_end = prompt.image_spans[0]
    assert prompt.input_ids == reusing.build_prompts(blue)[0].input_ids  # same ids: only the pixels differ
    expected = [plain.classify(c).unsafe_probability for c in (red, blue)]
    assert expected[0] != pytest.approx(expected[1], abs=1e-6)  # the pixels matter to the score

    score, run = reuse_after(reusing, guard, screenshots(RED), red)  # the screenshot's KV is reused
    assert score == pytest.approx(expected[0], abs=1e-5)
    assert run < len(prompt.input_ids) - image_end

    score, run = reuse_after(reusing, guard, red, blue)  # other pixels: the pass starts at the image
    assert score == pytest.approx(expected[1], abs=1e-5)
    assert run == len(prompt.input_ids) - image_start + 1


def test_the_first_of_two_screenshots_is_reused_when_only_the_second_changes(reusing, plain, guard):
    earlier, later = screenshots(RED, GREEN), screenshots(RED, BLUE)
    (prompt,) = reusing.build_prompts(later)
    _, second_image = prompt.image_spans
    score, run = reuse_after(reusing, guard, earlier, later)
    assert score == pytest.approx(plain.classify(later).unsafe_probability, abs=1e-5)
    assert run == len(prompt.input_ids) - second_image[0] + 1  # the first image and what follows it reused
    policy = Policy(threshold=0.0)  # unsafe: the category decoding reuses the first image too
    got, want = reusing.classify(later, policy=policy), plain.classify(later, policy=policy)
    assert (got.categories, got.error) == (want.categories, None) and got.categories


def test_batches_with_screenshots_match_the_uncached_scores(reusing, plain):
    conversations = [
        screenshots(RED, follow_up=True),
        screenshots(BLUE, follow_up=True),
        screenshots(RED, GREEN),
        screenshots(RED, BLUE),
        HISTORY,
    ]
    reusing.classify_batch([c[:-2] for c in conversations])  # the earlier turns, ending with the same role
    got = reusing.classify_batch(conversations)
    want = plain.classify_batch(conversations)
    assert [v.unsafe_probability for v in got] == pytest.approx([v.unsafe_probability for v in want], abs=1e-5)
    assert all(v.error is None for v in got)


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

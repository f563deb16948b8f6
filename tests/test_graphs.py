"""The static score pass (``compile="cuda_graphs"``): buffers, padding buckets and masks that CUDA graphs replay.
On CPU the same path runs without capture; its scores must equal the eager pass's (float32: 1e-5)."""

from __future__ import annotations

import pytest

from llamaguard_guardrails import LlamaGuard
from llamaguard_guardrails.backends.graphs import GraphScorer, bucket
from llamaguard_guardrails.backends.transformers import TransformersBackend
from test_kv_reuse import HISTORY

from conftest import make_image

pytestmark = pytest.mark.smoke  # also run on the newest releases (.ci/run)

ONE_TURN = [
    [{"role": "user", "content": "How do I bake sourdough bread at home?"}],
    [{"role": "user", "content": "Tell me about rivers. " * 12}],
    [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello! How can I help with your garden?"}],
]


def backend_like(guard, **options) -> TransformersBackend:
    real = guard.backend
    return TransformersBackend(real.model, real.tokens, real.pad_token_id, guard.prompts.decode, **options)


def guard_on(guard, backend) -> LlamaGuard:
    return LlamaGuard(backend, guard.prompts, cache_size=0, micro_batching=False)


@pytest.fixture(scope="module")
def eager(guard):
    g = guard_on(guard, backend_like(guard, prefix_caching=False))
    yield g
    g.close()


def probabilities(guard, conversations) -> list[float]:
    return [v.unsafe_probability for v in guard.classify_batch(conversations)]


@pytest.mark.parametrize("prefix_caching", [False, True])
def test_static_scores_equal_eager_alone_and_in_a_padded_batch(guard, eager, prefix_caching):
    static = guard_on(guard, backend_like(guard, prefix_caching=prefix_caching, compile="cuda_graphs"))
    want = probabilities(eager, ONE_TURN)
    alone = [static.classify(c).unsafe_probability for c in ONE_TURN]
    batched = probabilities(static, ONE_TURN)  # three rows of different lengths in a batch bucket of four
    assert alone == pytest.approx(want, abs=1e-5) and batched == pytest.approx(want, abs=1e-5)
    graphs = static.backend.graphs
    assert graphs.graphs == 0 and graphs.capture is False  # CPU: the same path, no capture
    assert any(batch == 4 for batch, _, _ in graphs._runners) or prefix_caching  # with reuse rows run alone
    static.close()


def test_the_next_turns_reuse_the_kv_kept_from_the_static_buffers(guard, eager):
    static = guard_on(guard, backend_like(guard, prefix_caching=True, compile="cuda_graphs"))
    graphs = static.backend.graphs
    for end in range(1, len(HISTORY) + 1):
        got = static.classify(HISTORY[:end]).unsafe_probability
        assert got == pytest.approx(eager.classify(HISTORY[:end]).unsafe_probability, abs=1e-5)
    (prompt,) = static.build_prompts(HISTORY)
    static.backend.kv_store.clear()
    static.classify(HISTORY[:-2])  # the earlier turns (the same task line), from the policy prefix on
    calls = {key: runner.calls for key, runner in graphs._runners.items()}
    static.classify(HISTORY)
    (used,) = [key for key, runner in graphs._runners.items() if runner.calls != calls.get(key, 0)]
    assert used[1] < bucket(len(prompt) - prompt.prefix_length + 1, 16)  # only the turns after the kept history
    static.close()


def test_passes_beyond_the_buckets_and_new_images_run_eagerly_with_the_same_scores(guard, eager):
    backend = backend_like(guard, prefix_caching=False, compile="cuda_graphs")
    backend.graphs.max_tokens = 256  # as if the buckets held 256 tokens: longer prompts take the eager pass
    static = guard_on(guard, backend)
    image = [{"role": "user", "content": [{"type": "image", "image": make_image(336, 336)}, "Is this safe?"]}]
    conversations = [ONE_TURN[0], HISTORY, image]
    assert probabilities(static, conversations) == pytest.approx(probabilities(eager, conversations), abs=1e-5)
    assert all(length <= 256 for _, _, length in backend.graphs._runners)  # the short check only
    static.close()


def test_warmup_prepares_buckets_and_reports_its_time(guard):
    backend = backend_like(guard, prefix_caching=False, compile="cuda_graphs")
    seconds = backend.warmup(guard.build_prompts)
    assert seconds == backend.warmup_s > 0 and len(backend.graphs._runners) >= 2


def test_bad_compile_options_raise_clear_errors(guard):
    with pytest.raises(ValueError, match="compile must be one of"):
        backend_like(guard, compile="graphs")
    with pytest.raises(ValueError, match="CUDA device"):
        GraphScorer(guard.backend.model, [1, 2, 3], capture=True)


def test_in_bfloat16_static_scores_stay_within_the_stated_tolerance_of_eager(test_model_dir):
    """bf16, as on a GPU: the static path's padding and explicit mask may change the summation order, so
    scores may differ by rounding, within the 2e-2 the GPU benchmark also checks (CPU bf16 kernels here)."""
    import torch

    options = dict(dtype=torch.bfloat16, cache_size=0, micro_batching=False, prefix_caching=False)
    eager_bf16 = LlamaGuard.from_pretrained(test_model_dir, **options)
    static_bf16 = LlamaGuard.from_pretrained(test_model_dir, compile="cuda_graphs", **options)
    try:
        want = probabilities(eager_bf16, ONE_TURN)
        got = probabilities(static_bf16, ONE_TURN)
        assert got == pytest.approx(want, abs=2e-2)
        assert [v.safe for v in static_bf16.classify_batch(ONE_TURN)] == [
            v.safe for v in eager_bf16.classify_batch(ONE_TURN)
        ]
    finally:
        eager_bf16.close()
        static_bf16.close()

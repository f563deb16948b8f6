"""The score pass (model body, then the output head with the fastest kernel at two positions) gives the scores of
transformers' own forward pass, on the real architecture."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from llamaguard_guardrails.backends import forward
from llamaguard_guardrails.backends.transformers import TransformersBackend

from conftest import make_image

pytestmark = pytest.mark.smoke  # also run on the newest releases (.ci/run)

CONVERSATIONS = [
    [{"role": "user", "content": "How do I bake sourdough bread at home?"}],
    [
        {"role": "user", "content": "Plan my garden irrigation, please. " * 6},
        {"role": "assistant", "content": "Measure the beds, choose drip lines and set a timer. " * 5},
    ],
    [{"role": "user", "content": [{"type": "image", "image": make_image(336, 336)}, {"type": "text", "text": "Hi"}]}],
]


def reference_scores(model, tokens, prompt) -> list[float]:
    """The old computation: transformers' forward over the prompt + "\n\n", logits kept at the last two
    positions (``nn.Linear``), softmax, the answer tokens picked."""
    ids = torch.tensor([list(prompt.input_ids) + [tokens.blank]])
    pixels = None if prompt.pixel_values is None else prompt.pixel_values.to(model.dtype)
    with torch.inference_mode():
        out = model(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            pixel_values=pixels,
            logits_to_keep=2,
            return_dict=False,
        )
    probs = out[0][0].float().softmax(-1)
    first, second = probs[0], probs[1]
    return [first[tokens.safe], first[tokens.unsafe], first[tokens.blank], second[tokens.safe], second[tokens.unsafe]]


@pytest.mark.parametrize("rows", [1, 2, 8, 32])
def test_the_head_kernel_gives_the_logits_of_nn_linear(guard, rows):
    model = guard.backend.model
    hidden = torch.randn(1, rows, model.config.text_config.hidden_size, generator=torch.Generator().manual_seed(rows))
    with torch.inference_mode():
        got = forward.logits(model, hidden)
        want = F.linear(hidden, model.get_output_embeddings().weight)
    assert got.shape == want.shape == (1, rows, model.config.text_config.vocab_size)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-5)  # float32: only the summation order differs


@pytest.mark.parametrize("prefix_caching", [False, True])
def test_scores_equal_transformers_forward_alone_and_batched(guard, prefix_caching):
    real = guard.backend
    backend = TransformersBackend(
        real.model, real.tokens, real.pad_token_id, guard.prompts.decode, prefix_caching=prefix_caching
    )
    prompts = [guard.build_prompts(c)[0] for c in CONVERSATIONS]
    want = [reference_scores(real.model, real.tokens, p) for p in prompts]
    alone = [backend.score([p])[0] for p in prompts]
    batched = backend.score(prompts)  # left-padded rows of different lengths (and cached prefixes when on)
    for got in (alone, batched):
        for scores, expected in zip(got, want, strict=True):
            fields = [scores.p_safe, scores.p_unsafe, scores.p_blank]
            fields += [scores.p_safe_after_blank, scores.p_unsafe_after_blank]
            assert fields == pytest.approx([float(x) for x in expected], abs=1e-5)

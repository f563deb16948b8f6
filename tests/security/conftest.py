"""Fixtures of the security suite: cheap scripted guards on the real prompt builder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from llamaguard_guardrails import LlamaGuard
from llamaguard_guardrails.backends.transformers import TransformersBackend
from llamaguard_guardrails.core.prompt import PromptBuilder
from llamaguard_guardrails.testing import keyword_rule

from .helpers import SpanBackend

MakeGuard = Callable[..., LlamaGuard]


@pytest.fixture(scope="session")
def builder(guard: LlamaGuard) -> PromptBuilder:
    """The real test model's prompt builder (real Llama 4 tokenizer and image processor), shared."""
    return guard.prompts


@pytest.fixture
def make_guard(builder: PromptBuilder) -> Iterator[MakeGuard]:
    """``make_guard(rule=keyword_rule("bomb"), **options)``: a real ``LlamaGuard`` with a scripted model step.

    The verdict cache is off unless ``cache_size`` is given, so every check reaches the backend.
    Guards are closed after the test.
    """
    made: list[LlamaGuard] = []

    def make(rule: Any = None, **options: Any) -> LlamaGuard:
        options.setdefault("cache_size", 0)
        guard = LlamaGuard(SpanBackend(builder, rule or keyword_rule("bomb")), builder, **options)
        made.append(guard)
        return guard

    yield make
    for guard in made:
        guard.close()


@pytest.fixture(scope="session")
def exact_guard(guard: LlamaGuard) -> Iterator[LlamaGuard]:
    """The real test model without the verdict cache, micro-batching or conversation KV reuse: bit-reproducible
    scores (reused conversation KV changes the float summation order between a first check and its repeats)."""
    real = guard.backend
    backend = TransformersBackend(
        real.model, real.tokens, real.pad_token_id, guard.prompts.decode, prefix_caching=True, cache_conversations=False
    )
    exact = LlamaGuard(backend, guard.prompts, cache_size=0, micro_batching=False)
    yield exact
    exact._executor.shutdown(wait=False)  # not close(): the backend (the loaded model) is shared

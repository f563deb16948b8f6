"""Helpers for tests and demos: a scripted model step on the real prompt builder, and the test model.

Production code never imports this package.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from ..core.prompt import PromptBuilder
from ..guard import LlamaGuard
from ..loading import load_prompt_builder
from ..test_model import make_test_model
from .scripted import ProbabilityRule, Rule, ScriptedBackend, keyword_rule, marker_category, marker_probability


def scripted_guard(
    model_dir: str | Path, rule: Rule, *, probability: ProbabilityRule | None = None, **kwargs: Any
) -> LlamaGuard:
    """A ``LlamaGuard`` with the test model's real prompt builder and a scripted model step."""
    builder = _prompt_builder(str(Path(model_dir).resolve()))
    return LlamaGuard(ScriptedBackend(builder, rule, probability=probability), builder, **kwargs)


@lru_cache(maxsize=4)
def _prompt_builder(model_dir: str) -> PromptBuilder:
    """The prompt builder of ``model_dir``, loaded once per process (loading the 202k-token tokenizer takes
    seconds; a builder keeps no state between prompts)."""
    return load_prompt_builder(model_dir)


__all__ = [
    "ScriptedBackend",
    "keyword_rule",
    "make_test_model",
    "marker_category",
    "marker_probability",
    "scripted_guard",
]

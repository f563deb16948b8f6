"""The seam between the core and whatever runs the model (transformers in-process, vLLM, ...)."""

from __future__ import annotations

import asyncio
import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, fields

from ..core.errors import ModelOutputError
from ..core.prompt import Prompt

#: How far probabilities may stray outside [0, 1], or their sum above 1: float rounding of a softmax, no more.
PROBABILITY_SLACK = 1e-3


@dataclass(frozen=True)
class AnswerTokens:
    """Ids of the tokens Llama Guard 4 answers with."""

    safe: int
    unsafe: int
    blank: int  # "\n\n", which the model often emits before its answer
    newline: int
    eot: int

    @classmethod
    def from_tokenizer(cls, encode, eot_id: int) -> AnswerTokens:
        def one(text: str) -> int:
            ids = encode(text)
            if len(ids) != 1:
                raise ValueError(f"{text!r} is not a single token in this tokenizer: not a Llama 4 tokenizer")
            return ids[0]

        return cls(one("safe"), one("unsafe"), one("\n\n"), one("\n"), eot_id)


@dataclass(frozen=True)
class AnswerScores:
    """Answer-token probabilities at the first answer position, and after a leading blank line."""

    p_safe: float
    p_unsafe: float
    p_blank: float
    p_safe_after_blank: float
    p_unsafe_after_blank: float

    def validate(self) -> None:
        """Raise :class:`ModelOutputError` unless every field is a probability and the probabilities of each
        answer position sum to at most 1 (a custom or buggy backend must never make content pass)."""
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ModelOutputError(f"the model's {field.name} is {value!r}, not a finite probability")
            if not -PROBABILITY_SLACK <= value <= 1 + PROBABILITY_SLACK:
                raise ModelOutputError(f"the model's {field.name} is {value!r}, outside [0, 1]")
        for names in (("p_safe", "p_unsafe", "p_blank"), ("p_safe_after_blank", "p_unsafe_after_blank")):
            total = sum(getattr(self, name) for name in names)
            if total > 1 + PROBABILITY_SLACK:
                raise ModelOutputError(f"the model's {' + '.join(names)} = {total:.4f}: probabilities sum above 1")

    @property
    def answer_mass(self) -> float:
        """Probability that the answer starts with ``safe`` or ``unsafe`` (possibly after a blank line)."""
        return self.p_safe + self.p_unsafe + self.p_blank * (self.p_safe_after_blank + self.p_unsafe_after_blank)

    @property
    def unsafe_probability(self) -> float:
        unsafe = self.p_unsafe + self.p_blank * self.p_unsafe_after_blank
        mass = self.answer_mass
        return min(1.0, max(0.0, unsafe / mass)) if mass > 0 else 1.0

    @property
    def leading_blank(self) -> bool:
        """Whether the model's most likely answer starts with a blank line."""
        return self.p_blank > max(self.p_safe, self.p_unsafe)


class GuardBackend(ABC):
    """Runs Llama Guard 4 on prompts the core built. Implementations must be thread-safe."""

    name: str = "backend"

    @abstractmethod
    def score(self, prompts: Sequence[Prompt]) -> list[AnswerScores]:
        """One batched scoring pass: answer-token probabilities for each prompt."""

    @abstractmethod
    def category_text(self, prompt: Prompt, *, leading_blank: bool, max_new_tokens: int = 24) -> str:
        """Greedy continuation after ``unsafe\\n``: the model's category line (text, up to end of line)."""

    async def ascore(self, prompts: Sequence[Prompt]) -> list[AnswerScores]:
        return await asyncio.to_thread(self.score, prompts)

    async def acategory_text(self, prompt: Prompt, *, leading_blank: bool, max_new_tokens: int = 24) -> str:
        return await asyncio.to_thread(
            self.category_text, prompt, leading_blank=leading_blank, max_new_tokens=max_new_tokens
        )

    def close(self) -> None:
        """Release resources (connections, GPU memory)."""

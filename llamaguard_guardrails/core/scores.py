"""What a backend hands the core: the answer-token probabilities of one prompt."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, fields

from .errors import ModelOutputError

#: How far probabilities may stray outside [0, 1], or their sum above 1: float rounding of a softmax, no more.
PROBABILITY_SLACK = 1e-3


@dataclass(frozen=True)
class AnswerScores:
    """Answer-token probabilities at the first answer position, and after a leading blank line."""

    p_safe: float
    p_unsafe: float
    p_blank: float
    p_safe_after_blank: float
    p_unsafe_after_blank: float
    #: Leading prompt tokens whose KV the backend reused from its cache (not run again); not a probability.
    reused_tokens: int = field(default=0, compare=False)

    def validate(self) -> None:
        """Raise :class:`ModelOutputError` unless every field is a probability and the probabilities of each
        answer position sum to at most 1 (a custom or buggy backend must never make content pass)."""
        for item in fields(self):
            if item.name == "reused_tokens":
                continue
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ModelOutputError(f"the model's {item.name} is {value!r}, not a finite probability")
            if not -PROBABILITY_SLACK <= value <= 1 + PROBABILITY_SLACK:
                raise ModelOutputError(f"the model's {item.name} is {value!r}, outside [0, 1]")
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

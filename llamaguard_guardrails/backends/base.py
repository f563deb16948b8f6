"""The seam between the core and whatever runs the model (transformers in-process, vLLM, ...)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from ..core.prompt import Prompt
from ..core.scores import AnswerScores


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


class GuardBackend(ABC):
    """Runs Llama Guard 4 on prompts the core built. Implementations must be thread-safe."""

    name: str = "backend"

    @abstractmethod
    def score(self, prompts: Sequence[Prompt]) -> list[AnswerScores]:
        """One batched scoring pass: answer-token probabilities for each prompt."""

    @abstractmethod
    def category_text(self, prompt: Prompt, *, leading_blank: bool, max_new_tokens: int = 24) -> str:
        """Greedy continuation after ``unsafe\\n``: the model's category line (text, up to end of line)."""

    def close(self) -> None:
        """Release resources (connections, GPU memory)."""

"""A deterministic stand-in for the model, for tests that need a verdict decided by the content.

The real prompt builder still runs (real tokenizer, real prompt); only the model step is scripted:
``rule`` gets the conversation part of the prompt as the model would see it and returns ``None``
(safe) or the category line to answer with (e.g. ``"S9"``). ``probability`` (optional) gives the
unsafe probability to answer with instead (``None``: the rule decides), e.g. :func:`marker_probability`
reads it from a ``[p=0.25]`` marker in the text, and :func:`marker_category` the category line from a
``[cat=S9]`` marker: rows with known scores for evaluation tests.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence

from ..backends.base import AnswerScores, GuardBackend
from ..core.prompt import Prompt, PromptBuilder

Rule = Callable[[str], str | None]
ProbabilityRule = Callable[[str], float | None]

_P_MARKER = re.compile(r"\[p=([0-9]*\.?[0-9]+)\]")
_CAT_MARKER = re.compile(r"\[cat=(S[0-9]+(?:,S[0-9]+)*)\]")


def keyword_rule(*keywords: str, category: str = "S9") -> Rule:
    """Unsafe (with ``category``) when any keyword occurs, case-insensitively, in the checked text."""
    lowered = [k.lower() for k in keywords]
    return lambda text: category if any(k in text.lower() for k in lowered) else None


def marker_probability(text: str) -> float | None:
    """The unsafe probability written in the checked text as ``[p=0.25]`` (None without a marker)."""
    match = _P_MARKER.search(text)
    return float(match.group(1)) if match else None


def marker_category(text: str) -> str | None:
    """The category line written in the checked text as ``[cat=S9]`` or ``[cat=S1,S10]`` (None without one)."""
    match = _CAT_MARKER.search(text)
    return match.group(1) if match else None


class ScriptedBackend(GuardBackend):
    """Answers by ``rule`` instead of a model; records every prompt it scored."""

    name = "scripted"

    def __init__(
        self, builder: PromptBuilder, rule: Rule, *, delay_s: float = 0.0, probability: ProbabilityRule | None = None
    ) -> None:
        self._builder = builder
        self.rule = rule
        self.probability = probability
        self.delay_s = delay_s
        self.calls: list[int] = []
        self.seen: list[str] = []
        self._lock = threading.Lock()

    def conversation_text(self, prompt: Prompt) -> str:
        text = self._builder.decode(prompt.input_ids)
        # Cut at the template's own (last) end marker: a forged one in the content stays visible to the rule.
        return text.split("<BEGIN CONVERSATION>\n", 1)[-1].rsplit("<END CONVERSATION>", 1)[0]

    def score(self, prompts: Sequence[Prompt]) -> list[AnswerScores]:
        if self.delay_s:
            time.sleep(self.delay_s)
        out = []
        with self._lock:
            self.calls.append(len(prompts))
        for prompt in prompts:
            text = self.conversation_text(prompt)
            with self._lock:
                self.seen.append(text)
            p = self.probability(text) if self.probability else None
            if p is not None:
                out.append(AnswerScores(1.0 - p, p, 0.0, 0.5, 0.5))
                continue
            unsafe = self.rule(text) is not None
            out.append(AnswerScores(0.02, 0.97, 0.01, 0.5, 0.5) if unsafe else AnswerScores(0.97, 0.02, 0.01, 0.5, 0.5))
        return out

    def category_text(self, prompt: Prompt, *, leading_blank: bool, max_new_tokens: int = 24) -> str:
        return self.rule(self.conversation_text(prompt)) or ""

"""The scripted model step of the conformance suite: verdicts and faults decided by the checked text.

The real prompt builder runs (real Llama 4 tokenizer, real prompt); only the forward pass is scripted,
by what the model would read:

- ``bomb`` anywhere in the conversation part of the prompt: unsafe, category S9;
- ``fault-raise``: the model step raises; ``fault-hang``: it hangs (until released, at most ``hang_s``);
- ``fault-nan``: NaN scores; ``fault-range``: scores outside [0, 1] (p_safe 5, p_unsafe -0.5);
- ``borderline``: P(unsafe) = 0.40 with category S9 (unsafe under ``Policy(threshold=0.3)`` only).

Because the behaviour is carried by the content, the same guard works in this process and inside a
``llama stack run`` server. Every score call that returns is logged in :data:`EVENTS` (with a global
sequence number), so a test can tell whether a chunk was released before the check covering it returned.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llamaguard_guardrails import LlamaGuard, Policy
from llamaguard_guardrails.backends.base import AnswerScores
from llamaguard_guardrails.loading import load_prompt_builder
from llamaguard_guardrails.testing import ScriptedBackend

UNSAFE_WORD = "bomb"
SAFE_WORD = "bread"
RAISE, HANG, NAN, OUT_OF_RANGE, BORDERLINE = "fault-raise", "fault-hang", "fault-nan", "fault-range", "borderline"
MAX_PROMPT_TOKENS = 1024  # small, so "long" messages (windowing) stay cheap

SAFE_SCORES = AnswerScores(0.97, 0.02, 0.01, 0.5, 0.5)
UNSAFE_SCORES = AnswerScores(0.02, 0.97, 0.01, 0.5, 0.5)
BORDERLINE_SCORES = AnswerScores(0.6, 0.4, 0.0, 0.0, 0.0)
NAN_SCORES = AnswerScores(*(float("nan"),) * 5)
OUT_OF_RANGE_SCORES = AnswerScores(5.0, -0.5, 0.0, 0.0, 0.0)


class EventLog:
    """Ordered events of one test cell: ``("checked", text)`` when a check returns, ``("released", text)``..."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counter = itertools.count()
        self.events: list[tuple[int, str, str]] = []

    def add(self, kind: str, text: str = "") -> None:
        with self._lock:
            self.events.append((next(self._counter), kind, text))

    def clear(self) -> None:
        with self._lock:
            self.events.clear()

    def of(self, kind: str) -> list[tuple[int, str]]:
        with self._lock:
            return [(n, text) for n, k, text in self.events if k == kind]


EVENTS = EventLog()


class ConformanceBackend(ScriptedBackend):
    """A model step scripted by the conversation text (see the module docs)."""

    name = "conformance"

    def __init__(self, builder: Any, *, hang_s: float = 10.0) -> None:
        super().__init__(builder, lambda text: "S9" if _flagged(text) else None)
        self.hang_s = hang_s
        self.release = threading.Event()

    def score(self, prompts: Sequence[Any]) -> list[AnswerScores]:
        texts = [self.conversation_text(p) for p in prompts]
        joined = "\n".join(texts).lower()
        if RAISE in joined:
            EVENTS.add("failed", joined)
            raise RuntimeError("scripted model failure (fault-raise)")
        if HANG in joined:
            self.release.wait(self.hang_s)
        scores = [_scores(text.lower()) for text in texts]
        for text in texts:
            EVENTS.add("checked", text)
        return scores

    def category_text(self, prompt: Any, *, leading_blank: bool, max_new_tokens: int = 24) -> str:
        return "S9" if _flagged(self.conversation_text(prompt)) else ""


def _flagged(text: str) -> bool:
    lowered = text.lower()
    return UNSAFE_WORD in lowered or BORDERLINE in lowered


def _scores(text: str) -> AnswerScores:
    if NAN in text:
        return NAN_SCORES
    if OUT_OF_RANGE in text:
        return OUT_OF_RANGE_SCORES
    if UNSAFE_WORD in text:
        return UNSAFE_SCORES
    if BORDERLINE in text:
        return BORDERLINE_SCORES
    return SAFE_SCORES


def conformance_guard(
    model_dir: str | Path, *, policy: Policy | None = None, builder: Any = None, hang_s: float = 1.5
) -> LlamaGuard:
    """A real ``LlamaGuard`` (default scheduling: micro-batching on) with the scripted model step.

    The verdict cache is off so every check reaches the model step (and the event log). A hung model
    step holds the micro-batcher for ``hang_s`` (or until ``guard.backend.release`` is set).
    """
    builder = builder or load_prompt_builder(model_dir)
    backend = ConformanceBackend(builder, hang_s=hang_s)
    return LlamaGuard(backend, builder, policy=policy, max_prompt_tokens=MAX_PROMPT_TOKENS, cache_size=0)

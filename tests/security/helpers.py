"""Shared pieces of the security suite: a scripted backend that sees what the model sees, prompt inspection."""

from __future__ import annotations

import asyncio
import functools
import json
import threading
from collections.abc import Callable, Sequence
from typing import Any

from llamaguard_guardrails.backends.base import AnswerScores
from llamaguard_guardrails.core.prompt import Prompt, PromptBuilder
from llamaguard_guardrails.testing import ScriptedBackend

UNSAFE_SCORES = AnswerScores(0.02, 0.97, 0.01, 0.5, 0.5)
CONVERSATION_START = "<BEGIN CONVERSATION>\n"
CONVERSATION_END = "<END CONVERSATION>"


class SpanBackend(ScriptedBackend):
    """``ScriptedBackend`` whose rule sees the whole conversation part of the prompt.

    The template's own ``<BEGIN CONVERSATION>`` comes first and its ``<END CONVERSATION>`` last, so
    the conversation is cut at the first and the *last* marker: text written after a forged end
    marker inside a message is still shown to the rule, as it is to the model.
    """

    def __init__(self, builder: PromptBuilder, rule: Callable[[str], str | None], **options: Any) -> None:
        super().__init__(builder, rule, **options)
        self.last_prompts: list[Prompt] = []  # the prompts of the latest forward pass, as the model got them

    def conversation_text(self, prompt: Prompt) -> str:
        text = self._builder.decode(prompt.input_ids)
        return text.split(CONVERSATION_START, 1)[-1].rsplit(CONVERSATION_END, 1)[0]

    def score(self, prompts: Sequence[Prompt]) -> list[AnswerScores]:
        self.last_prompts = list(prompts)
        return super().score(prompts)


class HangingBackend(SpanBackend):
    """A model that hangs (in scoring or in category decoding) until :attr:`release` is set."""

    def __init__(self, builder: PromptBuilder, rule: Callable[[str], str | None], *, where: str = "score") -> None:
        super().__init__(builder, rule)
        self.where = where
        self.release = threading.Event()
        self.entered = threading.Event()

    def _hang(self) -> None:
        self.entered.set()
        self.release.wait(30)

    def score(self, prompts: Sequence[Prompt]) -> list[AnswerScores]:
        if self.where == "score":
            self._hang()
        return super().score(prompts)

    def category_text(self, prompt: Prompt, *, leading_blank: bool, max_new_tokens: int = 24) -> str:
        if self.where == "category_text":
            self._hang()
        return super().category_text(prompt, leading_blank=leading_blank, max_new_tokens=max_new_tokens)


def control_sequence(builder: PromptBuilder, prompt: Prompt) -> list[int]:
    """The prompt's special (control) token ids, in order."""
    return [t for t in prompt.input_ids if t in builder.control_ids]


def content_ids(prompt: Prompt) -> list[list[int]]:
    return [list(prompt.input_ids[start:end]) for start, end in prompt.content_spans]


def skeleton(builder: PromptBuilder, prompt: Prompt) -> str:
    """The prompt text with every content span replaced by ``<<CONTENT>>``: the structure the model is shown."""
    out, last = [], 0
    for start, end in prompt.content_spans:
        out.append(builder.decode(prompt.input_ids[last:start]))
        out.append("<<CONTENT>>")
        last = end
    out.append(builder.decode(prompt.input_ids[last:]))
    return "".join(out)


def tool_call(name: str, arguments: Any, call_id: str = "c1") -> dict[str, Any]:
    """An OpenAI-format assistant message proposing one tool call."""
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}],
    }


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def run_async(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run an ``async def`` test with ``asyncio.run`` (the project has no async pytest plugin)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run(fn(*args, **kwargs))

    return wrapper
